"""Alerts when a nightly task fails: one clear ERROR log line, one JSON line in
``$EPAY_HOME/alerts/alerts.jsonl``, and whatever notifiers are configured (a webhook today; mail or chat
later, as other ``Notifier`` implementations).

Wiring (task level, Airflow 3.3): ``default_args={..., "on_failure_callback": on_task_failure}`` in a DAG
file. A task-level failure callback runs in the task's own process after its last try failed (a try that
will be retried calls ``on_retry_callback`` instead). It receives the task's context: ``ti`` /
``task_instance``, ``dag_run``, ``exception``, ``params``, ``logical_date``...

Two rules hold whatever happens: the callback never raises (an alert that fails must not hide the
failure it reports, nor fail anything else), and no RIP leaves this module unmasked.

Only the standard library is imported at module level: DAG files import this module when they are parsed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

log = logging.getLogger("epay.alerts")

ALGIERS = ZoneInfo("Africa/Algiers")
WEBHOOK_TIMEOUT_SECONDS = 10.0
MAX_MESSAGE_CHARS = 2000
ALERTS_FILE = Path("alerts") / "alerts.jsonl"  # under EPAY_HOME

# A RIP is 20 digits (bank 007, agency 99999, account, key): any run of exactly 20 digits, and any
# 007 99999 + 12 digits even inside a longer run of digits (a record line quoted in a message).
_RIP_ALONE = re.compile(r"(?<!\d)\d{20}(?!\d)")
_RIP_INSIDE = re.compile(r"00799999\d{12}")


def _mask_one(rip: str) -> str:
    return rip[:8] + "*" * (len(rip) - 12) + rip[-4:]  # as epay.formats.rip.mask_rip


def mask_rips(text: str) -> str:
    """``text`` with every RIP in it masked (first 8 and last 4 digits kept)."""
    text = _RIP_INSIDE.sub(lambda m: _mask_one(m.group(0)), text)
    return _RIP_ALONE.sub(lambda m: _mask_one(m.group(0)), text)


# --- notifiers ------------------------------------------------------------------------------------------


@runtime_checkable
class Notifier(Protocol):
    """Delivers one alert somewhere. ``notify`` may raise: the caller logs the failure and goes on to
    the next notifier. A mail or chat notifier is one more class with these two members."""

    name: str

    def notify(self, alert: Mapping[str, Any]) -> None: ...


class JsonLinesNotifier:
    """Appends the alert as one JSON line to a file (``$EPAY_HOME/alerts/alerts.jsonl``)."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def notify(self, alert: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(alert, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        # one write of one line, opened for appending: concurrent writers never interleave within a line
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


