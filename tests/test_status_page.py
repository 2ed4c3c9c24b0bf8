"""`--http`: the JSON API of the run history and the status page, the page checked in a
real headless Chromium (Debian's `chromium`; skipped without it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from controller_harness import ControllerProc, wait_until, write_task
from test_obs_prometheus import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>document.title='pwned'</script><b>bold</b> & \"quotes\""


def get(port: int, path: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            body = resp.read().decode()
            return resp.status, resp.headers["Content-Type"], body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def chromium(*args: str, timeout: float = 60) -> str:
    assert CHROMIUM is not None
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--user-data-dir=" + os.environ.get("CHROME_PROFILE", "/tmp/rc-chromium"),
         *args],
        capture_output=True, text=True, timeout=timeout,
    )
    return res.stdout


@pytest.fixture
def served(dirs, controllers):
    write_task(dirs[0], "evil", {"schedule": "@every 1s", "command": ["printf", "%s\\n", EVIL]})
    write_task(dirs[0], "backup", {"schedule": "@every 1s", "command": "echo saved; exit 3",
                                   "env": {"TOKEN": "s3cret-value"}})
    write_task(dirs[0], "web", {"type": "daemon", "command": ["sleep", "300"]})
    port = free_port()
    c = ControllerProc(dirs[0], dirs[1], ["--http", f"127.0.0.1:{port}"])
    controllers.append(c)
    c.wait_for("run.exited", task="evil")
    c.wait_for("run.exited", task="backup", count=2)
    wait_until(lambda: len(json.loads(get(port, "/api/v1/runs?task=backup")[2])) >= 2,
               what="backup's runs in the API")
    return c, port


def test_the_json_api(served) -> None:
    c, port = served
    code, ctype, body = get(port, "/api/v1/tasks")
    assert code == 200 and ctype.startswith("application/json")
    tasks = {t["name"]: t for t in json.loads(body)}
    assert set(tasks) == {"evil", "backup", "web"}
    assert tasks["backup"]["lastRun"]["reason"] == "exit code 3"
    assert tasks["backup"]["nextRun"] and tasks["web"]["nextRun"] is None
    assert "s3cret-value" not in body
    runs = json.loads(get(port, "/api/v1/runs?task=backup&limit=1")[2])
    assert len(runs) == 1
    run = runs[0]
    assert {"runId", "exitCode", "durationSeconds", "startedAt"} <= set(run)
    assert run["exitCode"] == 3 and run["outcome"] == "failed"
    assert json.loads(get(port, f"/api/v1/runs/{run['runId']}")[2]) == run
    out = json.loads(get(port, f"/api/v1/runs/{run['runId']}/output")[2])
    assert [(x["stream"], x["text"]) for x in out["lines"]] == [("stdout", "saved")]
    assert get(port, "/api/v1/runs/backup-20000101T000000Z-abcdef")[0] == 404
    assert get(port, "/api/v1/runs/..%2F..%2Fledger")[0] == 404
    assert get(port, "/api/v1/runs?task=../../x")[2] == "[]"
    assert get(port, "/api/v1/nothing")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/tasks", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405


def test_output_cannot_inject_markup(served) -> None:
    c, port = served
    runs = json.loads(get(port, "/api/v1/runs?task=evil")[2])
    page = get(port, f"/runs/{runs[0]['runId']}")[2]
    assert "<script>document" not in page and "&lt;script&gt;document" in page
    index = get(port, "/")[2]
    assert "<script" not in index and "http://" not in index.replace(
        f"http://127.0.0.1:{port}", "")  # nothing from outside the host


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package: chromium)")
def test_the_page_in_a_real_browser(served, tmp_path: Path) -> None:
    c, port = served
    os.environ["CHROME_PROFILE"] = str(tmp_path / "profile")
    dom = chromium("--dump-dom", f"http://127.0.0.1:{port}/")
    rows = re.findall(r'<tr class="task">(.*?)</tr>', dom, re.S)
    assert len(rows) == 3, dom[:2000]
    assert "exit code 3" in dom and "@every 1s" in dom
    links = re.findall(r'href="(/runs/evil-[^"]+)"', dom)
    assert links, dom[:2000]
    run_dom = chromium("--dump-dom", f"http://127.0.0.1:{port}{links[-1]}")
    assert '<pre id="output">' in run_dom
    # The task's <script> is text in the page: escaped in the DOM, never an element.
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in run_dom
    assert "<script" not in run_dom and "pwned</title>" not in run_dom
    shot = tmp_path / "index.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,900", f"http://127.0.0.1:{port}/")
    assert shot.stat().st_size > 5000
    run_shot = tmp_path / "run.png"
    chromium(f"--screenshot={run_shot}", "--window-size=1200,900",
             f"http://127.0.0.1:{port}{links[-1]}")
    keep = os.environ.get("RECONCILER_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / "index.png")
        shutil.copy(run_shot, Path(keep) / "run.png")
