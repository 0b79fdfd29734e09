"""The Airflow failure callback `epay.alerts.on_task_failure`: one ERROR line, one JSON line in
$EPAY_HOME/alerts/alerts.jsonl, the same JSON POSTed to EPAY_ALERT_WEBHOOK (a real HTTP server on
loopback here), RIPs masked everywhere — and never an exception out of it, whatever fails."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from epay.alerts import (
    JsonLinesNotifier,
    Notifier,
    WebhookNotifier,
    alert_from_context,
    deliver,
    make_failure_callback,
    mask_rips,
    on_task_failure,
)
from epay.settings import Settings

RIP = "00799999000012345687"  # the demo creditor RIP: a full, valid RIP
MASKED = "00799999********5687"


@dataclass
class Hook:
    """A loopback HTTP server that records what is POSTed to it and answers ``status``."""

    status: int = 204
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hooks/epay?token=s3cret") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(
                {"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)}
            )
            time.sleep(state.delay)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # silence the server
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class TransportError(Exception):
    """Stands for the SFTP client's error (its module and name travel in the alert)."""


KIND = f"{TransportError.__module__}.TransportError"  # as the module is named by the import mode


def context(exception: BaseException | None = None, **overrides: Any) -> dict[str, Any]:
    """What Airflow 3.3 hands a task-level failure callback (the parts the callback reads)."""
    ti = SimpleNamespace(
        dag_id="epay_debit_outbound",
        task_id="send",
        run_id="scheduled__2026-11-25T19:00:00+00:00",
        try_number=2,
        map_index=-1,
        log_url="http://airflow.local/dags/epay_debit_outbound/runs/x/tasks/send",
        xcom_pull=lambda task_ids=None, **kw: "2026-11-25" if task_ids == "business_date" else None,
    )
    dag_run = SimpleNamespace(
        dag_id="epay_debit_outbound",
        run_id=ti.run_id,
        logical_date=datetime(2026, 11, 25, 19, 0, tzinfo=UTC),
    )
    found = {
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "params": {"business_date": None},
        "logical_date": dag_run.logical_date,
        "exception": exception
        if exception is not None
        else TransportError(f"upload of PRLV_100237_20261125_01.txt refused\nfor account {RIP}"),
    }
    found.update(overrides)
    return found


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("EPAY_HOME", str(folder))
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    monkeypatch.delenv("EPAY_ALERT_WEBHOOK", raising=False)
    return folder