class WebhookNotifier:
    """POSTs the alert as JSON (``Content-Type: application/json``) to an http(s) URL."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"an alert webhook must be an http(s) URL, not {scheme or 'no scheme'}")
        self.url = url
        self.timeout = timeout

    @property
    def where(self) -> str:
        """The URL without its path and query (which may hold a token): safe for logs."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def notify(self, alert: Mapping[str, Any]) -> None:
        body = json.dumps(alert, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "epay-alerts"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            status = response.status
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook {self.where} answered HTTP {status}")


def deliver(alert: Mapping[str, Any], notifiers: Sequence[Notifier]) -> list[str]:
    """Hand ``alert`` to each notifier; a failing one is logged and the others still run. Returns the
    names of the notifiers that failed."""
    failed = []
    for notifier in notifiers:
        try:
            notifier.notify(alert)
        except Exception as error:
            where = getattr(notifier, "where", "")
            failed.append(str(getattr(notifier, "name", type(notifier).__name__)))
            log.warning(
                "alert not delivered by %s%s: %s: %s",
                failed[-1],
                f" ({where})" if where else "",
                type(error).__name__,
                mask_rips(str(error))[:MAX_MESSAGE_CHARS],
            )
    return failed


# --- the alert ------------------------------------------------------------------------------------------


def _attr(thing: Any, name: str) -> Any:
    """``thing.name`` or ``thing[name]``, None when absent or when reading it fails."""
    if thing is None:
        return None
    try:
        if isinstance(thing, Mapping):
            return thing.get(name)
        return getattr(thing, name, None)
    except Exception:
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _business_date(context: Mapping[str, Any], ti: Any, dag_run: Any) -> tuple[str | None, str | None]:
    """(business date, where it came from): the ``business_date`` param, else the ``business_date``
    task's XCom, else the logical date in Africa/Algiers."""
    params = _attr(context, "params") or {}
    chosen = _attr(params, "business_date")
    if chosen:
        return str(chosen), "params"
    task_id = _attr(ti, "task_id")
    pull = _attr(ti, "xcom_pull")
    if callable(pull) and task_id != "business_date":
        try:
            pulled = pull(task_ids="business_date")
        except Exception:
            pulled = None
        if isinstance(pulled, str | date) and pulled:
            return (pulled.isoformat() if isinstance(pulled, date) else pulled), "xcom"
    logical = _attr(context, "logical_date") or _attr(dag_run, "logical_date")
    if isinstance(logical, datetime):
        aware = logical if logical.tzinfo else logical.replace(tzinfo=UTC)
        return aware.astimezone(ALGIERS).date().isoformat(), "logical_date"
    return None, None


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def alert_from_context(context: Mapping[str, Any] | None, *, now: datetime | None = None) -> dict[str, Any]:
    """The alert of a failed task, from its Airflow context (pure: reads the context, nothing else —
    except an XCom pull for the business date). RIPs in the exception's message are masked."""
    context = context if isinstance(context, Mapping) else {}
    ti = _attr(context, "ti") or _attr(context, "task_instance")
    dag_run = _attr(context, "dag_run")
    dag = _attr(context, "dag")
    exception = _attr(context, "exception")
    business_date, source = _business_date(context, ti, dag_run)
    if isinstance(exception, BaseException):
        kind = type(exception)
        exception_type = (
            kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
        )
        message = str(exception)
    else:
        exception_type, message = None, "" if exception is None else str(exception)
    message = mask_rips(_one_line(message))[:MAX_MESSAGE_CHARS]
    return {
        "at": (now or _clock_now()).astimezone(UTC).isoformat(),
        "event": "task_failed",
        "severity": "error",
        "dag_id": _text(_attr(ti, "dag_id") or _attr(dag_run, "dag_id") or _attr(dag, "dag_id")),
        "task_id": _text(_attr(ti, "task_id")),
        "run_id": _text(_attr(ti, "run_id") or _attr(dag_run, "run_id")),
        "try_number": _attr(ti, "try_number"),
        "map_index": _attr(ti, "map_index"),
        "business_date": business_date,
        "business_date_source": source,
        "exception_type": exception_type,
        "message": message,
        "log_url": _text(_attr(ti, "log_url")),
    }


def log_line(alert: Mapping[str, Any]) -> str:
    """The one ERROR line a data engineer reads first."""
    what = alert.get("exception_type") or "failure"
    return (
        f"epay task failed: dag={alert.get('dag_id')} task={alert.get('task_id')} "
        f"run={alert.get('run_id')} business_date={alert.get('business_date') or 'unknown'} "
        f"try={alert.get('try_number')}: {what}: {alert.get('message') or '(no message)'}"
    )


# --- configuration and the callback -----------------------------------------------------------------------


def default_notifiers() -> list[Notifier]:
    """From the settings (``EPAY_HOME``, ``EPAY_ALERT_WEBHOOK``); if the settings cannot be read (a bad
    config file), from the two environment variables directly, so the alert still goes out."""
    home: Path | None
    webhook: str | None
    try:
        from epay.settings import Settings

        settings = Settings()
        home, webhook = settings.home, settings.alert_webhook
    except Exception as error:
        log.warning("alert: settings unreadable (%s: %s), using the environment", type(error).__name__, error)
        from_env = os.environ.get("EPAY_HOME")
        home = Path(from_env) if from_env else Path(__file__).resolve().parents[1] / "var"
        webhook = os.environ.get("EPAY_ALERT_WEBHOOK") or None
    notifiers: list[Notifier] = [JsonLinesNotifier(home / ALERTS_FILE)]
    if webhook:
        try:
            notifiers.append(WebhookNotifier(webhook))
        except ValueError as error:
            log.warning("alert webhook ignored: %s", error)
    return notifiers


def make_failure_callback(
    notifiers: Callable[[], Sequence[Notifier]] = default_notifiers,
) -> Callable[[Mapping[str, Any]], None]:
    """A failure callback delivering to ``notifiers()`` (called at each failure, so a changed setting
    applies without re-parsing the DAG). ``on_task_failure`` is this with the configured notifiers."""

    def callback(context: Mapping[str, Any]) -> None:
        try:
            alert = alert_from_context(context)
            log.error("%s", log_line(alert))
            deliver(alert, list(notifiers()))
        except Exception:  # a failure callback must never raise: not even its logging
            with contextlib.suppress(Exception):
                log.exception("epay alert callback failed (the task's own failure stands)")

    return callback


_default_callback = make_failure_callback()


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback`` for epay tasks: an ERROR log line, a JSON line in
    ``$EPAY_HOME/alerts/alerts.jsonl``, a POST to ``EPAY_ALERT_WEBHOOK`` if set. Never raises."""
    _default_callback(context)


def _clock_now() -> datetime:
    """The alert's time by epay's clock; an unusable clock setting must not stop an alert."""
    from epay.clock import ClockError, SystemClock, process_clock

    try:
        return process_clock().now()
    except ClockError:
        return SystemClock().now()
