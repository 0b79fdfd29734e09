"""The operator's inbound side against the simulated post office's injected faults (scenario [faults]), on
SQLite and PostgreSQL: a re-delivered RETR changes nothing twice, a corrupt or truncated one is quarantined
while the rest of the day applies, a status for a reference never sent becomes an exception, and late
returns leave instructions presented until they come. Every test drives a small world through several
business days (build → ACK → settlement → returns) and ends on the cycle's invariants."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from epay.calendar import BusinessCalendar
from epay.formats import build_file_name, read_file, rip_from_account
from epay.inbound.receive import receive_file
from epay.outbound.build import BuildPolicy, build_outbound
from epay.poste.office import PostOffice
from epay.poste.scenario import Scenario, load_scenario
from epay.poste.state import Instruction as PosteInstruction
from epay.poste.state import Mandate as PosteMandate
from epay.quarantine import read_reasons
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from tests.conftest import at_night

START = date(2026, 11, 25)  # Wednesday; Friday and Saturday are the weekend
SUBSCRIBERS, SEED = 150, 7
SEND_DAYS = 2  # PRLV batches are built on the first two business days
ORDER = {"ACK": 0, "MNDT": 1, "RETR": 2, "RELV": 3}  # as the inbound job applies a listing
FINAL = {"settled", "rejected"}


# --- the world ---------------------------------------------------------------------------------------------
def scenario_with(tmp_path: Path, settings: Settings, **faults: bool | int) -> Scenario:
    """The default scenario file with some faults switched on, written and loaded as a real one."""
    source = settings.poste_scenario_file.read_text(encoding="utf-8")
    for key, value in faults.items():
        literal = str(value).lower() if isinstance(value, bool) else str(value)
        source, count = re.subn(rf"(?m)^{key} = [^\s#]+", f"{key} = {literal}", source)
        assert count == 1, f"{key} is not in {settings.poste_scenario_file}"
    path = tmp_path / "scenario-faults.toml"
    path.write_text(source, encoding="utf-8")
    scenario = load_scenario(path)
    for key, value in faults.items():
        assert getattr(scenario.faults, key) == value
    return scenario


def kind_of(name: str) -> str:
    return name.split("_")[0]


def sequence_of(name: str) -> int:
    return int(name.removesuffix(".txt").rsplit("_", 1)[1])


@dataclass(frozen=True)
class Got:
    """One file received: when, its outcome, what applying it did, and where it lies now."""

    day: date
    name: str
    outcome: str
    detail: dict[str, Any]
    path: Path


class Cycle:
    """Both sides of a small world: the ledger, and a post office running the given scenario."""

    def __init__(self, engine: Engine, settings: Settings, calendar: BusinessCalendar, scenario: Scenario):
        self.engine, self.settings, self.calendar = engine, settings, calendar
        install_sample(settings, SUBSCRIBERS, SEED, START, calendar)
        self.office = PostOffice(settings.poste_dir, settings.poste_url, calendar=calendar, scenario=scenario)
        self.outbound = self.office.home(settings.creditor_id) / "outbound"
        self.received: list[Got] = []

    def business_days(self, count: int) -> list[date]:
        days = [START]
        while len(days) < count:
            days.append(self.calendar.next_business_day(days[-1]))
        return days

    def send(self, day: date) -> None:
        """Build the day's PRLV files, hand them to the post office at 20:05 and apply their ACKs."""
        at_night(day, 20, 5)
        built = build_outbound(self.engine, self.settings, day, self.calendar, BuildPolicy())
        inbound = self.office.home(self.settings.creditor_id) / "inbound"
        for file in built.files:
            shutil.copyfile(file.path, inbound / file.name)
            arrived = datetime.combine(day, time(20, 5), tzinfo=ALGIERS)
            ack = self.office.acknowledge(self.settings.creditor_id, inbound / file.name, arrived)
            assert ack is not None
            assert self.receive(day, ack).outcome == "applied"

    def publish(self, day: date, *, copies_first: bool = False) -> list[str]:
        """Tick the post office to the end of ``day``; what it published, in the inbound job's order
        (``copies_first``: a day's extra RETR copies before its first RETR, as if they came first)."""

        def key(name: str) -> tuple[int, int, str]:
            sequence = sequence_of(name)
            return ORDER[kind_of(name)], -sequence if copies_first else sequence, name

        at_night(day, 23, 30)  # the post office's end of day, then AT reads what it published
        return sorted(self.office.tick(day).published, key=key)

    def receive(self, day: date, name: str, folder: str = "") -> Got:
        """What the inbound job does with one file of outbound/: download it, then ``receive_file``."""
        local = self.settings.inbound_dir(day) / folder / name
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.outbound / name, local)
        got = receive_file(self.engine, self.settings, local, self.calendar, day)
        where = Path(got.detail["path"]) if got.outcome == "quarantined" else local
        result = Got(day, name, got.outcome, got.detail, where)
        self.received.append(result)
        return result

    def tick(self, day: date) -> list[Got]:
        return [self.receive(day, name) for name in self.publish(day)]

    # -- reading both sides ------------------------------------------------------------------------------
    def rows(self, sql: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql)).mappings()]

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()

    def snapshot(self) -> dict[str, Any]:
        """Everything an inbound file may change in the ledger."""
        return {
            "instructions": self.rows(
                "SELECT reference, state, reason, status_date, transaction_id, updated_at FROM instruction "
                "ORDER BY reference"
            ),
            "items": self.rows(
                "SELECT id, state, paid_by, paid_on, tries, last_reason, updated_at FROM billing_item "
                "ORDER BY id"
            ),
            "mandates": self.rows("SELECT reference, status, status_reason FROM mandate ORDER BY reference"),
            "exceptions": self.scalar("SELECT count(*) FROM return_exception"),
            "files": self.scalar("SELECT count(*) FROM exchange_file"),
            "audit": self.scalar("SELECT coalesce(max(id), 0) FROM audit_event"),
        }

    def audit_since(self, last_id: int) -> list[tuple[str, str, str]]:
        events = self.rows(
            f"SELECT entity, entity_key, to_state FROM audit_event WHERE id > {int(last_id)} ORDER BY id"
        )
        return [(e["entity"], e["entity_key"], e["to_state"]) for e in events]

    def states(self) -> dict[str, str]:
        return {r["reference"]: r["state"] for r in self.rows("SELECT reference, state FROM instruction")}

    def poste(self) -> dict[str, dict[str, Any]]:
        """The post office's own view of every instruction it registered, by reference."""
        with self.office.sessions() as session:
            return {
                i.reference: {
                    "status": i.status,
                    "reason": i.reason,
                    "status_date": i.status_date,
                    "transaction_id": i.transaction_id,
                    "amount": i.amount,
                    "retr_name": i.retr_name,
                }
                for i in session.scalars(select(PosteInstruction))
            }

    def records(self, got: Got | Path) -> list[dict[str, Any]]:
        path = got.path if isinstance(got, Got) else got
        details = read_file(path, calendar=self.calendar).details
        assert details is not None
        rows: list[dict[str, Any]] = details.to_pylist()
        return rows

    def applied(self, kind: str) -> list[Got]:
        return [g for g in self.received if g.outcome == "applied" and kind_of(g.name) == kind]


