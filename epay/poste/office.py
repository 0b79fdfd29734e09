"""The simulated Algérie Poste at work: acknowledging PRLV files, executing instructions, publishing
RETR, RELV and MNDT files, on a clock the caller controls.

Execution is vectorised (pandas) so a file of a million instructions is processed in seconds; each
step is one database transaction, and every step can be run again without effect (idempotent).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from epay.calendar import BusinessCalendar, load_calendar
from epay.formats import ack_name, build_file_name, normalize_text, parse_file_name, read_file, validate_file
from epay.formats.names import FileNameError
from epay.formats.problems import FILE_CODE_MEANINGS
from epay.formats.rip import account_of, rip_problem
from epay.formats.writer import write_file
from epay.poste.scenario import Scenario, load_scenario
from epay.poste.state import (
    Account,
    Creditor,
    DayClosed,
    Instruction,
    Mandate,
    MandateEvent,
    PublishedFile,
    ReceivedFile,
    Transfer,
    UsedReference,
    make_sessions,
)

ALGIERS = ZoneInfo("Africa/Algiers")
MAX_DETAILS = 999_999
log = logging.getLogger("epay.poste")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def batch_sha256(path: Path) -> str:
    """Hash of the records from the first detail to the trailer (spec §4, DU01), line ends ignored."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.readline()
        for line in handle:
            digest.update(line.rstrip(b"\r\n"))
            digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class TickResult:
    acknowledged: list[str]
    published: list[str]


