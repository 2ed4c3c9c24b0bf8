"""Spawning runs and everything about their processes; knows nothing of specs or schedules.

API
---
``RunSpec(run_id, task, argv, task_env={}, cwd=None, user=None, limits=None)``
    ``argv`` is exec'd as is (a shell command arrives as ``['/bin/sh', '-c', cmd]``,
    a bare name is looked up in the child's ``PATH``). ``task_env`` is the task's own
    variables (and any per-run ones of the controller), put on top of the base
    environment the supervisor composes (see Behaviour). ``user`` is a name or a uid.
    ``limits``: ``Limits(memory_max, cpu_max, open_files_max, processes_max)``, None each
    where unset (``Limits.of(task.resources)``).

``unenforceable(limits) -> {field: reason}``: the limits this process cannot enforce
(``memoryMax: cannot be enforced here: ...``); start() refuses such a run with that text.

``Exited.oom_killed``: the kernel killed a process of the run for its memory limit.

``Supervisor(on_output, wake=None)``
    ``on_output(run_id, task, stream, line)`` is called from one pump thread for every
    output line (``stream`` is ``'stdout'`` or ``'stderr'``). ``wake()`` is called from
    the pump thread whenever poll() has news it could not learn from SIGCHLD (pipes at
    EOF, an adopted run gone). The controller installs a SIGCHLD handler calling wake;
    nothing global is installed here.

    - ``start(spec) -> RunHandle`` or ``SpawnError`` (its message is for users).
    - ``with holding_output():`` runs started inside have their pipes read only once the
      block ends, so the caller can log their start first (one pump wake-up for all).
    - ``stop(run_id, grace, reason)``: SIGTERM to the run's process group now, SIGKILL to
      the group once ``grace`` seconds passed (sent by poll(); call poll() by
      ``next_deadline()``). A second stop keeps the earlier deadline unless its own is
      sooner; the first reason wins. Unknown run ids are ignored.
    - ``adopt(run_id, task, pid, start_ticks, started_at) -> RunHandle | None``: a run left
      by a previous controller; None if the pid is gone or is now another process.
    - ``poll() -> list[Exited]``: never blocks; reaps, escalates, notices adopted runs gone.
    - ``running()``, ``next_deadline()`` (monotonic), ``stop_all(reason, grace_for)``,
      ``close()`` (stops the pump thread; does not stop runs).

``RunHandle.start_ticks`` is read from /proc on first use (or by the next poll(), before
the reap), so start() does not wait for the child's dynamic loader.

``become_subreaper()``, ``process_start_ticks(pid)``, ``RUN_ID_ENV``.

Behaviour
---------
- Each run is a new session and process group (setsid), stdin ``/dev/null``, stdout and
  stderr separate pipes, no other inherited fd, SIGPIPE/SIGXFSZ back to default. Signals
  ignored or blocked in the thread calling start() stay so in the child (exec keeps them),
  so call start() from a thread with default dispositions and an empty mask. Runs without
  ``user`` or limits take Popen's vfork() fast path.
- Limits (cgroups.py): ``memory_max``, ``cpu_max``, ``processes_max`` give the run a
  cgroup (v2, or the v1 memory/cpu/pids hierarchies) in ``reconciler/`` below our own,
  made with its limits before the spawn; the child joins it as the first step before
  exec (before the user switch, before it can fork), so nothing of the run is ever
  outside. ``open_files_max`` sets RLIMIT_NOFILE (soft and hard) in the same step. Only
  such runs fork() with that step; runs without limits keep the vfork() path. The cgroup
  is how the whole run is found when it is stopped (every process in it is signalled,
  whatever its group or environment); its OOM-kill count is read, and it is removed,
  when the run is reported (a cgroup still holding what the run daemonized is removed
  once empty). At start, cgroups left by a controller that is gone are removed when
  empty; an adopted run's cgroup is found from /proc/PID/cgroup.
- Environment: a run without ``user`` gets the controller's environment (``os.environ``
  when start() is called), then ``task_env``. A run with ``user`` gets a clean one:
  ``PATH=/usr/local/bin:/usr/bin:/bin``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL`` from
  the passwd entry (``/bin/sh`` if empty), ``LANG`` and ``TZ`` if the controller has them,
  then ``task_env``. Last, over everything, ``RECONCILER_RUN_ID=<run_id>`` (``RUN_ID_ENV``):
  the mark that finds the run's descendants (see strays below).
- Working directory: a run without ``user`` enters ``cwd`` (checked before the spawn), else
  keeps the controller's. A run with ``user`` enters ``cwd`` only after the switch to the
  user (a ``preexec_fn`` of a few system calls that also does the switch; a uid switch
  forks, not vforks, anyway), so
  the kernel checks it with the user's rights and a folder swapped for a symlink gains
  nothing; if that fails, start() raises ``SpawnError('workingDir ...: ...')`` and nothing
  ran. Without ``cwd`` it enters the user's home, or ``/`` if the user cannot (as login(1)).
- ``user``: only with a root controller. The child gets the user's uid and primary gid
  (real, effective, saved), exactly the groups of getgrouplist(3). A name that does not
  exist, or a uid without a passwd entry, is refused. A digit-only name that is not a user
  name is read as a uid.
- Reaping: poll() calls waitpid(-1, WNOHANG) until nothing is left, so it reaps *every*
  child of this process (orphans reparented to us as subreaper or PID 1 included). Other
  code in the controller must therefore not wait for children of its own (subprocess.run
  and the like) while a Supervisor is in use.
- A run is reported (``Exited``) after its process is reaped and its pipes reach EOF, or
  one second after the reap if something (a background grandchild) keeps them open; the
  rest buffered in the pipe is read, then our read ends are closed. All output lines of a
  run are delivered before poll() returns its ``Exited``.
- A run ending on its own leaves the rest of its process group, and whatever it
  daemonized, alone (as cron does); we still reap what is reparented to us. A stopped run
  (timeout, replace, shutdown, removal) is reported only when its whole group is gone:
  members that outlive the leader keep their grace period and get the SIGKILL.
  ``Exited.stop_reason`` is set only when the leader was still alive when stopped.
- Stopping also reaches *strays*, descendants that left the group (setsid) and may have
  been reparented to us: every process below the leader, the group's members or a stray
  found before, and every process started since the run whose /proc/PID/environ carries
  its ``RECONCILER_RUN_ID`` (found by a look at /proc taken before each signal, and again
  while the run settles). They get SIGTERM with the group and SIGKILL with the group (one
  found late gets the signal due then), each through a pidfd after checking its start
  time; the run is reported once they are gone too (or KILL_WAIT_SECONDS after the
  SIGKILL). Adopted runs are searched the same way. What stays out of reach: a stray that
  cleared its environment and lost its parent before the stop, one in another PID
  namespace, one a non-root controller may not read or signal (docs/SECURITY.md).
- Adopted runs are signalled through their group when they lead one (pgid == pid, as
  runs we start do), else through their pid alone, checking its start time first. Their
  end is noticed through a pidfd (or /proc); their exit status is unknown
  (``exit_code`` None) unless we are their reaper (PID 1).
- Output: lines split on ``\\n`` and decoded as UTF-8 with invalid bytes escaped
  (``\\xff``); ``\\r`` is kept. A line over 64 KiB comes in pieces of at most 64 KiB (not
  cut inside a UTF-8 character); every piece but the last ends with
  ``CONTINUATION_MARKER``. A final line without ``\\n`` is delivered at EOF. The pump reads
  one chunk per ready pipe per round, so a flooding run cannot starve the others, hands
  the GIL over after each chunk, and holds no supervisor lock while calling
  ``on_output``; a slow ``on_output`` slows the runs' writes, it never drops lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_names

if TYPE_CHECKING:
    from reconciler.supervisor.cgroups import unenforceable
    from reconciler.supervisor.core import Supervisor
    from reconciler.supervisor.lines import CONTINUATION_MARKER, MAX_LINE_BYTES
    from reconciler.supervisor.model import (
        RUN_ID_ENV,
        Exited,
        Limits,
        RunHandle,
        RunSpec,
        SpawnError,
    )
    from reconciler.supervisor.procinfo import process_start_ticks
    from reconciler.supervisor.reaper import become_subreaper

# The API's names, imported on first use (module __getattr__): a reader of /proc
# (procinfo, for `status` and the state lock) does not pay for spawn, cgroups and the pump.
_HOME = {
    "unenforceable": "cgroups",
    "Supervisor": "core",
    "CONTINUATION_MARKER": "lines",
    "MAX_LINE_BYTES": "lines",
    "RUN_ID_ENV": "model",
    "Exited": "model",
    "Limits": "model",
    "RunHandle": "model",
    "RunSpec": "model",
    "SpawnError": "model",
    "process_start_ticks": "procinfo",
    "become_subreaper": "reaper",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOME)


__all__ = [
    "CONTINUATION_MARKER",
    "MAX_LINE_BYTES",
    "RUN_ID_ENV",
    "Exited",
    "Limits",
    "RunHandle",
    "RunSpec",
    "SpawnError",
    "Supervisor",
    "become_subreaper",
    "process_start_ticks",
    "unenforceable",
]
