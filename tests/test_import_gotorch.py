"""gotorch task files: the fixture's exact documents, and every entry that is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.importer import convert, decode, render_stream

DATA = Path(__file__).parent / "data" / "import"
ORDER_WARNING = (
    "Times {t!r} read in gotorch's documented order (second minute hour day-of-month month "
    "day-of-week): month {m!r}, day-of-week {d!r}; gotorch's own code read the 5th field as "
    "day-of-week and the 6th as month: check which your task meant"
)


def _convert(text: str, source: str = "t.json") -> tuple[list[dict], list[str]]:
    result = convert("gotorch", text, source, validate=False)
    docs = [t.document() for t in result.tasks]
    return docs, [p.render(source) for p in result.problems]


def test_fixture_exact_documents_and_problems() -> None:
    text = decode((DATA / "tasks.json").read_bytes(), "gotorch")
    result = convert("gotorch", text, "tasks.json", validate=False)
    assert render_stream(result.tasks) == (DATA / "tasks.json.expected.yaml").read_text()
    assert [p.render("tasks.json") for p in result.problems] == [
        "tasks.json:2: warning: [0]: " + ORDER_WARNING.format(t="0 30 6 * * 1-5", m="*", d="1-5"),
        "tasks.json:21: warning: [3]: unknown key 'Retries' ignored (gotorch ignored it too)",
        "tasks.json:29: cannot convert: [4]: Times '0 0 0 1 * 1' restricts both day-of-month "
        "and day-of-week: gotorch ran only when both matched, reconciler (as cron) runs when "
        "either does",
        "tasks.json:39: cannot convert: [6]: no command: Command (or Script) is missing or empty",
        "tasks.json:40: cannot convert: [7]: expected an object, got a string",
        "tasks.json:41: cannot convert: [8]: Times '0 * * * *' has 5 fields; gotorch takes 6 "
        "(second minute hour day-of-month month day-of-week)",
        "tasks.json:42: cannot convert: [9]: TaskType 'cron' is neither 'common' nor 'daemon'",
        "tasks.json:43: cannot convert: [10]: Max must be a whole number, got a string",
        "tasks.json:44: warning: [11]: " + ORDER_WARNING.format(t="0 0 7 * * MON", m="*", d="MON"),
    ]


def test_fixture_values() -> None:
    text = decode((DATA / "tasks.json").read_bytes(), "gotorch")
    stream = render_stream(convert("gotorch", text, "tasks.json", validate=False).tasks)
    specs = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(stream)}
    assert specs == {
        "report": {
            "type": "cron", "schedule": "0 30 6 * * 1-5",
            "command": "/usr/local/php5/bin/php /srv/jobs/report.php --daily",
            "hosts": ["192.168.1.9", "172.16.18.16"], "maxConcurrency": 1,
        },
        "queue-worker": {  # Script, daemon: Times dropped (noted), Max 1 = one process
            "type": "daemon", "command": "/usr/local/bin/queue-worker --queue mail",
            "hosts": ["10.0.0.5"],
        },
        "find": {"type": "cron", "schedule": "*/30 * * * * *",
                 "command": "find /tmp/uploads -mmin +60 -delete"},
        "sync-prices": {  # lower-case keys match, as in Go; Ips [] means every host
            "type": "cron", "schedule": "15 */5 8-18 * * *", "command": "sync-prices.sh --all",
        },
        # A daemon's Max: how many copies gotorch kept running.
        "watcher": {"type": "daemon", "command": "/srv/bin/watcher --dir /srv/in", "replicas": 3},
        "report-2": {
            "type": "cron", "schedule": "0 0 7 * * MON",
            "command": "php /srv/jobs/report.php --weekly", "maxConcurrency": 2,
        },
    }


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"Command": "x"}', "t.json:1: cannot convert: a gotorch task file is a JSON array"),
        ('[\n  {"Command": "x",}\n]', "t.json:2: cannot convert: invalid JSON: Expecting "
         "property name enclosed in double quotes"),
        ('[\n {"Command": "x"},\n]', "t.json:3: cannot convert: invalid JSON: Expecting value"),
        ('[{"Command": "x"}] []', "t.json:1: cannot convert: invalid JSON: extra data after "
         "the array"),
        ('[{"Command": "x", "Max": NaN}]', "t.json:1: cannot convert: invalid JSON: NaN is "
         "not JSON"),
        ('[{"Command": "x"} {"Command": "y"}]', "t.json:1: cannot convert: invalid JSON: "
         "expected , or ]"),
    ],
)
def test_a_file_go_could_not_decode_converts_nothing(text: str, problem: str) -> None:
    docs, problems = _convert(text)
    assert docs == []
    assert problems == [problem]


@pytest.mark.parametrize(
    "entry, problem",
    [
        ('{"Command": "a", "Script": "b", "Times": "0 * * * * *"}',
         "both Command and Script are given; keep one"),
        ('{"Command": "a", "Times": "0 * * * * *", "Times": "1 * * * * *"}',
         "key 'Times' given more than once"),
        ('{"Command": "a", "Times": "0 * * * * *", "times": "1 * * * * *"}',
         "key 'times' repeats 'Times' (keys match case-insensitively)"),
        ('{"Command": 5, "Times": "0 * * * * *"}', "Command must be a string, got a number"),
        ('{"Command": "  ", "Times": "0 * * * * *"}',
         "no command: Command (or Script) is missing or empty"),
        ('{"Command": "a"}', "a common task needs Times"),
        ('{"Command": "a", "Times": "0 * * * * *", "Max": 1.5}',
         "Max must be a whole number, got a number"),
        ('{"Command": "a", "Times": "0 * * * * *", "Max": true}',
         "Max must be a whole number, got a boolean"),
        ('{"Command": "a", "Times": "0 * * * * *", "Ips": "10.0.0.1"}',
         "Ips must be an array of strings"),
        ('{"Command": "a", "Times": "0 * * * * *", "Ips": [1]}',
         "Ips must be an array of strings"),
        ('{"Command": "a", "Times": "@daily"}',
         "Times '@daily' has 1 fields; gotorch takes 6 (second minute hour day-of-month "
         "month day-of-week)"),
        ("[]", "expected an object, got an array"),
    ],
)
def test_bad_entries_are_reported_at_their_line(entry: str, problem: str) -> None:
    text = '[\n  {"Command": "ok", "Times": "0 0 * * * *"},\n  ' + entry + "\n]\n"
    docs, problems = _convert(text)
    assert [d["metadata"]["name"] for d in docs] == ["ok"]
    assert problems == [f"t.json:3: cannot convert: [1]: {problem}"]


def test_null_fields_are_absent_as_in_go_and_empty_array_is_fine() -> None:
    docs, problems = _convert('[{"Command": "a", "Times": "0 0 * * * *", "Ips": null}]')
    assert problems == []
    assert docs[0]["spec"] == {"type": "cron", "schedule": "0 0 * * * *", "command": "a"}
    assert _convert("  [ ]  ") == ([], [])


def test_day_fields_where_gotorch_and_cron_agree() -> None:
    """Only one day field restricted: gotorch's 'both' equals cron's rule."""
    text = (
        '[{"Command": "a", "Times": "0 0 0 */2 * 1"},'
        ' {"Command": "b", "Times": "0 0 0 1 * *"}]'
    )
    docs, problems = _convert(text)
    # The 6th field is restricted: read as the day of the week, and said so.
    assert problems == ["t.json:1: warning: [0]: "
                        + ORDER_WARNING.format(t="0 0 0 */2 * 1", m="*", d="1")]
    assert [d["spec"]["schedule"] for d in docs] == ["0 0 0 */2 * 1", "0 0 0 1 * *"]


@pytest.mark.parametrize(
    "times, month, dow",
    [("0 0 9 * 1-6 *", "1-6", "*"), ("0 0 9 * 7 1", "7", "1"), ("0 0 9 * */2 *", "*/2", "*")],
)
def test_a_restricted_5th_or_6th_field_is_read_as_documented_and_said(
    times: str, month: str, dow: str
) -> None:
    text = '[\n  {"Command": "/srv/bin/job", "Times": "' + times + '"}\n]'
    result = convert("gotorch", text, "t.json", validate=True)
    [task] = result.tasks
    assert task.spec["schedule"] == times  # second minute hour day-of-month month day-of-week
    assert [p.render("t.json") for p in result.problems] == [
        "t.json:2: warning: [0]: " + ORDER_WARNING.format(t=times, m=month, d=dow)
    ]
    assert task.comments[1] == (
        f"# gotorch: Times {times!r} read in the documented order (second minute hour "
        f"day-of-month month day-of-week): month {month!r}, day-of-week {dow!r}; gotorch's "
        "own code read the 5th field as day-of-week and the 6th as month"
    )


@pytest.mark.parametrize("times", ["*/5 0 9 1 * *", "0 0 9 15 * ?", "0 0 9 ? * *"])
def test_unrestricted_5th_and_6th_fields_need_no_warning(times: str) -> None:
    result = convert("gotorch", '[{"Command": "a", "Times": "' + times + '"}]', "t.json")
    assert [p.render("t.json") for p in result.problems] == []  # and the loader takes `?`
    assert result.tasks[0].spec["schedule"] == times


@pytest.mark.parametrize(
    "max_field, expected, note",
    [
        ('"Max": 4,', {"replicas": 4}, None),
        ('"Max": 1,', {}, None),
        ("", {}, None),
        ('"Max": 0,', {}, "# gotorch: Max 0 for a daemon: one process (replicas 1)"),
    ],
)
def test_a_daemons_max_becomes_replicas(max_field: str, expected: dict, note: str | None) -> None:
    text = '[{"Command": "/srv/bin/w", ' + max_field + ' "TaskType": "daemon"}]'
    result = convert("gotorch", text, "t.json", validate=True)  # the loader accepts it
    assert [p.render("t.json") for p in result.problems] == []
    [task] = result.tasks
    assert task.spec == {"type": "daemon", "command": "/srv/bin/w", **expected}
    assert task.comments[1:] == ([note] if note else [])


def test_hosts_and_run_as_options() -> None:
    text = '[{"Command": "a", "Times": "0 0 * * * *", "Ips": ["10.0.0.1"]},' \
           ' {"Command": "b", "Times": "0 0 * * * *"}]'
    result = convert("gotorch", text, "t", hosts=["web-*"], run_as="app", validate=False)
    assert [(t.spec["hosts"], t.spec["user"]) for t in result.tasks] == [
        (["10.0.0.1"], "app"), (["web-*"], "app")
    ]