# --- the invariants -----------------------------------------------------------------------------------------
def check_invariants(
    cycle: Cycle, *, all_final: bool = True, exceptions: frozenset[str] = frozenset()
) -> None:
    """Every instruction final (as the post office decided it) once a RETR we applied reported it, and
    presented — legitimately waiting — only while the post office has not reported it; no item paid twice;
    money settled in the ledger = ACSC of the RETR records applied = RELV credits once all is final."""
    ledger = cycle.rows("SELECT reference, item_id, state, reason, amount, transaction_id FROM instruction")
    assert ledger, "the world sent nothing"
    known = {r["reference"] for r in ledger}
    poste = cycle.poste()

    reported: dict[str, dict[str, Any]] = {}  # reference -> its status in the RETR files applied
    for got in cycle.applied("RETR"):
        for record in cycle.records(got):
            reference = record["end_to_end_reference"]
            if reference not in known:
                continue  # an exception (checked below), never a status
            status = {k: record[k] for k in ("status", "reason", "amount", "transaction_id")}
            assert reported.setdefault(reference, status) == status, (reference, got.name)

    for row in ledger:
        reference, state = row["reference"], row["state"]
        assert state in FINAL | {"presented"}, row
        if state == "presented":
            assert reference not in reported, row  # a status applied is never left unapplied
            at_post = poste[reference]
            assert at_post["status"] == "pending" or at_post["retr_name"] is None, (row, at_post)
            assert not all_final, row
            continue
        status = reported[reference]  # final only through a RETR record
        assert (state, row["reason"] or "", row["transaction_id"]) == (
            {"ACSC": "settled", "RJCT": "rejected"}[status["status"]],
            status["reason"] or "",
            status["transaction_id"],
        ), row
        at_post = poste[reference]
        assert (at_post["status"], at_post["transaction_id"]) == (status["status"], status["transaction_id"])

    # no item paid twice, none in flight twice
    settled = [r for r in ledger if r["state"] == "settled"]
    open_items = [r["item_id"] for r in ledger if r["state"] not in FINAL]
    settled_items = [r["item_id"] for r in settled]
    assert len(set(settled_items)) == len(settled_items)
    assert len(set(open_items)) == len(open_items) and not set(open_items) & set(settled_items)
    assert cycle.scalar("SELECT count(*) FROM billing_item WHERE paid_by = 'DEBIT'") == len(settled)
    for entity, to_state in (("instruction", "settled"), ("item", "paid")):
        counts = cycle.rows(
            f"SELECT entity_key, count(*) AS n FROM audit_event WHERE entity = '{entity}' "
            f"AND to_state = '{to_state}' AND actor = 'inbound.retr' GROUP BY entity_key"
        )
        assert all(c["n"] == 1 for c in counts), (entity, [c for c in counts if c["n"] > 1][:5])
        assert len(counts) == len(settled), entity

    # money: ledger = ACSC reported = what applying the RETR files said it settled (= RELV once final)
    settled_amount = sum(r["amount"] for r in settled)
    acsc = sum(s["amount"] for s in reported.values() if s["status"] == "ACSC")
    said = sum(g.detail["settled_amount"] for g in cycle.applied("RETR"))
    assert settled_amount == acsc == said
    if all_final:
        credited = cycle.scalar("SELECT coalesce(sum(amount), 0) FROM exchange_file WHERE kind = 'RELV'")
        assert settled_amount == credited > 0

    kinds = {r["kind"] for r in cycle.rows("SELECT kind FROM return_exception")}
    assert kinds == set(exceptions), kinds


