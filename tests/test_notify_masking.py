"""Target URLs are masked wherever task documents reach users, like env values."""

from __future__ import annotations

from pathlib import Path

from reconciler.envmask import hashed_document, masked_document
from reconciler.spec import load_paths

DOC = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: backup}
spec:
  schedule: "@daily"
  command: ["true"]
  env: {TOKEN: s3cret}
  notify:
    - on: [failure]
      webhook: https://hooks.example.com/cron/TOKEN1
    - on: [failure]
      apprise: "mailto://ops:PASSWORD@mail.example.com"
  healthcheck: {url: "https://hc-ping.com/TOKEN2"}
"""


def test_get_and_the_applied_set_never_hold_a_url_in_clear(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(DOC)
    task = load_paths([tmp_path]).tasks["backup"]
    for doc in (masked_document(task.document), hashed_document(task.document)):
        text = str(doc)
        assert not any(s in text for s in ("TOKEN1", "TOKEN2", "PASSWORD", "s3cret", "ops:"))
    spec = masked_document(task.document)["spec"]
    assert [e.get("webhook") or e.get("apprise") for e in spec["notify"]] == [
        "https://hooks.example.com/***",
        "mailto://mail.example.com/***",
    ]
    assert spec["healthcheck"] == {"url": "https://hc-ping.com/***"}
    stored = hashed_document(task.document)["spec"]["healthcheck"]["url"]
    assert stored.startswith("https://hc-ping.com/*** sha256:")
