"""`epay exceptions --date D`: the day's exceptions list, on SQLite and PostgreSQL. Every category is
produced by the real code over a few days of a small world — a corrupt RETR copy and a bad billing
extract quarantined, a status for a reference never sent, a counter payment while the debit was in flight
(a refund owed), returns still missing two business days after settlement, a PRLV file the post office
never acknowledges, business days without a RELV — and the selection rules are checked on their own at
their boundaries (weekend, holiday, deadline)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.poste.state import Instruction as PosteInstruction
from epay.reports.exceptions import (
    CATEGORIES,
    OpenReturns,
    SentFile,
    acks_overdue,
    daily_exceptions,
    in_window,
    missing_statements,
    overdue_returns,
    returns_due_by,
    statement_day,
)
from epay.settings import ALGIERS, Settings
from tests.conftest import at_night, set_clock
from tests.ledger_helpers import TinyWorld
from tests.test_audit_trail import Night, assert_no_full_rip, epay, rows

WED, THU, FRI, SAT, SUN, MON = (date(2026, 11, d) for d in (25, 26, 27, 28, 29, 30))
TUE = date(2026, 12, 1)


@pytest.fixture
def cli_env(ledger_settings: Settings, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    return ledger_settings


def evening(day: date, hour: int = 23) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=ALGIERS)


# --- the selection rules, alone -----------------------------------------------------------------------------


def test_the_window_of_a_day_reaches_back_over_the_weekend(calendar: BusinessCalendar) -> None:
    assert [in_window(d, SUN, calendar) for d in (THU, FRI, SAT, SUN, MON)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert [in_window(d, THU, calendar) for d in (WED, THU)] == [False, True]


def test_returns_are_overdue_from_the_end_of_settlement_plus_n_business_days(
    calendar: BusinessCalendar,
) -> None:
    waiting = [OpenReturns("PRLV_100237_20261125_01.txt", THU, 3, 4_500), OpenReturns(None, MON, 1, 100)]
    assert returns_due_by(THU, calendar, 2) == MON  # Friday and Saturday do not count
    assert overdue_returns(waiting, SUN, calendar, 2) == []
    [late] = overdue_returns(waiting, MON, calendar, 2)
    assert (late.file, late.settlement_date, late.due_by, late.count, late.amount) == (
        "PRLV_100237_20261125_01.txt",
        THU,
        MON,
        3,
        4_500,
    )
    assert [o.settlement_date for o in overdue_returns(waiting, date(2026, 12, 2), calendar, 2)] == [THU, MON]
    holiday = BusinessCalendar.from_holidays([MON])  # a day off by decree moves the deadline
    assert returns_due_by(THU, holiday, 2) == TUE
    assert overdue_returns(waiting, MON, holiday, 2) == []
    assert len(overdue_returns(waiting, MON, calendar, 1)) == 1  # N = 1: due by Sunday already


def test_an_ack_is_overdue_once_the_deadline_has_passed() -> None:
    sent_at = datetime(2026, 11, 25, 19, 5, tzinfo=UTC)
    files = [SentFile("PRLV_100237_20261125_01.txt", WED, sent_at)]
    assert acks_overdue(files, sent_at + timedelta(minutes=120), 120) == []  # within the deadline
    [late] = acks_overdue(files, sent_at + timedelta(minutes=120, seconds=1), 120)
    assert late.waiting_minutes == 120 and late.to_dict()["sent_at"] == sent_at.isoformat()
    assert acks_overdue(files, sent_at + timedelta(minutes=30), 15)[0].waiting_minutes == 30
    with pytest.raises(ValueError, match="timezone-aware"):
        acks_overdue(files, datetime(2026, 11, 25, 23, 0), 120)


def test_a_statement_is_expected_every_business_day(calendar: BusinessCalendar) -> None:
    assert missing_statements([WED, THU], WED, MON, calendar) == [SUN, MON]  # never Friday or Saturday
    assert missing_statements([], FRI, SUN, calendar) == [SUN]  # from the first business day on
    assert missing_statements([WED], None, MON, calendar) == []  # nothing sent, nothing expected yet
    assert missing_statements([WED, THU], WED, MON, BusinessCalendar.from_holidays([MON])) == [SUN]
    assert statement_day("RELV_100237_20261126_01.txt") == THU
    assert statement_day("RELV_100237_20261399_01.txt") is None
    assert statement_day("RETR_100237_20261126_01.txt") is None


# --- the list, from real days -------------------------------------------------------------------------------


def test_every_kind_of_exception_from_real_days(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    settings = cli_env.model_copy(update={"retry_after_business_days": 1})
    with Night(settings, calendar, tmp_path, unknown_reference=True, corrupt_retr=True) as night:
        night.send(WED)
        night.close(WED)
        published = night.publish(THU)  # AP executes Thursday's debits: RETR (+ a ghost, + a corrupt copy)
        assert sorted(n[:4] for n in published).count("RETR") == 3
        # before those returns are read, a subscriber pays one of the debited invoices at a counter
        with night.office.sessions() as session:
            debited = session.scalars(
                select(PosteInstruction.reference)
                .where(PosteInstruction.status == "ACSC", PosteInstruction.retr_name.is_not(None))
                .order_by(PosteInstruction.reference)
            ).first()
        [paid] = rows(
            ledger_engine,
            "SELECT i.operation, i.item_number, i.amount, b.subscriber_number FROM instruction i "
            f"JOIN billing_item b ON b.id = i.item_id WHERE i.reference = '{debited}'",
        )
        counter = TinyWorld().payment(
            paid["item_number"], paid["operation"], paid["subscriber_number"], paid["amount"], THU
        )
        extract = counter.write(settings.billing_incoming_dir, THU)
        broken = settings.billing_incoming_dir / "BILL_20261126_02.csv"
        broken.write_text("this is not a billing extract\n", encoding="utf-8")
        loaded = jobs.load_extracts(night.settings, [extract, broken], THU)  # Thursday's run
        assert loaded[0].loaded is not None and loaded[0].loaded.paid_during_collection == 1
        assert loaded[1].quarantined
        at_night(THU, 23)  # Thursday's files are read on Thursday evening by epay's clock
        outcomes = {r["name"]: r["outcome"] for r in night.receive(THU)}
        assert list(outcomes.values()).count("quarantined") == 1
        # Sunday: the rejects are presented again, but the post office answers nothing any more
        night.acknowledging = False
        [unanswered] = night.send(SUN)

    quarantine = settings.quarantine_dir
    for reasons in quarantine.glob("*/*.reason.txt"):  # dated by the run's business date, not the clock
        assert reasons.read_text(encoding="utf-8").startswith(f"business date: {THU.isoformat()}\n")

    def exceptions(day: date, now: datetime) -> dict[str, Any]:
        document = daily_exceptions(ledger_engine, settings, day, calendar, now=now)
        assert_no_full_rip(document)
        assert set(document["counts"]) == set(CATEGORIES)
        return document

    # Wednesday evening: all was well (what came later is not in Wednesday's list)
    wednesday = exceptions(WED, evening(WED))
    assert wednesday["empty"] is True and not any(wednesday["counts"].values())

    # Thursday: two files quarantined, a return that matches nothing sent, a refund owed
    thursday = exceptions(THU, evening(THU))
    assert thursday["counts"] == {
        "not_at_post_office": 0,  # new category (time-correct nights): every instruction reached AP
        "quarantined_files": 2,
        "return_exceptions": 1,
        "overdue_returns": 0,
        "acks_overdue": 0,
        "relv_missing": 0,
        "refunds_owed": 1,
    }
    folders = {(q["folder"], q["name"][:4]): q for q in thursday["quarantined_files"]}
    assert set(folders) == {("inbound", "RETR"), ("billing", "BILL")}
    assert folders[("billing", "BILL")]["name"] == "BILL_20261126_02.csv"
    assert folders[("inbound", "RETR")]["quarantined_on"] == THU.isoformat()
    assert any("FF01" in r for r in folders[("inbound", "RETR")]["reasons"])
    assert folders[("billing", "BILL")]["reasons"]
    [ghost] = thursday["return_exceptions"]
    assert ghost["kind"] == "unknown_reference" and ghost["file"].startswith("RETR_")
    assert ghost["reference"].startswith("RX-") and ghost["handled"] is None
    assert ghost["instruction_reference"] not in {
        r["reference"] for r in rows(ledger_engine, "SELECT reference FROM instruction")
    }
    [refund] = thursday["refunds_owed"]
    assert (refund["item_number"], refund["amount"], refund["debit_reference"]) == (
        paid["item_number"],
        paid["amount"],
        debited,
    )
    assert thursday["refunds_outstanding"] == {"count": 1, "amount": paid["amount"]}

    # Sunday: no RELV, and the file sent at the post office without an ACK past the deadline
    [sent] = rows(
        ledger_engine,
        f"SELECT max(at) AS at FROM audit_event WHERE entity = 'file' AND entity_key = '{unanswered}' "
        "AND to_state = 'sent'",
    )
    sent_at = sent["at"] if isinstance(sent["at"], datetime) else datetime.fromisoformat(str(sent["at"]))
    sent_at = sent_at.replace(tzinfo=UTC) if sent_at.tzinfo is None else sent_at
    deadline = timedelta(minutes=settings.ack_deadline_minutes)
    early = exceptions(SUN, sent_at + deadline - timedelta(minutes=1))
    assert early["counts"]["acks_overdue"] == 0
    assert [m["day"] for m in early["relv_missing"]] == [SUN.isoformat()]
    sunday = exceptions(SUN, sent_at + deadline + timedelta(minutes=1))
    [late] = sunday["acks_overdue"]
    assert (late["name"], late["business_date"], late["waiting_minutes"]) == (
        unanswered,
        SUN.isoformat(),
        settings.ack_deadline_minutes + 1,
    )
    assert sunday["counts"]["overdue_returns"] == 0  # Thursday's late statuses may come until Monday
    assert sunday["counts"]["return_exceptions"] == 0 and sunday["counts"]["refunds_owed"] == 0
    assert sunday["counts"]["quarantined_files"] == 2  # still there: still listed
    assert sunday["refunds_outstanding"]["count"] == 1

    # Monday: Thursday's statuses AP has not reported two business days on are overdue
    monday = exceptions(MON, evening(MON))
    waiting = rows(
        ledger_engine,
        "SELECT reference, amount FROM instruction WHERE state = 'presented' "
        f"AND settlement_date = '{THU.isoformat()}' ORDER BY reference",
    )
    assert waiting, "the post office reported every status on time: no late returns to see"
    [overdue] = monday["overdue_returns"]
    assert (overdue["file"], overdue["settlement_date"], overdue["due_by"]) == (
        "PRLV_100237_20261125_01.txt",
        THU.isoformat(),
        MON.isoformat(),
    )
    assert overdue["count"] == len(waiting) and overdue["amount"] == sum(w["amount"] for w in waiting)
    assert overdue["references"] == [w["reference"] for w in waiting][:20]
    assert [m["day"] for m in monday["relv_missing"]] == [SUN.isoformat(), MON.isoformat()]

    # --- the command line: 1 when something is listed, 0 when nothing is ---------------------------------
    shown = epay("exceptions", "--date", "2026-11-26", "--now", "2026-11-26T23:00")
    assert shown.exit_code == 1, shown.output
    for words in (
        "quarantined files (2)",
        "return exceptions (1)",
        "unknown_reference",
        "refunds owed, new (1)",
    ):
        assert words in shown.output, shown.output
    as_json = epay("exceptions", "--date", "2026-11-30", "--now", "2026-11-30T23:00+01:00", "--json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.output)
    assert document["counts"]["overdue_returns"] == len(waiting)
    assert [m["day"] for m in document["relv_missing"]] == ["2026-11-29", "2026-11-30"]
    assert document["as_of"] == "2026-11-30T22:00:00+00:00"
    quiet = epay("exceptions", "--date", "2026-11-25", "--now", "2026-11-25T23:00")
    assert quiet.exit_code == 0 and quiet.output.strip().endswith(": none")
    assert epay("exceptions", "--date", "2026-11-25", "--now", "yesterday").exit_code == 2


def test_a_fresh_ledger_has_nothing_to_say(cli_env: Settings) -> None:
    result = epay("exceptions", "--date", "2026-11-25", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["empty"] is True


def test_the_debit_runs_last_task_alerts_when_the_list_is_not_empty(
    ledger_engine: Engine, ledger_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``daily_exceptions`` (the last task of epay_debit_outbound) logs the list and, when it is not empty,
    hands a warning to the alert notifiers; an empty list alerts nobody."""
    from epay import airflow_support
    from epay.quarantine import quarantine_file
    from epay.settings import business_today

    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_settings.ledger_url)
    monkeypatch.delenv("EPAY_ALERT_WEBHOOK", raising=False)
    alerts = ledger_settings.home / "alerts" / "alerts.jsonl"
    # a quarantined file is dated by its reasons file's mtime (the machine's clock, not epay's): the
    # test's clock is set to the real time so that "today" is the same day for both
    set_clock(datetime.now(UTC))
    day = business_today().isoformat()
    assert not any(airflow_support.daily_exceptions(day).values())
    assert not alerts.exists()

    bad = tmp_path / "RETR_100237_20261126_01.txt"
    bad.write_bytes(b"not a RETR file\n")
    quarantine_file(ledger_settings.quarantine_dir / "inbound", bad, ["FF01 line 1: record length 16"])
    counts = airflow_support.daily_exceptions(day)
    assert counts["quarantined_files"] == 1 and sum(counts.values()) == 1
    [alert] = [json.loads(line) for line in alerts.read_text(encoding="utf-8").splitlines()]
    assert alert["event"] == "daily_exceptions" and alert["severity"] == "warning"
    assert alert["business_date"] == day and alert["counts"]["quarantined_files"] == 1
    assert alert["detail"] == f"epay exceptions --date {day}"