def alerts_in(home: Path) -> list[dict[str, Any]]:
    path = home / "alerts" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_failed_task_is_logged_written_and_posted(
    home: Path, hook: Hook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EPAY_ALERT_WEBHOOK", hook.url())
    assert Settings().alert_webhook == hook.url()
    with caplog.at_level(logging.INFO, logger="epay.alerts"):
        assert on_task_failure(context()) is None
    [record] = [r for r in caplog.records if r.name == "epay.alerts"]
    line = record.getMessage()
    assert record.levelno == logging.ERROR and "\n" not in line
    assert line == (
        "epay task failed: dag=epay_debit_outbound task=send run=scheduled__2026-11-25T19:00:00+00:00 "
        f"business_date=2026-11-25 try=2: {KIND}: upload of "
        f"PRLV_100237_20261125_01.txt refused | for account {MASKED}"
    )
    [written] = alerts_in(home)
    assert written == {
        "at": written["at"],
        "event": "task_failed",
        "severity": "error",
        "dag_id": "epay_debit_outbound",
        "task_id": "send",
        "run_id": "scheduled__2026-11-25T19:00:00+00:00",
        "try_number": 2,
        "map_index": -1,
        "business_date": "2026-11-25",
        "business_date_source": "xcom",
        "exception_type": KIND,
        "message": f"upload of PRLV_100237_20261125_01.txt refused | for account {MASKED}",
        "log_url": "http://airflow.local/dags/epay_debit_outbound/runs/x/tasks/send",
    }
    assert datetime.fromisoformat(written["at"]).tzinfo is not None
    [posted] = hook.received
    assert posted["path"] == "/hooks/epay?token=s3cret" and posted["type"].startswith("application/json")
    assert posted["body"] == written
    everything = caplog.text + json.dumps(written) + json.dumps(posted)
    assert RIP not in everything

    # a second failure appends a second line
    on_task_failure(context(ValueError("second")))
    assert [a["message"] for a in alerts_in(home)] == [written["message"], "second"]
    assert alerts_in(home)[1]["exception_type"] == "ValueError"


def test_the_business_date_comes_from_params_then_xcom_then_the_logical_date(home: Path) -> None:
    chosen = alert_from_context(context(params={"business_date": "2026-11-23"}))
    assert (chosen["business_date"], chosen["business_date_source"]) == ("2026-11-23", "params")
    ti = SimpleNamespace(dag_id="epay_inbound", task_id="business_date", run_id="r", try_number=1)
    late_evening = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # 00:30 on the 26th in Algiers
    alert = alert_from_context(context(ti=ti, task_instance=ti, logical_date=late_evening))
    assert (alert["business_date"], alert["business_date_source"]) == ("2026-11-26", "logical_date")
    assert alert["dag_id"] == "epay_inbound" and alert["log_url"] is None
    none = alert_from_context(context(ti=ti, task_instance=ti, logical_date=None, dag_run=None))
    assert none["business_date"] is None and none["business_date_source"] is None


@pytest.mark.parametrize("answer", [500, 404], ids=["server-error", "not-found"])
def test_a_webhook_that_answers_an_error_does_not_raise(
    home: Path,
    hook: Hook,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    answer: int,
) -> None:
    hook.status = answer
    monkeypatch.setenv("EPAY_ALERT_WEBHOOK", hook.url())
    with caplog.at_level(logging.WARNING, logger="epay.alerts"):
        on_task_failure(context())
    assert len(hook.received) == 1 and len(alerts_in(home)) == 1  # the file still has it
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "alert not delivered by webhook (http://127.0.0.1:" in warning.getMessage()
    assert f"HTTP Error {answer}" in warning.getMessage() and "s3cret" not in caplog.text


def test_an_unreachable_or_slow_webhook_does_not_raise(
    home: Path, hook: Hook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # nothing listens on a port just released
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("EPAY_ALERT_WEBHOOK", f"http://127.0.0.1:{closed}/hook")
    with caplog.at_level(logging.WARNING, logger="epay.alerts"):
        on_task_failure(context())
    assert "alert not delivered by webhook" in caplog.text and len(alerts_in(home)) == 1

    hook.delay = 1.0  # slower than this notifier's timeout
    slow = make_failure_callback(lambda: [WebhookNotifier(hook.url(), timeout=0.2)])
    started = time.monotonic()
    slow(context())
    assert time.monotonic() - started < 0.9 and "timed out" in caplog.text


def test_nothing_escapes_the_callback(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    class Broken:
        name = "broken"

        def notify(self, alert: Any) -> None:
            raise RuntimeError(f"chat is down for {RIP}")

    class Hostile:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("the API server went away")

    written = tmp_path / "other.jsonl"
    callback = make_failure_callback(lambda: [Broken(), JsonLinesNotifier(written)])
    with caplog.at_level(logging.WARNING, logger="epay.alerts"):
        callback(context())  # the broken notifier does not stop the next one
        callback(context(ti=Hostile(), task_instance=Hostile(), dag_run=Hostile()))
        callback(None)  # type: ignore[arg-type]
        callback({"exception": "a plain message", "params": None})

        def no_notifiers() -> list[Notifier]:
            raise OSError("cannot even configure")

        make_failure_callback(no_notifiers)(context())
    assert len(written.read_text(encoding="utf-8").splitlines()) == 4
    assert "alert not delivered by broken" in caplog.text and RIP not in caplog.text
    assert "epay alert callback failed" in caplog.text  # the configuration failure, logged

    monkeypatch.setenv("EPAY_ALERT_WEBHOOK", "file:///etc/passwd")  # only http(s) is ever called
    with caplog.at_level(logging.WARNING, logger="epay.alerts"):
        on_task_failure(context())
    assert "alert webhook ignored" in caplog.text and len(alerts_in(home)) == 1

    monkeypatch.setenv("EPAY_MAX_TRIES", "not a number")  # settings unreadable: the environment still works
    on_task_failure(context())
    assert len(alerts_in(home)) == 2


def test_rips_are_masked_and_notifiers_share_one_protocol() -> None:
    assert mask_rips(f"RIP {RIP}, reference E20261125010000000000001") == (
        f"RIP {MASKED}, reference E20261125010000000000001"
    )
    record = "07" + "E20261125010000000000001" + RIP + "0000150000"  # a record quoted in a message
    assert RIP not in mask_rips(record) and MASKED in mask_rips(record)
    assert isinstance(WebhookNotifier("https://chat.example/hook"), Notifier)
    assert isinstance(JsonLinesNotifier(Path("alerts.jsonl")), Notifier)
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("ftp://example/hook")
    assert deliver({"event": "x"}, []) == []


def test_a_dag_file_can_import_the_callback_without_loading_anything_heavy() -> None:
    heavy = ("pandas", "pyarrow", "numpy", "sqlalchemy", "great_expectations", "airflow", "pydantic")
    probe = (
        "import sys, epay.alerts as a; "
        f"loaded = {{m.split('.')[0] for m in sys.modules}} & set({heavy!r}); "
        "print(sorted(loaded), callable(a.on_task_failure))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] True"