class PostOffice:
    """One post office: a folder (SFTP tree, host key), a database, a calendar and a scenario."""

    def __init__(
        self,
        poste_dir: Path,
        database_url: str | None = None,
        *,
        calendar: BusinessCalendar | None = None,
        scenario: Scenario | None = None,
    ) -> None:
        self.poste_dir = poste_dir
        poste_dir.mkdir(parents=True, exist_ok=True)
        self.sessions: sessionmaker[Session] = make_sessions(
            database_url or f"sqlite:///{poste_dir / 'poste.sqlite3'}"
        )
        self.calendar = calendar or load_calendar()
        self.scenario = scenario or load_scenario()

    # -- the world ---------------------------------------------------------------------------------
    def home(self, creditor_id: str) -> Path:
        return self.poste_dir / "sftp" / creditor_id

    def add_creditor(self, creditor_id: str, name: str, rip: str) -> None:
        """Register a creditor and its own CCP account (where collected money is credited)."""
        if rip_problem(rip):
            raise ValueError(f"creditor RIP {rip}: {rip_problem(rip)}")
        with self.sessions.begin() as session:
            if session.get(Account, account_of(rip)) is None:
                session.add(Account(number=account_of(rip), rip=rip, holder=name, balance=0, status="open"))
            if session.get(Creditor, creditor_id) is None:
                session.add(Creditor(creditor_id=creditor_id, name=name, rip=rip, account=account_of(rip)))
        for folder in ("inbound", "outbound"):
            (self.home(creditor_id) / folder).mkdir(parents=True, exist_ok=True)

    def add_accounts(self, accounts: pd.DataFrame) -> int:
        """Open CCP accounts: columns rip, holder, balance (centimes), status, deceased (known RIPs: kept)."""
        rows = accounts.assign(number=[account_of(r) for r in accounts["rip"]])
        with self.sessions.begin() as session:
            known = set(session.scalars(select(Account.number)))
            fresh = rows[~rows["number"].isin(known)]
            columns = ["number", "rip", "holder", "balance", "status", "deceased"]
            records: list[dict[str, Any]] = [
                dict(zip(columns, row, strict=True)) for row in fresh[columns].itertuples(index=False)
            ]
            if records:
                session.execute(insert(Account), records)
        return len(records)

    def register_mandate(
        self,
        reference: str,
        creditor_id: str,
        rip: str,
        debtor_name: str,
        subscriber_number: str,
        *,
        effective_date: date,
        day: date,
        ceiling: int = 0,
    ) -> None:
        """A subscriber signs (or changes) a mandate at a counter on ``day``; reported in the next MNDT."""
        with self.sessions.begin() as session:
            mandate = session.get(Mandate, reference)
            action = "N" if mandate is None or mandate.revoked_on is not None else "M"
            if mandate is None:
                mandate = Mandate(reference=reference)
                session.add(mandate)
            mandate.creditor_id, mandate.rip, mandate.debtor_name = creditor_id, rip, debtor_name
            mandate.subscriber_number, mandate.ceiling = subscriber_number, ceiling
            mandate.effective_date, mandate.revoked_on = effective_date, None
            session.add(MandateEvent(reference=reference, creditor_id=creditor_id, action=action, day=day))

    def revoke_mandate(self, reference: str, *, day: date, effective_date: date | None = None) -> None:
        with self.sessions.begin() as session:
            mandate = session.get(Mandate, reference)
            if mandate is None:
                raise KeyError(f"no mandate {reference}")
            mandate.revoked_on = effective_date or day
            session.add(
                MandateEvent(reference=reference, creditor_id=mandate.creditor_id, action="R", day=day)
            )

    # -- acknowledgements ------------------------------------------------------------------------------
    def acknowledge_pending(self, not_after: datetime | None = None) -> list[str]:
        """ACK every PRLV file in every creditor's inbound/ that has none yet (however it got there).

        The arrival time is the file's modification time, but never later than ``not_after`` (the
        simulated clock), so that a file copied in by hand is not judged against the real clock.
        """
        done: list[str] = []
        with self.sessions() as session:
            creditors = list(session.scalars(select(Creditor.creditor_id)))
        for creditor_id in creditors:
            inbound = self.home(creditor_id) / "inbound"
            for path in sorted(inbound.glob("PRLV_*.txt")):
                arrived = datetime.fromtimestamp(path.stat().st_mtime, tz=ALGIERS)
                if not_after is not None and arrived > not_after:
                    arrived = not_after
                name = self.acknowledge(creditor_id, path, arrived)
                if name:
                    done.append(name)
        return done

    def acknowledge(self, creditor_id: str, path: Path, received_at: datetime) -> str | None:
        """Check one PRLV file as the spec's §4 says and publish its ACK; None if already acknowledged."""
        with self.sessions() as session:
            if session.get(ReceivedFile, (creditor_id, path.name)) is not None:
                return None
            creditor = session.get(Creditor, creditor_id)
            if creditor is None:
                raise KeyError(f"unknown creditor {creditor_id}")
            accepted_batches = set(
                session.scalars(
                    select(ReceivedFile.batch_sha256).where(
                        ReceivedFile.creditor_id == creditor_id, ReceivedFile.status == "ACCP"
                    )
                )
            )
        try:
            parse_file_name(path.name)
        except FileNameError:
            log.warning("ignoring %s in %s's inbound: not a PRLV file name", path.name, creditor_id)
            return None
        report = validate_file(
            path,
            calendar=self.calendar,
            expected_creditor=creditor_id,
            expected_creditor_rip=creditor.rip,
            received_at=received_at,
            keep_details=False,
        )
        rejection = report.first_rejection()
        batch = batch_sha256(path)
        if rejection is None and batch in accepted_batches:
            rejection = ("DU01", 0)
        status = "ACCP" if rejection is None else "RJCT"
        reason, line = rejection if rejection else ("", 0)
        if reason in ("FF01", "AG01", "DT01") and line == 0:
            line = max(1, report.detail_count + 1)  # a whole-file fault: point at where the file went wrong
        text = ""
        if rejection:
            first = next((p for p in report.problems if p.code == reason), None)
            detail = f": line {first.line} {first.field or ''} {first.message}" if first else ""
            text = normalize_text(f"{FILE_CODE_MEANINGS[reason]}{detail}", 80)
        ack_at = (received_at + timedelta(seconds=self.scenario.ack_after_seconds)).astimezone(ALGIERS)
        name = ack_name(path.name)
        ack_table = pa.table(
            {
                "prlv_file_name": [path.name],
                "status": [status],
                "reason": [reason],
                "faulty_line": [line],
                "detail_count": [min(report.detail_count, MAX_DETAILS)],
                "total_amount": [min(report.computed.get("total_amount", 0), 10**18 - 1)],
                "free_text": [text],
            }
        )
        header = {
            "creditor_id": int(creditor_id),
            "ack_date": ack_at.date(),
            "ack_time": ack_at.time().replace(microsecond=0),
        }
        settles = (report.header or {}).get("settlement_date")
        with self.sessions.begin() as session:
            session.add(
                ReceivedFile(
                    creditor_id=creditor_id,
                    name=path.name,
                    sha256=sha256_of(path),
                    size=path.stat().st_size,
                    received_at=received_at,
                    status=status,
                    reason=reason or None,
                    faulty_line=line,
                    batch_sha256=batch if status == "ACCP" else None,
                    settlement_date=settles,
                    ack_name=name,
                )
            )
            if status == "ACCP":
                assert settles is not None
                self._register_instructions(session, creditor_id, path, settles)
            self._publish(session, creditor_id, "ACK", ack_at.date(), name, header, ack_table)
        log.info("acknowledged %s: %s %s", path.name, status, reason)
        return name

    def _register_instructions(self, session: Session, creditor_id: str, path: Path, settles: date) -> None:
        details = read_file(path, calendar=self.calendar).details
        assert details is not None
        frame = details.select(
            ["record_number", "end_to_end_reference", "debtor_rip", "amount", "mandate_reference"]
        ).to_pandas()
        refs = frame["end_to_end_reference"]
        used = set(
            session.scalars(select(UsedReference.reference).where(UsedReference.creditor_id == creditor_id))
        )
        reused = refs.isin(used).to_numpy()
        scenario = self.scenario
        delays = [
            0
            if scenario.fraction("delay", creditor_id, ref) >= scenario.delayed_share
            else 1 + (scenario.fraction("days", creditor_id, ref) >= 0.5)
            for ref in refs
        ]
        execute_on = {d: self.calendar.add_business_days(settles, d) if d else settles for d in set(delays)}
        rows = [
            {
                "creditor_id": creditor_id,
                "file_name": path.name,
                "line": int(n) + 1,
                "reference": ref,
                "rip": rip,
                "amount": int(amount),
                "mandate_reference": mandate,
                "settlement_date": settles,
                "execute_on": execute_on[delay],
                "reference_reused": bool(again),
                "status": "pending",
            }
            for n, ref, rip, amount, mandate, delay, again in zip(
                frame["record_number"],
                refs,
                frame["debtor_rip"],
                frame["amount"],
                frame["mandate_reference"],
                delays,
                reused,
                strict=True,
            )
        ]
        session.execute(insert(Instruction), rows)
        fresh = [{"creditor_id": creditor_id, "reference": r, "file_name": path.name} for r in refs[~reused]]
        if fresh:
            session.execute(insert(UsedReference), fresh)

    # -- the clock -----------------------------------------------------------------------------------
    def tick(self, day: date) -> TickResult:
        """Advance the simulated clock to the end of ``day``: ACK what is waiting, execute what is due,
        publish RETR, RELV and MNDT files. Running it again for the same day publishes nothing new."""
        clock = datetime.combine(day, self.scenario.arrival_time, tzinfo=ALGIERS)
        acknowledged = self.acknowledge_pending(not_after=clock)
        published: list[str] = []
        with self.sessions() as session:
            creditors = list(session.scalars(select(Creditor.creditor_id)))
        for creditor_id in creditors:
            for business_day in self._days_to_run(creditor_id, day):
                published += self._run_day(creditor_id, business_day)
        return TickResult(acknowledged, published)

    def _days_to_run(self, creditor_id: str, day: date) -> list[date]:
        with self.sessions() as session:
            last = session.scalar(select(func.max(DayClosed.day)).where(DayClosed.creditor_id == creditor_id))
            first_due = session.scalar(
                select(func.min(Instruction.execute_on)).where(
                    Instruction.creditor_id == creditor_id, Instruction.status == "pending"
                )
            )
        start = last + timedelta(days=1) if last else min(first_due or day, day)
        days = []
        current = start
        while current <= day:
            if self.calendar.is_business_day(current):
                days.append(current)
            current += timedelta(days=1)
        if not days and self.calendar.is_business_day(day) and (last is None or last < day):
            days.append(day)
        return days

    def _run_day(self, creditor_id: str, day: date) -> list[str]:
        published: list[str] = []
        with self.sessions.begin() as session:
            if session.get(DayClosed, (creditor_id, day)) is not None:
                return []
            self._execute(session, creditor_id, day)
            published += self._publish_returns(session, creditor_id, day)
            published += self._publish_statement(session, creditor_id, day)
            published += self._publish_mandates(session, creditor_id, day)
            session.add(DayClosed(creditor_id=creditor_id, day=day))
        return published

    # -- execution -------------------------------------------------------------------------------------
    def _execute(self, session: Session, creditor_id: str, day: date) -> None:
        """Final status for every instruction due by ``day``, checks in the spec's order (§5)."""
        due = pd.read_sql(
            select(
                Instruction.id,
                Instruction.reference,
                Instruction.file_name,
                Instruction.rip,
                Instruction.amount,
                Instruction.mandate_reference,
                Instruction.reference_reused,
            )
            .where(
                Instruction.creditor_id == creditor_id,
                Instruction.status == "pending",
                Instruction.execute_on <= day,
            )
            .order_by(Instruction.execute_on, Instruction.file_name, Instruction.line),
            session.connection(),
        )
        if due.empty:
            return
        creditor = session.get(Creditor, creditor_id)
        assert creditor is not None
        accounts = pd.read_sql(
            select(Account.rip, Account.number, Account.balance, Account.status, Account.deceased),
            session.connection(),
        ).set_index("rip")
        mandates = pd.read_sql(
            select(
                Mandate.reference,
                Mandate.creditor_id,
                Mandate.rip,
                Mandate.ceiling,
                Mandate.effective_date,
                Mandate.revoked_on,
            ),
            session.connection(),
        ).set_index("reference")
        reasons = decide_reasons(due, accounts, mandates, creditor_id, day, self.scenario)
        balances = accounts["balance"].to_dict()
        settled = np.zeros(len(due), dtype=np.bool_)
        for i, (rip, amount) in enumerate(zip(due["rip"], due["amount"], strict=True)):
            if reasons[i] is None:
                if balances[rip] >= amount:
                    balances[rip] -= amount
                    settled[i] = True
                else:
                    reasons[i] = "AM04"
        prefix = f"AP{day:%Y%m%d}"
        start = (
            session.scalar(
                select(func.count())
                .select_from(Instruction)
                .where(Instruction.transaction_id.like(f"{prefix}%"))
            )
            or 0
        )
        ids = [f"{prefix}{start + i + 1:010d}" for i in range(len(due))]
        session.execute(
            update(Instruction),
            [
                {
                    "id": int(row_id),
                    "status": "ACSC" if ok else "RJCT",
                    "reason": None if ok else reason,
                    "status_date": day,
                    "transaction_id": tx,
                }
                for row_id, ok, reason, tx in zip(due["id"], settled, reasons, ids, strict=True)
            ],
        )
        total = int(due["amount"][settled].sum())
        debited = due[settled].assign(transaction_id=np.array(ids)[settled])
        if len(debited):
            session.execute(
                insert(Transfer),
                [
                    {
                        "transaction_id": tx,
                        "day": day,
                        "debit_account": account_of(rip),
                        "credit_account": creditor.account,
                        "amount": int(amount),
                        "creditor_id": creditor_id,
                        "reference": ref,
                    }
                    for tx, rip, amount, ref in zip(
                        debited["transaction_id"],
                        debited["rip"],
                        debited["amount"],
                        debited["reference"],
                        strict=True,
                    )
                ],
            )
            touched = set(debited["rip"])
            session.execute(
                update(Account),
                [{"number": account_of(rip), "balance": int(balances[rip])} for rip in touched],
            )
            session.execute(
                update(Account)
                .where(Account.number == creditor.account)
                .values(balance=Account.balance + total)
            )
        log.info(
            "%s %s: %d executed, %d settled for %d centimes",
            creditor_id,
            day,
            len(due),
            int(settled.sum()),
            total,
        )

    # -- publications ----------------------------------------------------------------------------------
    def _publish(
        self,
        session: Session,
        creditor_id: str,
        kind: str,
        day: date,
        name: str,
        header: dict[str, Any],
        details: pa.Table,
    ) -> str:
        """Write a file under NAME.part (ignored by the operator's client, spec §2), then rename it."""
        outbound = self.home(creditor_id) / "outbound"
        outbound.mkdir(parents=True, exist_ok=True)
        staging = outbound / f"{name}.part"
        write_file(staging, kind, header, details, calendar=self.calendar, name=name)
        final = outbound / name
        os.replace(staging, final)
        session.add(
            PublishedFile(
                name=name,
                creditor_id=creditor_id,
                kind=kind,
                day=day,
                sha256=sha256_of(final),
                size=final.stat().st_size,
            )
        )
        return name

    def _next_name(self, session: Session, creditor_id: str, kind: str, day: date) -> str:
        taken = set(
            session.scalars(select(PublishedFile.name).where(PublishedFile.creditor_id == creditor_id))
        )
        for sequence in range(1, 100):
            name = build_file_name(kind, creditor_id, day, sequence)
            if name not in taken and not (self.home(creditor_id) / "outbound" / name).exists():
                return name
        raise RuntimeError(f"no free {kind} sequence for {creditor_id} on {day}")

    def _standard_header(self, session: Session, creditor_id: str, day: date, name: str) -> dict[str, Any]:
        creditor = session.get(Creditor, creditor_id)
        assert creditor is not None
        return {
            "creditor_id": int(creditor_id),
            "creation_date": day,
            "settlement_date": day,
            "sequence": parse_file_name(name).sequence,
            "creditor_rip": creditor.rip,
            "creditor_name": creditor.name,
        }

    def _publish_returns(self, session: Session, creditor_id: str, day: date) -> list[str]:
        rows = pd.read_sql(
            select(
                Instruction.id,
                Instruction.reference,
                Instruction.rip,
                Instruction.amount,
                Instruction.status,
                Instruction.reason,
                Instruction.status_date,
                Instruction.transaction_id,
                Instruction.file_name,
            )
            .where(
                Instruction.creditor_id == creditor_id,
                Instruction.status != "pending",
                Instruction.retr_name.is_(None),
                Instruction.status_date <= self._late(day),
            )
            .order_by(Instruction.status_date, Instruction.file_name, Instruction.line),
            session.connection(),
        )
        names: list[str] = []
        for start in range(0, len(rows), MAX_DETAILS):
            part = rows.iloc[start : start + MAX_DETAILS]
            table = pa.table(
                {
                    "end_to_end_reference": part["reference"],
                    "debtor_rip": part["rip"],
                    "amount": part["amount"].astype("int64"),
                    "status": part["status"],
                    "reason": part["reason"].fillna(""),
                    "status_date": pd.to_datetime(part["status_date"]).dt.date,
                    "transaction_id": part["transaction_id"],
                    "prlv_file_name": part["file_name"],
                }
            )
            name = self._next_name(session, creditor_id, "RETR", day)
            names.append(
                self._publish(
                    session,
                    creditor_id,
                    "RETR",
                    day,
                    name,
                    self._standard_header(session, creditor_id, day, name),
                    table,
                )
            )
            session.execute(update(Instruction), [{"id": int(i), "retr_name": name} for i in part["id"]])
            names += self._faults(session, creditor_id, day, name, table)
        return names

    def _late(self, day: date) -> date:
        late = self.scenario.faults.late_retr_days
        return self.calendar.add_business_days(day, -late) if late else day

    def _faults(self, session: Session, creditor_id: str, day: date, name: str, table: pa.Table) -> list[str]:
        faults = self.scenario.faults
        published: list[str] = []
        if faults.unknown_reference or faults.redeliver_retr:
            extra = table
            if faults.unknown_reference:
                ghost = table.slice(0, 1).to_pylist()[0] | {
                    "end_to_end_reference": "UNKNOWN" + table.column("end_to_end_reference")[0].as_py()[7:],
                    "transaction_id": f"APX{day:%Y%m%d}{len(table):09d}",
                }
                extra = (
                    pa.Table.from_pylist([ghost], schema=table.schema)
                    if not faults.redeliver_retr
                    else (pa.concat_tables([table, pa.Table.from_pylist([ghost], schema=table.schema)]))
                )
            copy = self._next_name(session, creditor_id, "RETR", day)
            published.append(
                self._publish(
                    session,
                    creditor_id,
                    "RETR",
                    day,
                    copy,
                    self._standard_header(session, creditor_id, day, copy),
                    extra,
                )
            )
        for broken in ("corrupt", "truncate"):
            if getattr(faults, f"{broken}_retr"):
                copy = self._next_name(session, creditor_id, "RETR", day)
                source = (self.home(creditor_id) / "outbound" / name).read_bytes()
                data = (
                    source[: len(source) // 2]
                    if broken == "truncate"
                    else (source[:200] + (b"X" if source[200:201] != b"X" else b"Y") + source[201:])
                )
                target = self.home(creditor_id) / "outbound" / copy
                target.write_bytes(data)
                session.add(
                    PublishedFile(
                        name=copy,
                        creditor_id=creditor_id,
                        kind="RETR",
                        day=day,
                        sha256=hashlib.sha256(data).hexdigest(),
                        size=len(data),
                    )
                )
                published.append(copy)
        return published

    def _publish_statement(self, session: Session, creditor_id: str, day: date) -> list[str]:
        """RELV, every business day: the credits of ``day`` per debit date (zero details allowed)."""
        credits = session.execute(
            select(Transfer.day, func.count(), func.sum(Transfer.amount))
            .where(Transfer.creditor_id == creditor_id, Transfer.day == day)
            .group_by(Transfer.day)
        ).all()
        table = pa.table(
            {
                "debit_date": pa.array([c[0] for c in credits], pa.date32()),
                "settled_count": pa.array([int(c[1]) for c in credits], pa.int64()),
                "amount": pa.array([int(c[2]) for c in credits], pa.int64()),
            }
        )
        name = self._next_name(session, creditor_id, "RELV", day)
        return [
            self._publish(
                session,
                creditor_id,
                "RELV",
                day,
                name,
                self._standard_header(session, creditor_id, day, name),
                table,
            )
        ]

    def _publish_mandates(self, session: Session, creditor_id: str, day: date) -> list[str]:
        events = session.execute(
            select(MandateEvent, Mandate)
            .join(Mandate, Mandate.reference == MandateEvent.reference)
            .where(
                MandateEvent.creditor_id == creditor_id,
                MandateEvent.day <= day,
                MandateEvent.published_in.is_(None),
            )
            .order_by(MandateEvent.id)
        ).all()
        if not events:
            return []
        table = pa.table(
            {
                "mandate_reference": [m.reference for _, m in events],
                "debtor_rip": [m.rip for _, m in events],
                "debtor_name": [m.debtor_name for _, m in events],
                "subscriber_number": [m.subscriber_number for _, m in events],
                "action": [e.action for e, _ in events],
                "effective_date": pa.array(
                    [
                        m.revoked_on if e.action == "R" and m.revoked_on else m.effective_date
                        for e, m in events
                    ],
                    pa.date32(),
                ),
                "ceiling": pa.array([m.ceiling for _, m in events], pa.int64()),
            }
        )
        name = self._next_name(session, creditor_id, "MNDT", day)
        self._publish(
            session,
            creditor_id,
            "MNDT",
            day,
            name,
            self._standard_header(session, creditor_id, day, name),
            table,
        )
        for event_row, _ in events:
            event_row.published_in = name
        return [name]


def decide_reasons(
    due: pd.DataFrame,
    accounts: pd.DataFrame,
    mandates: pd.DataFrame,
    creditor_id: str,
    day: date,
    scenario: Scenario,
) -> list[str | None]:
    """The first reject reason of each instruction in the spec's order (§5), AM04 excepted (balances
    are consumed in order by the caller); None where the instruction may be executed."""
    n = len(due)
    reasons = np.full(n, None, dtype=object)

    def apply(code: str, mask: Iterable[bool]) -> None:
        hit = np.asarray(list(mask) if not isinstance(mask, np.ndarray) else mask, dtype=np.bool_)
        reasons[(reasons == None) & hit] = code  # noqa: E711 - elementwise comparison

    account = accounts.reindex(due["rip"])
    mandate = mandates.reindex(due["mandate_reference"])
    technical = np.array(
        [
            scenario.fraction("ms03", creditor_id, f, r) < scenario.ms03_rate
            for f, r in zip(due["file_name"], due["reference"], strict=True)
        ],
        dtype=np.bool_,
    )
    apply("MS03", technical)  # not tied to the instruction: it may happen before any check
    apply("AM05", due["reference_reused"].to_numpy(dtype=np.bool_))
    bad_key = np.array([rip_problem(r) is not None for r in due["rip"]], dtype=np.bool_)
    apply("AC01", bad_key | account["number"].isna().to_numpy())
    apply("MD07", account["deceased"].fillna(False).astype(bool).to_numpy())
    apply("AC04", (account["status"] == "closed").to_numpy())
    apply("AC06", (account["status"] == "blocked").to_numpy())
    day64 = pd.Timestamp(day)
    effective = pd.to_datetime(mandate["effective_date"])
    revoked = pd.to_datetime(mandate["revoked_on"])
    no_mandate = (
        mandate["creditor_id"].isna().to_numpy()
        | (mandate["creditor_id"].to_numpy() != creditor_id)
        | (mandate["rip"].to_numpy() != due["rip"].to_numpy())
        | (revoked.notna() & (revoked <= day64)).to_numpy()
        | (effective > day64).fillna(False).to_numpy()
    )
    apply("MD01", no_mandate)
    ceiling = mandate["ceiling"].fillna(0).to_numpy()
    apply("AM02", (ceiling > 0) & (due["amount"].to_numpy() > ceiling))
    return list(reasons)