def test_a_handled_exception_is_listed_apart_from_the_open_ones(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """The list's counts are what is still open; a handled entry keeps its reference and says who handled
    it and why; ``open_only`` leaves it out; handling it twice is refused, the first handling stands."""
    from epay.quarantine import quarantine_file
    from epay.reports.handling import HandlingError, record

    for name in ("RETR_100237_20261125_01.txt", "MNDT_100237_20261125_01.txt"):
        (tmp_path / name).write_bytes(b"not a file of the contract\n")
        quarantine_file(
            ledger_settings.quarantine_dir / "inbound", tmp_path / name, ["FF01"], business_date=WED
        )
    listed = daily_exceptions(ledger_engine, ledger_settings, WED, calendar, now=evening(WED))
    assert listed["counts"]["quarantined_files"] == 2 and listed["handled_counts"]["quarantined_files"] == 0
    first, second = listed["quarantined_files"]
    record(
        ledger_engine,
        {first["reference"]: "quarantined_files"},
        action="handled",
        business_date=WED,
        by="amina.dataeng",
        note="AP resends it under a new name",
    )
    with pytest.raises(HandlingError, match=r"already handled by amina\.dataeng"):
        record(
            ledger_engine,
            {first["reference"]: "quarantined_files"},
            action="handled",
            business_date=WED,
            by="someone.else",
            note="again",
        )
    with pytest.raises(HandlingError, match="--note is empty"):
        record(
            ledger_engine, {second["reference"]: "x"}, action="handled", business_date=WED, by="a", note=" "
        )
    after = daily_exceptions(ledger_engine, ledger_settings, WED, calendar, now=evening(WED))
    assert after["counts"]["quarantined_files"] == 1 and after["handled_counts"]["quarantined_files"] == 1
    assert [(q["reference"], q["handled"] is None) for q in after["quarantined_files"]] == [
        (second["reference"], True),
        (first["reference"], False),
    ]
    assert after["quarantined_files"][1]["handled"]["by"] == "amina.dataeng"
    only_open = daily_exceptions(
        ledger_engine, ledger_settings, WED, calendar, now=evening(WED), open_only=True
    )
    assert [q["reference"] for q in only_open["quarantined_files"]] == [second["reference"]]
