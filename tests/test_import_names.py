"""Task names derived from commands: valid, at most 63 characters, unique."""

from __future__ import annotations

import pytest

from reconciler.importer.model import Draft
from reconciler.importer.names import NAME_PATTERN, assign_names, derive_name, sanitize


@pytest.mark.parametrize(
    "command, name",
    [
        ("/usr/local/bin/backup.sh --full", "backup"),
        ("cd / && run-parts --report /etc/cron.hourly", "cron-hourly"),
        ("test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )",
         "cron-daily"),
        ("[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then "
         "/usr/lib/php/sessionclean; fi", "sessionclean"),
        ("test -x /usr/bin/certbot && perl -e 'sleep 1' && certbot -q renew", "certbot"),
        ("LANG=C nice_tool --x", "nice-tool"),
        ("exec /srv/bin/Worker_Main", "worker-main"),
        ("/usr/local/php5/bin/php /srv/jobs/report.php --daily", "report"),
        ("python3.11 -m app.jobs.cleanup", "app-jobs-cleanup"),
        ("bash -c 'echo hi'", "bash"),
        ("'unbalanced quote", "unbalanced"),  # the shell would fail; still a name
        ("%%%", "task"),
    ],
)
def test_derived_names(command: str, name: str) -> None:
    assert derive_name(command) == name
    assert NAME_PATTERN.match(name)


def test_sanitize_limits_length_and_characters() -> None:
    long = sanitize("A" * 40 + "_" + "b" * 40)
    assert len(long) == 63 and NAME_PATTERN.match(long)
    assert sanitize("x" * 62 + "-y") == "x" * 62  # no dash left at the cut
    assert sanitize("--Über  Tool!--") == "ber-tool"
    assert sanitize("...") == "task"


def _draft(hint: str, explicit: str | None = None) -> Draft:
    return Draft(line=1, name_hint=hint, spec={}, explicit_name=explicit)


def test_unique_names_with_suffixes_within_the_limit() -> None:
    base = "n" * 63
    drafts = [_draft(base), _draft(base), _draft(base), _draft("sync"), _draft("sync")]
    names = [t.name for t in assign_names(drafts, reserved={"sync"})]
    assert names == [base, "n" * 61 + "-2", "n" * 61 + "-3", "sync-2", "sync-3"]
    assert all(len(n) <= 63 and NAME_PATTERN.match(n) for n in names)


def test_names_asked_for_in_comments_win() -> None:
    drafts = [_draft("backup"), _draft("other", explicit="Backup")]
    assert [t.name for t in assign_names(drafts)] == ["backup-2", "backup"]
