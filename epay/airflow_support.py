"""What the DAG tasks do, outside the DAG files: business date from the run, then one epay.jobs call.

Nothing here imports Airflow at module level, so it can be tested without a scheduler.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from epay import jobs
from epay.settings import Settings

ALGIERS = ZoneInfo("Africa/Algiers")
log = logging.getLogger("epay.airflow")


class TaskFailed(Exception):  # noqa: N818 - the name a data engineer reads in the task log
    """A step that must stop the run (its message is what the data engineer reads first)."""


def business_date_of(context: dict[str, Any]) -> date:
    """The run's business date: its logical date in Africa/Algiers (a cron run at 20:00 Algiers on D has
    logical date D 19:00 UTC). A ``business_date`` param is accepted only when it agrees with the logical
    date, or on a run without one: a run is always found again by its day (``airflow tasks clear -s/-e``,
    ``epay airflow clear --date``), never filed under another day."""
    params = context.get("params") or {}
    chosen = params.get("business_date")
    logical = context.get("logical_date")
    day: date | None = None if logical is None else logical.astimezone(ALGIERS).date()
    if chosen:
        wanted = date.fromisoformat(str(chosen))
        if day is not None and wanted != day:
            raise TaskFailed(
                f"this run's logical date is {day} (Algiers) but its business_date param says {wanted}: "
                f"trigger the night of {wanted} with its own logical date instead, e.g. "
                f"`airflow dags trigger epay_debit_outbound --logical-date {wanted}T19:00:00+00:00`"
            )
        return wanted
    if day is None:
        raise TaskFailed("this run has no logical date and no business_date param: say which day to run")
    return day


def _settings() -> Settings:
    return Settings()


def is_business_day(day: str) -> bool:
    business = jobs.calendar_of(_settings()).is_business_day(date.fromisoformat(day))
    if not business:
        log.info("%s is not a business day: nothing to debit tonight", day)
    return business


def load_extracts(day: str) -> list[dict[str, Any]]:
    settings = _settings()
    business_date = date.fromisoformat(day)
    outcomes = jobs.load_extracts(settings, jobs.pending_extracts(settings, business_date), business_date)
    for outcome in outcomes:
        if outcome.quarantined:
            log.error("billing extract %s quarantined: %s", outcome.file, outcome.quarantined)
    return [o.to_dict() for o in outcomes]


def validate(day: str) -> dict[str, Any]:
    plan = jobs.validate(_settings(), date.fromisoformat(day))
    if not plan["passed"]:
        from airflow.sdk.exceptions import AirflowFailException  # no retry: the same data fails the same way

        raise AirflowFailException(f"quality gate refused the batch of {day}: {plan['failure']}")
    return plan


def night_begun(day: str) -> bool:
    """The night's sensor: True once the clock has reached the business date ``day`` (a build never
    makes a file dated in its future). A backfill on a simulated clock waits here for its night."""
    from epay.outbound.cutoff import night_start

    now = _settings().now()
    begun = now >= night_start(date.fromisoformat(day))
    if not begun:
        log.info("waiting for %s to begin: the clock reads %s", day, now.astimezone(ALGIERS))
    return begun


def build(day: str) -> dict[str, Any]:
    """Build the night's files; when its window is closed by the clock (past the cut-off: a re-run or a
    backfill of a past day) the build is skipped with the reason — and so are send and the ACK wait —
    while the status export and the exceptions list still run."""
    from epay.outbound.build import BuildWindowClosedError

    try:
        return jobs.build(_settings(), date.fromisoformat(day)).to_dict()
    except BuildWindowClosedError as closed:
        from airflow.sdk.exceptions import AirflowSkipException

        log.warning("%s", closed)
        raise AirflowSkipException(str(closed)) from None


def export_statuses(day: str) -> str:
    from epay.billing.status_export import ExportSupersededError

    try:
        return str(jobs.export_statuses(_settings(), date.fromisoformat(day)))
    except ExportSupersededError as superseded:  # nothing lost: logged, the night goes on
        log.warning("%s", superseded)
        return str(superseded)


def send(day: str) -> list[dict[str, Any]]:
    sent = jobs.send(_settings(), date.fromisoformat(day))
    for file in sent:
        log.info(
            "sent %s (%s bytes)%s",
            file["name"],
            file["size"],
            " — already there" if file["already_there"] else "",
        )
    return sent


def acknowledged(day: str) -> bool:
    """Fetch and apply what Algérie Poste published; True once every PRLV file of ``day`` has its ACK."""
    settings = _settings()
    business_date = date.fromisoformat(day)
    for result in jobs.receive(settings, business_date):
        if result["outcome"] == "quarantined":
            log.error("inbound file %s quarantined: %s", result["name"], result["detail"])
    overdue = jobs.overdue_acks(settings, business_date, settings.now())
    if overdue:  # measured from when each file was recorded sent, so a cleared sensor does not restart it
        from airflow.sdk.exceptions import AirflowFailException  # no retry: waiting longer is not the fix

        raise AirflowFailException(jobs.ack_overdue_message(settings, overdue))
    waiting = jobs.unacknowledged(settings, business_date)
    if waiting:
        log.info("waiting for the ACK of %s", ", ".join(waiting))
    return not waiting


def inbound_day(context: dict[str, Any]) -> date:
    """The business date of an epay_inbound run: its logical date in Algiers, or today's date in Algiers
    for an asset-triggered run (which has no logical date)."""
    try:
        return business_date_of(context)
    except TaskFailed:
        return _settings().today()


def receive_now(context: dict[str, Any]) -> list[dict[str, Any]]:
    """epay_inbound: the business date is the run's Algiers date (asset-triggered runs have no logical
    date: then today's date in Algiers — inbound files are applied whenever they come)."""
    results = jobs.receive(_settings(), inbound_day(context))
    for result in results:
        level = logging.ERROR if result["outcome"] == "quarantined" else logging.INFO
        log.log(level, "%s: %s %s", result["name"], result["outcome"], result["detail"])
    return results


def finance_summary(day: str) -> str:
    """The day's finance report (JSON + XLSX under reports/<D>/); a reconciliation break is logged as an
    error for the alert, without failing the task (finance reads the report)."""
    import json

    path = jobs.finance_summary(_settings(), date.fromisoformat(day))
    status = json.loads(path.read_text(encoding="utf-8"))["reconciliation"]["status"]
    log.log(
        logging.ERROR if status == "breaks" else logging.INFO, "finance %s: reconciliation %s", day, status
    )
    return str(path)


def daily_exceptions(day: str) -> dict[str, int]:
    """The day's exceptions list at the end of the debit run: logged, and when it is not empty handed to
    the alert notifiers (alerts.jsonl, EPAY_ALERT_WEBHOOK) as a warning — the run itself succeeds: these
    are things for a person to look at, not a reason to stop the night."""
    from epay.alerts import default_notifiers, deliver
    from epay.reports.exceptions import exception_lines

    settings = _settings()
    document = jobs.daily_exceptions(settings, date.fromisoformat(day), settings.now())
    lines = exception_lines(document)
    if document["empty"]:
        log.info("%s", lines[0] if lines else f"no exceptions for {day}")
        return dict(document["counts"])
    for line in lines:
        log.warning("%s", line)
    alert = {
        "at": document["as_of"],
        "event": "daily_exceptions",
        "severity": "warning",
        "business_date": day,
        "counts": document["counts"],
        "message": lines[0] if lines else "exceptions listed",
        "detail": f"epay exceptions --date {day}",
    }
    deliver(alert, default_notifiers())
    return dict(document["counts"])
