"""Crontab conversion: cron's reading rules, and the exact documents for the fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.importer import convert, decode, is_system_crontab, render_stream
from reconciler.importer.crontab import (
    build_command,
    convert_crontab,
    parse_env_line,
    split_percent,
)

DATA = Path(__file__).parent / "data" / "import"


def _convert_fixture(name: str, *, system: bool) -> tuple[str, list[str]]:
    text = decode((DATA / name).read_bytes(), "crontab")
    result = convert("crontab", text, name, system=system, validate=False)
    return render_stream(result.tasks), [p.render(name) for p in result.problems]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("A=b", ("A", "b")),
        ("A = b", ("A", "b")),
        ("\t A=b  \t", ("A", "b")),
        ('A="b c"', ("A", "b c")),
        ("A='b c'  ", ("A", "b c")),
        ('"A B"=c', ("A B", "c")),
        ("A=", ("A", "")),
        ('A=""', ("A", "")),
        ("A=b=c", ("A", "b=c")),
        ('A=b "c" d', ("A", 'b "c" d')),  # unquoted: runs to the end, inner quotes stay
        ("PATH=$PATH:/opt/bin", ("PATH", "$PATH:/opt/bin")),  # cron does not expand
        ('A="b" x', None),  # only blanks may follow a quoted value
        ('A="unterminated', None),
        ("=x", None),
        ("A b=c", None),
        ("0 * * * * x=1", None),
        ("@daily a=b", None),
        ("*/5 * * * * cmd", None),
    ],
)
def test_environment_lines_as_cron_reads_them(line: str, expected: tuple[str, str] | None) -> None:
    assert parse_env_line(line) == expected


@pytest.mark.parametrize(
    "command, expected",
    [
        ("cmd", ("cmd", None)),
        ("cmd%", ("cmd", None)),  # empty stdin: the child sees EOF either way
        ("cmd%a%b", ("cmd", "a\nb")),
        ("cmd%a%", ("cmd", "a\n")),
        ("date +\\%s", ("date +%s", None)),
        ("x%a\\%b", ("x", "a%b")),
        ("x%a\\nb", ("x", "a\\nb")),  # other backslashes stay
        ("x%a\\", ("x", "a\\")),
        ("a\\\\%b", ("a\\\\", "b")),  # an escaped backslash does not escape the %
        ("printf '50\\%'%in", ("printf '50%'", "in")),
    ],
)
def test_percent_splits_command_and_stdin(command: str, expected: tuple[str, str | None]) -> None:
    assert split_percent(command) == expected


@pytest.mark.parametrize(
    "command, stdin, shell, expected",
    [
        ("backup --all", None, "/bin/sh", "backup --all"),
        ("backup --all", None, "/bin/bash", ["/bin/bash", "-c", "backup --all"]),
        ('mail -s "hi" root', "body\n", "/bin/sh", "printf '%s' 'body\n' | mail -s \"hi\" root"),
        ("a; b", "in", "/bin/sh", "printf '%s' in | /bin/sh -c 'a; b'"),
        ("cat > $F", "it's", "/bin/sh", "printf '%s' 'it'\"'\"'s' | /bin/sh -c 'cat > $F'"),
        ("mail root", "x", "/bin/bash", "printf '%s' x | /bin/bash -c 'mail root'"),
    ],
)
def test_build_command(
    command: str, stdin: str | None, shell: str, expected: str | list[str]
) -> None:
    assert build_command(command, stdin, shell) == expected


def test_user_crontab_exact_documents() -> None:
    stream, problems = _convert_fixture("user.crontab", system=False)
    assert stream == (DATA / "user.crontab.expected.yaml").read_text()
    assert problems == [
        "user.crontab:31: cannot convert: not an environment setting nor 5 time fields "
        "and a command",
        "user.crontab:32: cannot convert: no command after 5 time fields",
    ]


def test_system_crontab_exact_documents() -> None:
    stream, problems = _convert_fixture("system.crontab", system=True)
    assert stream == (DATA / "system.crontab.expected.yaml").read_text()
    assert problems == [
        "system.crontab:25: cannot convert: no command after 5 time fields, a user",
    ]


def test_cron_d_exact_documents() -> None:
    stream, problems = _convert_fixture("cron.d-php-certbot", system=True)
    assert stream == (DATA / "cron.d-php-certbot.expected.yaml").read_text()
    assert problems == []


def test_user_crontab_values() -> None:
    """The same fixture read back as data: what each cron feature turned into."""
    stream, _ = _convert_fixture("user.crontab", system=False)
    docs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(stream)}
    assert list(docs) == [
        "logrotate", "report", "market-open", "sync", "warm-cache", "find", "date",
        "weekly-cleanup", "mail", "payday", "sync-2", "healthcheck",
    ]
    base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                "CACHE_DIR": "/var/cache/app data"}
    assert docs["logrotate"]["env"] == base_env
    assert "timezone" not in docs["logrotate"]  # no CRON_TZ yet: the host's zone
    assert docs["market-open"]["timezone"] == "America/New_York"
    assert docs["weekly-cleanup"]["timezone"] == "Europe/Berlin"
    assert docs["weekly-cleanup"]["env"] == {**base_env, "SHELL": "/bin/bash"}
    assert docs["weekly-cleanup"]["command"] == [
        "/bin/bash", "-c", "[[ -d /srv/app ]] && /srv/app/bin/weekly-cleanup"
    ]
    assert docs["warm-cache"]["schedule"] == "@reboot"
    assert docs["find"]["schedule"] == "@daily"
    assert docs["date"]["schedule"] == "0 0 1 jan,jul *"
    assert docs["date"]["command"] == "date +%Y-%m-%d >> /var/log/app/halfyear.log"
    assert docs["report"]["command"] == (
        "printf '%s' 'Good morning,\nthe nightly report is attached.\n'"
        " | /usr/local/bin/report --to team@example.com"
    )
    assert docs["mail"]["command"] == (
        "printf '%s' 'Check the queue.\nCount: %d' | /bin/bash -c 'mail -s \"backlog\" "
        "dev@example.com'"
    )


def test_comments_directly_above_are_carried_and_name_comment_names() -> None:
    text = (
        "# header, separated by a blank line: not carried\n"
        "\n"
        "# first line\n"
        "#second line\n"
        "# name: Nightly_Backup\n"
        "0 2 * * * /usr/local/bin/backup.sh\n"
        "# above an environment line: not carried\n"
        "MAILTO=root\n"
        "0 3 * * * /usr/local/bin/backup.sh\n"
    )
    result = convert("crontab", text, "c", validate=False)
    first, second = result.tasks
    assert first.name == "nightly-backup"
    assert first.comments == [
        "# first line", "#second line", "# from c:6: 0 2 * * * /usr/local/bin/backup.sh"
    ]
    assert second.name == "backup"
    assert second.comments == [
        "# from c:9: 0 3 * * * /usr/local/bin/backup.sh",
        "# MAILTO=root: reconciler sends no mail; output goes to its log",
    ]


def test_environment_applies_only_to_entries_after_it() -> None:
    text = "0 1 * * * a\nFOO=1\n0 2 * * * b\nFOO=2\nBAR=x\n0 3 * * * c\n"
    tasks = convert("crontab", text, "c", validate=False).tasks
    assert [t.spec.get("env") for t in tasks] == [None, {"FOO": "1"}, {"FOO": "2", "BAR": "x"}]


def test_timezone_settings() -> None:
    text = (
        "TZ=:Europe/Paris\n0 1 * * * a\n"  # glibc's ':' spelling
        "CRON_TZ=Asia/Tokyo\nTZ=Europe/Rome\n0 2 * * * b\n"  # CRON_TZ wins for the schedule
        "CRON_TZ=\n0 3 * * * c\n"
    )
    tasks = convert("crontab", text, "c", validate=False).tasks
    assert [t.spec.get("timezone") for t in tasks] == ["Europe/Paris", "Asia/Tokyo", None]
    # TZ is also what the job saw in its environment under cron.
    assert [t.spec["env"]["TZ"] for t in tasks] == [":Europe/Paris", "Europe/Rome", "Europe/Rome"]


def test_unknown_zone_reports_the_setting_and_every_entry_it_governs() -> None:
    text = "CRON_TZ=Mars/Olympus\n0 1 * * * a\n0 2 * * * b\nCRON_TZ=UTC\n0 3 * * * c\n"
    result = convert("crontab", text, "c", validate=False)
    assert [t.spec["timezone"] for t in result.tasks] == ["UTC"]
    assert [p.render("c") for p in result.problems] == [
        "c:1: cannot convert: CRON_TZ=Mars/Olympus: not a known IANA time zone",
        "c:2: cannot convert: schedule zone unknown: CRON_TZ at line 1 ('Mars/Olympus') "
        "is not a known time zone",
        "c:3: cannot convert: schedule zone unknown: CRON_TZ at line 1 ('Mars/Olympus') "
        "is not a known time zone",
    ]


def test_schedules_pass_through_unchanged() -> None:
    text = "0\t9-17/2  *  JAN-jun,Dec\tMon-FRI,7 a\n@annually b\n@every 10m c\n"
    tasks = convert("crontab", text, "c", validate=False).tasks
    assert [t.spec["schedule"] for t in tasks] == [
        "0 9-17/2 * JAN-jun,Dec Mon-FRI,7", "@annually", "@every 10m"
    ]


def test_run_as_and_hosts_options() -> None:
    result = convert_crontab("0 1 * * * a\n", "c", system=False, hosts=["web-1"], run_as="app")
    assert result.drafts[0].spec == {
        "type": "cron", "schedule": "0 1 * * *", "command": "a", "hosts": ["web-1"],
        "user": "app",
    }


def test_system_user_column_that_is_a_path_is_reported() -> None:
    result = convert("crontab", "0 5 * * * /usr/bin/x --y\n", "c", system=True, validate=False)
    assert result.tasks == []
    assert [p.render("c") for p in result.problems] == [
        "c:1: cannot convert: '/usr/bin/x' in the user column is not a user name "
        "(a user crontab? use --no-system)"
    ]


def test_invalid_utf8_line_is_reported_and_others_convert() -> None:
    text = decode(b"0 1 * * * echo \xff\n0 2 * * * echo ok\n", "crontab")
    result = convert("crontab", text, "c", validate=False)
    assert [t.spec["command"] for t in result.tasks] == ["echo ok"]
    assert [p.render("c") for p in result.problems] == [
        "c:1: cannot convert: the line is not valid UTF-8"
    ]


def test_crlf_line_ends_and_trailing_blanks() -> None:
    tasks = convert("crontab", "0 1 * * * a  \r\n0 2 * * * b\\ \r\n", "c", validate=False).tasks
    assert [t.spec["command"] for t in tasks] == ["a", "b\\ "]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/etc/crontab", True),
        ("/etc/cron.d/certbot", True),
        ("/etc/cron.d/../crontab", True),
        ("/etc/cron.daily/logrotate", False),
        ("/var/spool/cron/crontabs/alice", False),
        ("crontab", False),
    ],
)
def test_system_format_detected_by_path(path: str, expected: bool) -> None:
    assert is_system_crontab(path) is expected