# --- the faults ---------------------------------------------------------------------------------------------
def test_a_redelivered_retr_changes_nothing_twice(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """redeliver_retr: every RETR published again under the next sequence, same records. The copy is a
    new file (other name) whose records are all repeats; fetched again under its own name, a repeat."""
    cycle = Cycle(
        ledger_engine,
        ledger_settings,
        calendar,
        scenario_with(tmp_path, ledger_settings, redeliver_retr=True),
    )
    copies = 0
    for number, day in enumerate(cycle.business_days(SEND_DAYS + 3)):
        if number < SEND_DAYS:
            cycle.send(day)
        names = cycle.publish(day)
        retr = [n for n in names if kind_of(n) == "RETR"]
        assert len(retr) in (0, 2), retr  # a day with returns: the RETR and its copy
        for name in names:
            if not retr or name != retr[1]:
                assert cycle.receive(day, name).outcome == "applied", name
                continue
            original = cycle.records(next(g for g in cycle.received if g.name == retr[0]))
            before = cycle.snapshot()
            got = cycle.receive(day, name)
            assert got.outcome == "applied"
            assert cycle.records(got) == original
            assert got.detail == {
                "settled": 0,
                "settled_amount": 0,
                "rejected": 0,
                "repeats": len(original),
                "exceptions": 0,
            }
            after = cycle.snapshot()
            # only the file's own registration: no instruction, item or mandate changed, no exception
            assert cycle.audit_since(before["audit"]) == [("file", name, "applied")]
            assert after | {"audit": 0, "files": 0} == before | {"audit": 0, "files": 0}
            assert after["files"] == before["files"] + 1
            # the inbound job fetching the same file again (same name, same bytes): a repeat, nothing at all
            again = cycle.receive(day, name, folder="again")
            assert (again.outcome, again.detail) == ("repeat", {})
            assert cycle.snapshot() == after
            copies += 1
        check_invariants(cycle, all_final=False)
    assert copies >= 2  # returns came on several days (settlement and delayed statuses)
    check_invariants(cycle)


@pytest.mark.parametrize(
    ("fault", "symptom"),
    [
        ("corrupt_retr", re.compile(r"^line 2 debtor_rip: FF01 ")),  # the byte changed, in the first detail
        ("truncate_retr", re.compile(r"no line end|no trailer|record is not 160")),
    ],
    ids=["corrupt", "truncate"],
)
def test_a_corrupt_or_truncated_retr_is_quarantined_and_the_day_goes_on(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    tmp_path: Path,
    fault: str,
    symptom: re.Pattern[str],
) -> None:
    """A broken copy of each RETR, received before the good one: quarantined with its reasons under
    $EPAY_HOME/quarantine/inbound/, nothing of it applied; the good RETR, MNDT and RELV still apply."""
    cycle = Cycle(
        ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings, **{fault: True})
    )
    quarantine = ledger_settings.quarantine_dir / "inbound"
    broken = 0
    for number, day in enumerate(cycle.business_days(SEND_DAYS + 3)):
        if number < SEND_DAYS:
            cycle.send(day)
        names = cycle.publish(day, copies_first=True)
        for name in names:
            if kind_of(name) != "RETR" or sequence_of(name) == 1:
                assert cycle.receive(day, name).outcome == "applied", name
                continue
            before = cycle.snapshot()
            got = cycle.receive(day, name)
            assert got.outcome == "quarantined", got.detail
            assert got.path == quarantine / name
            assert got.path.read_bytes() == (cycle.outbound / name).read_bytes()
            assert not (ledger_settings.inbound_dir(day) / name).exists()  # moved, not copied
            kept = read_reasons((quarantine / f"{name}.reason.txt").read_text(encoding="utf-8"))
            assert (kept.business_date, kept.sha256) == (
                day,
                hashlib.sha256(got.path.read_bytes()).hexdigest(),
            )
            reasons = list(kept.reasons)
            assert reasons == got.detail["reasons"]
            assert any(symptom.search(r) for r in reasons), reasons
            assert cycle.snapshot() == before  # not registered, no status applied, nothing audited
            # its instructions wait, untouched, for the good file of the day
            good = cycle.outbound / build_file_name("RETR", ledger_settings.creditor_id, day, 1)
            waiting = {r["end_to_end_reference"] for r in cycle.records(good)}
            assert {cycle.states()[r] for r in waiting} == {"presented"}
            broken += 1
        check_invariants(cycle, all_final=False)
    assert broken >= 2
    registered = {r["name"] for r in cycle.rows("SELECT name FROM exchange_file")}
    assert not registered & {g.name for g in cycle.received if g.outcome == "quarantined"}
    check_invariants(cycle)


