"""Rules and error text: schema, schedules, zones, hosts, names; the Task that results."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_spec_support import HEADER, load, messages, task_yaml, write

from reconciler.envmask import masked_document
from reconciler.spec import FileLoad, SpecError, Task, find_duplicates, host_zone, load_file


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def errors_for(text: str, name: str = "specs/web.yaml") -> list[str]:
    path = write(Path(name), text)
    return messages(load(path))


def one_error(**spec: object) -> str:
    errors = errors_for(task_yaml("rotate-logs", **spec))
    assert len(errors) == 1, errors
    return errors[0]


# --- the error form -------------------------------------------------------------------


def test_error_form_of_the_contract(here: Path) -> None:
    text = (
        "# yaml-language-server: $schema=../schemas/task.schema.json\n"
        + HEADER
        + "metadata:\n  name: rotate-logs\nspec:\n  schedule: '0 */5 * * * *'\n"
        + "  command: [/usr/sbin/logrotate]\n"
        + "\n" * 3
        + "  maxConcurrency: -1\n"
    )
    assert errors_for(text) == [
        "specs/web.yaml:12: rotate-logs: spec.maxConcurrency: -1 is less than the minimum of 1"
    ]


def test_spec_error_fields_and_dict() -> None:
    error = SpecError("specs/a.yaml", 3, "t", "spec.user", "true is a boolean")
    assert str(error) == "specs/a.yaml:3: t: spec.user: true is a boolean"
    assert error.to_dict() == {
        "file": "specs/a.yaml",
        "line": 3,
        "task": "t",
        "field": "spec.user",
        "message": "true is a boolean",
        "error": "specs/a.yaml:3: t: spec.user: true is a boolean",
    }
    assert str(SpecError("a.yaml", None, None, None, "broken symlink")) == "a.yaml: broken symlink"


def test_control_characters_never_reach_an_error_line() -> None:
    error = SpecError("a\nb.yaml", 1, None, None, "x\ny")
    assert "\n" not in str(error)


def test_document_without_a_valid_name_is_named_by_its_index(here: Path) -> None:
    text = task_yaml("ok") + "---\n" + HEADER + "metadata: {name: Bad_Name}\nspec: {command: x}\n"
    assert errors_for(text) == [
        'specs/web.yaml:11: <document 2>: metadata.name: "Bad_Name" is not a valid name: '
        "lower-case letters, digits and '-', starting and ending with a letter or digit",
        "specs/web.yaml:12: <document 2>: spec.schedule: required for a cron task "
        "(or set type: daemon)",
    ]


def test_all_errors_of_all_files_in_one_run(here: Path) -> None:
    write(Path("specs/a.yaml"), task_yaml("a", maxConcurrency=0, timeoutSeconds=0))
    write(Path("specs/b.yaml"), task_yaml("b", schedule="61 * * * *"))
    write(Path("specs/c.yaml"), task_yaml("c"))
    result = load("specs")
    assert messages(result) == [
        "specs/a.yaml:6: a: spec.maxConcurrency: 0 is less than the minimum of 1",
        "specs/a.yaml:7: a: spec.timeoutSeconds: 0 is less than the minimum of 1",
        "specs/b.yaml:6: b: spec.schedule: minute: 61 is out of range 0-59",
    ]
    assert list(result.tasks) == ["c"]
    assert result.files["specs/a.yaml"].tasks == []


def test_long_values_are_quoted_short(here: Path) -> None:
    error = one_error(concurrencyPolicy="x" * 5000)
    assert len(error) < 400
    assert '"' + "x" * 200 + '..."' in error


# --- schema rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"maxConcurrency": "1"}, 'spec.maxConcurrency: "1" is a string, expected an integer'),
        ({"maxConcurrency": True}, "spec.maxConcurrency: true is a boolean, expected an integer"),
        ({"maxConcurrency": 1.5}, "spec.maxConcurrency: 1.5 is a number, expected an integer"),
        ({"maxConcurrency": 1001}, "spec.maxConcurrency: 1001 is greater than the maximum of 1000"),
        (
            {"startingDeadlineSeconds": -1},
            "spec.startingDeadlineSeconds: -1 is less than the minimum of 0",
        ),
        (
            {"terminationGracePeriodSeconds": -5},
            "spec.terminationGracePeriodSeconds: -5 is less than the minimum of 0",
        ),
        (
            {"concurrencyPolicy": "Allow"},
            'spec.concurrencyPolicy: "Allow" is not one of Forbid, Replace',
        ),
        (
            {"concurrencyPolicy": "forbid"},
            'spec.concurrencyPolicy: "forbid" is not one of Forbid, Replace; did you mean Forbid?',
        ),
        (
            {"type": "deamon"},
            'spec.type: "deamon" is not one of cron, daemon; did you mean daemon?',
        ),
        ({"command": []}, "spec.command: must not be an empty list"),
        ({"command": ""}, "spec.command: must not be empty"),
        ({"command": ["", "x"]}, "spec.command[0]: must not be empty"),
        (
            {"command": ["ls", 3]},
            "spec.command[1]: 3 is an integer, expected a string (quote it if it is meant as text)",
        ),
        (
            {"command": {"a": 1}},
            "spec.command: expected a list of strings or a string, got a mapping",
        ),
        ({"user": -1}, "spec.user: -1 is less than the minimum of 0"),
        ({"user": ""}, "spec.user: must not be empty"),
        ({"user": [1]}, "spec.user: expected a user name or a uid, got a list"),
        ({"workingDir": "srv"}, 'spec.workingDir: "srv" must be an absolute path'),
        ({"suspend": "no"}, 'spec.suspend: "no" is a string, expected true or false'),
        ({"hosts": "web-*"}, 'spec.hosts: "web-*" is a string, expected a list'),
        ({"hosts": [""]}, "spec.hosts[0]: must not be empty"),
        (
            {"timezone": None},
            "spec.timezone: null is null, expected a string (quote it if it is meant as text)",
        ),
        ({"schedul": "x"}, "spec.schedul: unknown field; did you mean schedule?"),
        ({"comand": ["x"]}, "spec.comand: unknown field; did you mean command?"),
        (
            {"restartPolicy": "Always"},
            "spec.restartPolicy: only allowed for a daemon (type: daemon)",
        ),
    ],
)
def test_schema_messages(here: Path, spec: dict[str, object], message: str) -> None:
    assert one_error(**spec).split(": ", 2)[2] == message


def test_missing_required_fields(here: Path) -> None:
    text = "apiVersion: reconciler/v1\nmetadata: {}\nspec:\n  schedule: '@daily'\n"
    assert errors_for(text) == [
        "specs/web.yaml:1: <document 1>: kind: required field is missing",
        "specs/web.yaml:2: <document 1>: metadata.name: required field is missing",
        "specs/web.yaml:3: <document 1>: spec.command: required field is missing",
    ]


def test_api_version_and_kind(here: Path) -> None:
    text = "apiVersion: reconciler/v2\nkind: CronJob\nmetadata: {name: a}\nspec: {command: x, schedule: '@daily'}\n"
    assert errors_for(text) == [
        'specs/web.yaml:1: a: apiVersion: "reconciler/v2" is not supported; expected reconciler/v1',
        'specs/web.yaml:2: a: kind: "CronJob" is not supported; expected Task',
    ]


def test_unknown_top_level_and_metadata_fields_suggest(here: Path) -> None:
    text = task_yaml("a").replace("metadata:\n", "metdata: {}\nmetadata:\n  label: {}\n")
    assert errors_for(text) == [
        "specs/web.yaml:3: a: metdata: unknown field; did you mean metadata?",
        "specs/web.yaml:5: a: metadata.label: unknown field; did you mean labels?",
    ]


def test_names(here: Path) -> None:
    assert errors_for(task_yaml("a" * 63)) == []
    assert errors_for(task_yaml("a" * 64))[0].endswith(
        'metadata.name: "' + "a" * 64 + '" is longer than 63 characters'
    )
    for bad in ["-a", "a-", "A", "a_b", "a.b"]:
        assert "is not a valid name" in errors_for(task_yaml(json.dumps(bad)))[0]


def test_daemon_rules(here: Path) -> None:
    text = task_yaml(
        "d",
        type="daemon",
        schedule="* * * * *",
        maxConcurrency=2,
        concurrencyPolicy="Replace",
        startingDeadlineSeconds=5,
    )
    assert errors_for(text) == [
        "specs/web.yaml:7: d: spec.schedule: not allowed for a daemon (cron tasks only)",
        "specs/web.yaml:8: d: spec.maxConcurrency: not allowed for a daemon (cron tasks only)",
        "specs/web.yaml:9: d: spec.concurrencyPolicy: not allowed for a daemon (cron tasks only)",
        "specs/web.yaml:10: d: spec.startingDeadlineSeconds: not allowed for a daemon (cron tasks only)",
    ]


def test_unquoted_dates_and_binary_are_not_strings(here: Path) -> None:
    text = task_yaml("a").replace(
        "  name: a\n", "  name: a\n  labels: {since: 2024-01-01, b: !!binary aGk=}\n"
    )
    assert errors_for(text) == [
        "specs/web.yaml:5: a: metadata.labels.b: expected a string, got binary data "
        "(quote it if it is meant as text)",
        "specs/web.yaml:5: a: metadata.labels.since: expected a string, got a date or time "
        "(quote it if it is meant as text)",
    ]


def test_labels_are_string_to_string(here: Path) -> None:
    text = task_yaml("a").replace(
        "  name: a\n", "  name: a\n  labels: {team: infra, on: yes, n: 1}\n"
    )
    assert errors_for(text) == [
        "specs/web.yaml:5: a: metadata.labels: mapping key true must be a string (quote it)",
    ]
    text = task_yaml("a").replace("  name: a\n", "  name: a\n  labels: {team: infra, tier: 1}\n")
    assert errors_for(text) == [
        "specs/web.yaml:5: a: metadata.labels.tier: 1 is an integer, expected a string "
        "(quote it if it is meant as text)",
    ]


# --- env values never appear ------------------------------------------------------------


@pytest.mark.parametrize(
    "env_yaml, expected",
    [
        ("{API_KEY: 123456}", "spec.env.API_KEY: value must be a string"),
        ("{API_KEY: [s3cr3t]}", "spec.env.API_KEY: value must be a string"),
        ("{API_KEY: !!int s3cr3t}", "spec.env.API_KEY: value is not a valid !!int"),
        ("{1API: s3cr3t}", "spec.env.1API: not a valid environment variable name"),
        ('{API_KEY: "s3cr3t\\0"}', "spec.env.API_KEY: value must not contain NUL characters"),
    ],
)
def test_env_values_never_appear_in_errors(here: Path, env_yaml: str, expected: str) -> None:
    text = task_yaml("a") + f"  env: {env_yaml}\n"
    errors = errors_for(text)
    assert [e.split(": ", 2)[2] for e in errors] == [expected]
    assert "s3cr3t" not in "".join(errors) and "123456" not in "".join(errors)


# --- checks beyond the schema ---------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, message",
    [
        ("0 0 0 * * * *", "expected 5 or 6 fields, got 7"),
        ("*/0 * * * *", "minute: step of 0"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("FOO * * * *", "minute: 'FOO' is not a number"),
        ("0 0 0 30 2 *", "never fires"),
        ("@every 0s", "@every"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_schedules_must_parse(here: Path, schedule: str, message: str) -> None:
    error = one_error(schedule=schedule)
    assert error.startswith("specs/web.yaml:6: rotate-logs: spec.schedule: ")
    assert message in error


@pytest.mark.parametrize(
    "zone, message",
    [
        ("Mars/Base", '"Mars/Base" is not a known time zone'),
        ("Europe/Berln", '"Europe/Berln" is not a known time zone; did you mean Europe/Berlin?'),
        ("europe/berlin", '"europe/berlin" is not a known time zone; did you mean Europe/Berlin?'),
        (
            "../../etc/passwd",
            '"../../etc/passwd" is not a time zone name (IANA names look like Europe/Berlin)',
        ),
        (
            "/etc/localtime",
            '"/etc/localtime" is not a time zone name (IANA names look like Europe/Berlin)',
        ),
        ("Europe", '"Europe" is not a known time zone'),
    ],
)
def test_time_zones_must_exist(here: Path, zone: str, message: str) -> None:
    assert one_error(timezone=zone).split(": ", 3)[3] == message


@pytest.mark.parametrize(
    "entry, message",
    [
        ("10.0.0.0/33", "10.0.0.0/33 is not a valid CIDR block"),
        ("10.0.1.5/24", "10.0.1.5/24 has host bits set; did you mean 10.0.1.0/24?"),
        ("300.1.1.1", "300.1.1.1 is not a valid IPv4 address"),
        ("web 1", "web 1 is not a valid hostname or hostname pattern"),
    ],
)
def test_hosts_entries_must_be_valid(here: Path, entry: str, message: str) -> None:
    error = one_error(hosts=["web-*", entry])
    assert error == f"specs/web.yaml:6: rotate-logs: spec.hosts[1]: {message}"


def test_schema_and_rule_errors_are_reported_together(here: Path) -> None:
    errors = errors_for(
        task_yaml("a", schedule="*/0 * * * *", timezone="Mars/Base", maxConcurrency=0)
    )
    assert [e.split(": ", 2)[2] for e in errors] == [
        "spec.schedule: minute: step of 0",
        'spec.timezone: "Mars/Base" is not a known time zone',
        "spec.maxConcurrency: 0 is less than the minimum of 1",
    ]


def test_nul_in_command_is_refused(here: Path) -> None:
    assert one_error(command=["ls", "a\x00b"]).endswith(
        "spec.command[1]: must not contain NUL characters"
    )


# --- names unique across files ----------------------------------------------------------


def test_duplicate_names_across_files_name_both_places(here: Path) -> None:
    write(Path("specs/a.yaml"), task_yaml("same"))
    write(Path("specs/b.yaml"), task_yaml("other") + "---\n" + task_yaml("same"))
    result = load("specs")
    assert messages(result) == [
        "specs/b.yaml:9: same: metadata.name: duplicate task name; also defined at specs/a.yaml:1"
    ]
    assert sorted(result.tasks) == ["same"]  # the later file is invalid as a whole
    assert result.tasks["same"].file == "specs/a.yaml"


def test_duplicate_names_within_a_file(here: Path) -> None:
    text = task_yaml("same") + "---\n" + task_yaml("same")
    assert errors_for(text) == [
        "specs/web.yaml:9: same: metadata.name: duplicate task name; also defined at "
        "specs/web.yaml:1"
    ]


def test_find_duplicates_over_file_loads(here: Path) -> None:
    a = load_file(write(Path("a.yaml"), task_yaml("x")), "a.yaml")
    b = load_file(write(Path("b.yaml"), task_yaml("x")), "b.yaml")
    errors = find_duplicates({"a.yaml": a, "b.yaml": b})
    assert [str(e) for e in errors] == [
        "b.yaml:1: x: metadata.name: duplicate task name; also defined at a.yaml:1"
    ]
    assert find_duplicates({"a.yaml": a, "c.yaml": FileLoad("c.yaml")}) == []


# --- the Task ---------------------------------------------------------------------------


def full_task(here: Path) -> Task:
    text = (
        "# comment\n"
        + HEADER
        + "metadata:\n  name: rotate-logs\n  labels: {team: infra}\n"
        + "spec:\n"
        + "  schedule: '0 */5 * * * *'\n"
        + "  timezone: Europe/Berlin\n"
        + "  command: [/usr/sbin/logrotate, /etc/logrotate.conf]\n"
        + "  hosts: ['10.0.0.5', 10.0.1.0/24, web-*]\n"
        + "  maxConcurrency: 2\n"
        + "  concurrencyPolicy: Replace\n"
        + "  startingDeadlineSeconds: 20\n"
        + "  timeoutSeconds: 3600\n"
        + "  terminationGracePeriodSeconds: 15\n"
        + "  env: {LANG: C.UTF-8, API_KEY: s3cr3t}\n"
        + "  workingDir: /srv/app\n"
        + "  user: deploy\n"
        + "  suspend: false\n"
    )
    result = load(write(Path("specs/web.yaml"), text))
    assert result.errors == []
    return result.tasks["rotate-logs"]


def test_task_fields(here: Path) -> None:
    task = full_task(here)
    assert (task.name, task.file, task.line, task.type) == (
        "rotate-logs",
        "specs/web.yaml",
        2,
        "cron",
    )
    assert dict(task.labels) == {"team": "infra"}
    assert task.schedule is not None and task.schedule_text == "0 */5 * * * *"
    assert task.timezone == ZoneInfo("Europe/Berlin") and task.timezone_name == "Europe/Berlin"
    assert task.command == ("/usr/sbin/logrotate", "/etc/logrotate.conf")
    assert task.hosts is not None and [h.text for h in task.hosts] == [
        "10.0.0.5",
        "10.0.1.0/24",
        "web-*",
    ]
    assert [h.kind for h in task.hosts] == ["ip", "cidr", "name"]
    assert (task.max_concurrency, task.concurrency_policy) == (2, "Replace")
    assert (task.starting_deadline_seconds, task.timeout_seconds) == (20, 3600)
    assert task.termination_grace_period_seconds == 15
    assert task.restart_policy == "Never"  # cron runs are never restarted
    assert dict(task.env) == {"LANG": "C.UTF-8", "API_KEY": "s3cr3t"}
    assert (task.working_dir, task.user, task.suspend) == ("/srv/app", "deploy", False)
    assert task.source.startswith("apiVersion: reconciler/v1\n") and task.source.endswith(
        "suspend: false"
    )


def test_defaults_are_filled_in_the_document(here: Path) -> None:
    result = load(write(Path("a.yaml"), task_yaml("c") + "---\n" + task_yaml("d", type="daemon")))
    cron, daemon = result.tasks["c"], result.tasks["d"]
    assert json.loads(json.dumps(cron.document)) == {
        "apiVersion": "reconciler/v1",
        "kind": "Task",
        "metadata": {"name": "c", "labels": {}},
        "spec": {
            "type": "cron",
            "schedule": "@daily",
            "command": ["true"],
            "maxConcurrency": 1,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 10,
            "terminationGracePeriodSeconds": 30,
            "env": {},
            "suspend": False,
        },
    }
    assert json.loads(json.dumps(daemon.document))["spec"] == {
        "type": "daemon",
        "command": ["true"],
        "terminationGracePeriodSeconds": 30,
        "restartPolicy": "Always",
        "env": {},
        "suspend": False,
    }
    assert (daemon.schedule, daemon.schedule_text, daemon.restart_policy) == (None, None, "Always")
    assert (daemon.max_concurrency, daemon.timeout_seconds, daemon.hosts) == (1, None, None)
    assert cron.timezone == host_zone() and cron.timezone_name is None


def test_argv(here: Path) -> None:
    task = full_task(here)
    assert task.argv() == ["/usr/sbin/logrotate", "/etc/logrotate.conf"]
    shell = load(write(Path("s.yaml"), task_yaml("s", command="echo hi | wc -c"))).tasks["s"]
    assert shell.command == "echo hi | wc -c"
    assert shell.argv() == ["/bin/sh", "-c", "echo hi | wc -c"]


def test_fingerprints(here: Path) -> None:
    def fp(**spec: object) -> tuple[str, str]:
        task = load(write(Path("f.yaml"), task_yaml("f", type="daemon", **spec))).tasks["f"]
        return task.process_fingerprint(), task.spec_fingerprint()

    base = fp(command=["a"], env={"A": "1"})
    assert fp(command=["a"], env={"A": "1"}) == base  # stable
    assert fp(command=["a"], env={"A": "1"}, suspend=True)[0] == base[0]  # not process-relevant
    assert fp(command=["a"], env={"A": "1"}, suspend=True)[1] != base[1]
    for change in ({"command": ["b"]}, {"env": {"A": "2"}}, {"user": "x"}, {"workingDir": "/x"}):
        spec = {"command": ["a"], "env": {"A": "1"}, **change}
        assert fp(**spec)[0] != base[0], change
    assert fp(command="a", env={"A": "1"})[0] != fp(command=["a"], env={"A": "1"})[0]


def test_task_is_immutable_hashable_and_shareable(here: Path) -> None:
    task = full_task(here)
    with pytest.raises(AttributeError):
        task.name = "x"  # type: ignore[misc]
    for mapping in (task.document, task.env, task.labels, task.document["spec"]):
        with pytest.raises(TypeError):
            mapping["x"] = "y"  # type: ignore[index]
    assert isinstance(task.document["spec"]["command"], tuple)
    assert hash(task) == hash(full_task(here))
    assert task == full_task(here)
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda: seen.append(task.spec_fingerprint())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1


def test_masked_document(here: Path) -> None:
    task = full_task(here)
    assert masked_document(task.document)["spec"]["env"] == {"LANG": "***", "API_KEY": "***"}
    assert task.document["spec"]["env"]["API_KEY"] == "s3cr3t"


def test_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert host_zone() == ZoneInfo("America/New_York")
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert host_zone() == ZoneInfo("Europe/Berlin")
    monkeypatch.setenv("TZ", "/usr/share/zoneinfo/Asia/Tokyo")
    assert host_zone() == ZoneInfo("Asia/Tokyo")
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # POSIX rule: not a key; falls through
    monkeypatch.delenv("TZ")
    assert isinstance(host_zone(), ZoneInfo)


def test_timezone_given_in_the_task_wins_over_the_host(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    result = load(write(Path("a.yaml"), task_yaml("a") + "---\n" + task_yaml("b", timezone="UTC")))
    assert result.tasks["a"].timezone == ZoneInfo("Asia/Tokyo")
    assert result.tasks["b"].timezone == ZoneInfo("UTC")


def test_task_survives_pickle_and_deepcopy(here: Path) -> None:
    import copy
    import pickle

    task = full_task(here)
    for clone in (pickle.loads(pickle.dumps(task)), copy.deepcopy(task)):
        assert clone == task and hash(clone) == hash(task)
        assert clone.process_fingerprint() == task.process_fingerprint()
        with pytest.raises(TypeError):
            clone.document["kind"] = "x"  # type: ignore[index]