@pytest.mark.parametrize("copy_first", [False, True], ids=["alone", "in-a-redelivered-copy-first"])
def test_a_status_for_an_unknown_reference_is_an_exception(
    ledger_engine: Engine,
    ledger_settings: Settings,
    calendar: BusinessCalendar,
    tmp_path: Path,
    copy_first: bool,
) -> None:
    """unknown_reference: a RETR record for a reference never sent → a return_exception
    `unknown_reference`, nothing else. Alone, the post office publishes it in a RETR of its own; with
    redeliver_retr, in the copy beside all the day's real records — received first here, so the rest of
    that file must apply around the exception (and the original then only repeats it)."""
    faults = {"unknown_reference": True, "redeliver_retr": copy_first}
    cycle = Cycle(
        ledger_engine, ledger_settings, calendar, scenario_with(tmp_path, ledger_settings, **faults)
    )
    ghosts: list[tuple[str, str, int]] = []  # (reference, RETR name, line)
    for number, day in enumerate(cycle.business_days(SEND_DAYS + 3)):
        if number < SEND_DAYS:
            cycle.send(day)
        for name in cycle.publish(day, copies_first=copy_first):
            before = cycle.snapshot()
            got = cycle.receive(day, name)
            assert got.outcome == "applied", (name, got.detail)
            if kind_of(name) != "RETR":
                continue
            records = cycle.records(got)
            strangers = [
                (r["end_to_end_reference"], name, line)
                for line, r in enumerate(records, start=2)
                if r["end_to_end_reference"] not in cycle.states()
            ]
            if sequence_of(name) == 1:  # the post office's real RETR
                assert strangers == []
                assert got.detail["exceptions"] == 0
                assert got.detail["settled"] + got.detail["rejected"] + got.detail["repeats"] == len(records)
                assert got.detail["repeats"] == (len(records) if copy_first else 0)
                continue
            [(ghost, _, line)] = strangers
            ghosts.append((ghost, name, line))
            assert got.detail["exceptions"] == 1 and got.detail["repeats"] == 0
            # the rest of the file applied: every other record's status is now the ledger's
            assert got.detail["settled"] + got.detail["rejected"] == len(records) - 1
            assert len(records) > 1 if copy_first else len(records) == 1
            [exception] = cycle.rows(
                "SELECT e.reference, e.kind, e.line, e.business_date, f.name FROM return_exception e "
                f"JOIN exchange_file f ON f.id = e.file_id WHERE e.reference = '{ghost}'"
            )
            assert (exception["kind"], exception["name"], exception["line"]) == (
                "unknown_reference",
                name,
                line,
            )
            assert str(exception["business_date"]) == day.isoformat()
            assert ghost not in cycle.poste()  # truly never sent, on either side
            events = [e for e in cycle.audit_since(before["audit"]) if e[0] == "instruction"]
            assert ("instruction", ghost, "exception") in events
            if not copy_first:  # its own file: nothing else happened
                assert events == [("instruction", ghost, "exception")]
                assert cycle.snapshot() | {"audit": 0, "files": 0, "exceptions": 0} == before | {
                    "audit": 0,
                    "files": 0,
                    "exceptions": 0,
                }
        check_invariants(
            cycle, all_final=False, exceptions=frozenset({"unknown_reference"}) if ghosts else frozenset()
        )
    assert len(ghosts) >= 2
    assert cycle.scalar("SELECT count(*) FROM return_exception") == len(ghosts)
    check_invariants(cycle, exceptions=frozenset({"unknown_reference"}))


@pytest.mark.parametrize("late", [1, 2])
def test_late_returns_leave_instructions_presented_until_they_come(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path, late: int
) -> None:
    """late_retr_days: statuses reported `late` business days after the post office decided them. Until
    then the instructions stay presented (and their items are not selected again); then final. The RELV
    statements come on time, so the money matches them only once the late returns are in."""
    cycle = Cycle(
        ledger_engine,
        ledger_settings,
        calendar,
        scenario_with(tmp_path, ledger_settings, late_retr_days=late),
    )
    waited = 0
    for number, day in enumerate(cycle.business_days(SEND_DAYS + 3 + late)):
        if number < SEND_DAYS:
            cycle.send(day)
        for got in cycle.tick(day):
            assert got.outcome == "applied", (got.name, got.detail)
        poste = cycle.poste()
        for reference, state in cycle.states().items():
            at_post = poste[reference]
            due = (
                at_post["status"] != "pending"
                and calendar.add_business_days(at_post["status_date"], late) <= day
            )
            assert (state in FINAL) == due, (day, reference, state, at_post)
            waited += state == "presented" and at_post["status"] != "pending"
        for got in cycle.applied("RETR"):
            assert got.day == calendar.add_business_days(
                max(r["status_date"] for r in cycle.records(got)), late
            )
        check_invariants(cycle, all_final=False)
    assert waited > 0  # decided at the post office, not yet known here: the lateness was seen
    check_invariants(cycle)


def test_a_late_reject_does_not_undo_a_newer_mandate_action(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """late_retr_days = 2: an instruction rejected AC04 (closed account) on the settlement date is
    reported two business days later. Meanwhile the subscriber changes the mandate to an open account at
    a counter (an M action, reported in that day's MNDT and applied: the mandate is active). The late
    reject is older than that action, so it must not suspend the mandate again."""
    late = 2
    cycle = Cycle(
        ledger_engine,
        ledger_settings,
        calendar,
        scenario_with(tmp_path, ledger_settings, late_retr_days=late),
    )
    days = cycle.business_days(SEND_DAYS + 3 + late)
    settlement, counter_day = days[1], days[2]  # Thursday; Sunday, before Thursday's returns come (Monday)
    mandate = ""
    for number, day in enumerate(days):
        if number < SEND_DAYS:
            cycle.send(day)
        if day == counter_day:
            reference, _ = next(
                (r, p)
                for r, p in sorted(cycle.poste().items())
                if (p["status"], p["reason"], p["status_date"]) == ("RJCT", "AC04", settlement)
            )
            [row] = cycle.rows(f"SELECT mandate_reference FROM instruction WHERE reference = '{reference}'")
            mandate = row["mandate_reference"]
            with cycle.office.sessions() as session:
                at_post = session.get(PosteMandate, mandate)
                assert at_post is not None
                name, subscriber = at_post.debtor_name, at_post.subscriber_number
            new_rip = rip_from_account(990_001)
            cycle.office.add_accounts(
                pd.DataFrame(
                    {
                        "rip": [new_rip],
                        "holder": [name],
                        "balance": [10**9],
                        "status": ["open"],
                        "deceased": [False],
                    }
                )
            )
            cycle.office.register_mandate(
                mandate, ledger_settings.creditor_id, new_rip, name, subscriber, effective_date=day, day=day
            )
        for got in cycle.tick(day):
            assert got.outcome == "applied", (got.name, got.detail)
        if day == counter_day:  # the M action is in the ledger; the reject is not known yet
            [state] = cycle.rows(f"SELECT status, rip FROM mandate WHERE reference = '{mandate}'")
            assert state == {"status": "active", "rip": rip_from_account(990_001)}
            assert cycle.states()[reference] == "presented"
    assert cycle.states()[reference] == "rejected"
    check_invariants(cycle)
    [state] = cycle.rows(f"SELECT status, rip FROM mandate WHERE reference = '{mandate}'")
    assert state == {"status": "active", "rip": rip_from_account(990_001)}
