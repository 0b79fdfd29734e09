"""The simulated Algérie Poste at work: acknowledging PRLV files, executing instructions, publishing
RETR, RELV and MNDT files, on a clock the caller controls.

Execution is vectorised (pandas) so a file of a million instructions is processed in seconds; each
step is one database transaction, and every step can be run again without effect (idempotent).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from epay.arrowtools import isin
from epay.calendar import BusinessCalendar, load_calendar
from epay.formats import ack_name, build_file_name, normalize_text, parse_file_name, read_file, validate_file
from epay.formats.names import FileNameError
from epay.formats.problems import FILE_CODE_MEANINGS
from epay.formats.rip import account_of, rip_keys_ok, rip_prefix_ok, rip_problem
from epay.formats.writer import write_file
from epay.poste.bulk import db_value, fetch_frame, insert_rows, run_sql, update_rows
from epay.poste.protection import PosteProtection
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
from epay.protection.openpgp import ProtectionError, plain_name_of, protected_name

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
        carry = b""
        while chunk := handle.read(1 << 20):
            data = carry + chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            digest.update((data[:-1] if carry else data).replace(b"\r\n", b"\n"))
        digest.update(carry)
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
        self.protection = PosteProtection(poste_dir)  # contract §8: keys and agreements per creditor
        self._staged: list[tuple[Path, Path]] = []

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """One database transaction whose published files appear only once it has committed.

        Files are written as ``NAME.part`` (invisible to the operator's client, spec §2) while the
        transaction runs, and renamed after the commit; a failure removes them. A crash between the
        commit and the renames is repaired by ``recover_publications`` on the next run.
        """
        self._staged = []
        try:
            with self.sessions.begin() as session:
                yield session
        except BaseException:
            for staging, _ in self._staged:
                staging.unlink(missing_ok=True)
            self._staged = []
            raise
        staged, self._staged = self._staged, []
        for staging, final in staged:
            self._reveal(staging, final)

    @staticmethod
    def _reveal(staging: Path, final: Path) -> None:
        """Give the staged file its final name, never overwriting one (names are never reused, §1)."""
        try:
            os.link(staging, final)
        except FileExistsError:
            if sha256_of(final) != sha256_of(staging):
                raise RuntimeError(f"{final.name} exists with other bytes: not overwritten") from None
        staging.unlink()
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def recover_publications(self) -> None:
        """Finish the renames of files whose transaction committed but whose rename did not happen."""
        with self.sessions() as session:
            rows = session.execute(
                select(PublishedFile.creditor_id, PublishedFile.name, PublishedFile.sha256)
            ).all()
        for creditor_id, name, digest in rows:
            final = self.home(creditor_id) / "outbound" / name
            if final.exists():
                continue
            staged = [p for p in final.parent.glob(f"{name}.*.part") if sha256_of(p) == digest]
            if staged:
                self._reveal(staged[0], final)
                log.warning("recovered the publication of %s", name)
            else:
                log.error("INCIDENT: %s is recorded as published but its file is missing", name)

    # -- the world ---------------------------------------------------------------------------------
    def home(self, creditor_id: str) -> Path:
        return self.poste_dir / "sftp" / creditor_id

    def add_creditor(self, creditor_id: str, name: str, rip: str) -> None:
        """Register a creditor and its own CCP account (where collected money is credited)."""
        if rip_problem(rip):
            raise ValueError(f"creditor RIP {rip}: {rip_problem(rip)}")
        with self.sessions.begin() as session:
            holder = session.scalar(select(Creditor.creditor_id).where(Creditor.rip == rip))
            if holder is not None and holder != creditor_id:
                raise ValueError(f"creditor {creditor_id}: RIP {rip} is creditor {holder}'s (one each)")
            if session.get(Account, account_of(rip)) is None:
                session.add(Account(number=account_of(rip), rip=rip, holder=name, balance=0, status="open"))
            if session.get(Creditor, creditor_id) is None:
                session.add(Creditor(creditor_id=creditor_id, name=name, rip=rip, account=account_of(rip)))
        for folder in ("inbound", "outbound"):
            (self.home(creditor_id) / folder).mkdir(parents=True, exist_ok=True)

    def add_accounts(self, accounts: pd.DataFrame) -> int:
        """Open CCP accounts: columns rip, holder, balance (centimes), status, deceased.

        A RIP already known (or repeated in ``accounts``) keeps its first account."""
        rows = accounts.drop_duplicates("rip")
        with self.sessions.begin() as session:
            known = set(session.scalars(select(Account.rip)))
            fresh = rows[~isin(rows["rip"], known)]
            insert_rows(
                session.connection(),
                Account.__tablename__,
                ("number", "rip", "holder", "balance", "status", "deceased"),
                zip(
                    [account_of(r) for r in fresh["rip"].tolist()],
                    fresh["rip"].tolist(),
                    fresh["holder"].tolist(),
                    fresh["balance"].astype("int64").tolist(),
                    fresh["status"].tolist(),
                    fresh["deceased"].astype(bool).tolist(),
                    strict=True,
                ),
            )
        return len(fresh)

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
        problem = mandate_problem(reference, rip, debtor_name, subscriber_number, ceiling)
        if problem:
            raise ValueError(f"mandate {reference!r}: {problem}")
        with self.sessions.begin() as session:
            mandate = session.get(Mandate, reference)
            action = "N" if mandate is None or mandate.revoked_on is not None else "M"
            if mandate is None:
                mandate = Mandate(reference=reference)
                session.add(mandate)
            mandate.creditor_id, mandate.rip, mandate.debtor_name = creditor_id, rip, debtor_name
            mandate.subscriber_number, mandate.ceiling = subscriber_number, ceiling
            mandate.effective_date, mandate.revoked_on = effective_date, None
            session.add(_event(mandate, action, day, effective_date))

    def add_mandates(self, mandates: pd.DataFrame, *, day: date, report: bool = True) -> int:
        """Register many mandates at once (a world loaded in bulk): columns reference, creditor_id, rip,
        debtor_name, subscriber_number, ceiling, effective_date. With ``report``, each becomes an N
        event for the next MNDT file. Known references are left as they are."""
        rows = mandates.drop_duplicates("reference")
        bad = [
            f"{ref!r}: {problem}"
            for ref, rip, name, subscriber, ceiling in zip(
                rows["reference"].tolist(),
                rows["rip"].tolist(),
                rows["debtor_name"].tolist(),
                rows["subscriber_number"].tolist(),
                rows["ceiling"].tolist(),
                strict=True,
            )
            if (problem := mandate_problem(ref, rip, name, subscriber, int(ceiling)))
        ]
        if bad:
            raise ValueError(f"{len(bad)} mandate(s) cannot be registered, e.g. " + "; ".join(bad[:5]))
        with self.sessions.begin() as session:
            known = set(session.scalars(select(Mandate.reference)))
            fresh = rows[~isin(rows["reference"], known)]
            connection = session.connection()
            references = fresh["reference"].tolist()
            state_columns = ("rip", "debtor_name", "subscriber_number", "ceiling", "effective_date")
            states = list(
                zip(
                    fresh["rip"].tolist(),
                    fresh["debtor_name"].tolist(),
                    fresh["subscriber_number"].tolist(),
                    fresh["ceiling"].astype("int64").tolist(),
                    [db_value(connection, d) for d in fresh["effective_date"].tolist()],
                    strict=True,
                )
            )
            owners = list(zip(references, fresh["creditor_id"].tolist(), strict=True))
            insert_rows(
                connection,
                Mandate.__tablename__,
                ("reference", "creditor_id", *state_columns),
                [(*owner, *state) for owner, state in zip(owners, states, strict=True)],
            )
            if report:  # each registration is an N action for the next MNDT file, with the same state
                signed = ("N", db_value(connection, day))
                insert_rows(
                    connection,
                    MandateEvent.__tablename__,
                    ("reference", "creditor_id", "action", "day", *state_columns),
                    [(*owner, *signed, *state) for owner, state in zip(owners, states, strict=True)],
                )
        return len(fresh)

    def revoke_mandate(self, reference: str, *, day: date, effective_date: date | None = None) -> None:
        with self.sessions.begin() as session:
            mandate = session.get(Mandate, reference)
            if mandate is None:
                raise KeyError(f"no mandate {reference}")
            mandate.revoked_on = effective_date or day
            session.add(_event(mandate, "R", day, mandate.revoked_on))

    # -- acknowledgements ------------------------------------------------------------------------------
    def acknowledge_pending(self, not_after: datetime | None = None) -> list[str]:
        """ACK every PRLV file in every creditor's inbound/ that has none yet (however it got there).

        The arrival time is the file's modification time, but never later than ``not_after`` (the
        simulated clock), so that a file copied in by hand is not judged against the real clock.
        """
        done: list[str] = []
        self.recover_publications()
        with self.sessions() as session:
            creditors = list(session.scalars(select(Creditor.creditor_id).order_by(Creditor.creditor_id)))
        for creditor_id in creditors:
            inbound = self.home(creditor_id) / "inbound"
            with self.sessions() as session:
                last_closed = session.scalar(
                    select(func.max(DayClosed.day)).where(DayClosed.creditor_id == creditor_id)
                )
            for path in sorted([*inbound.glob("PRLV_*.txt"), *inbound.glob("PRLV_*.txt.pgp")]):
                arrived = datetime.fromtimestamp(path.stat().st_mtime, tz=ALGIERS)
                if not_after is not None and arrived > not_after:
                    arrived = not_after
                if (
                    last_closed is not None
                ):  # first seen after a closed day: it came after it, whatever its mtime
                    arrived = max(arrived, datetime.combine(last_closed, time(23, 59, 59), tzinfo=ALGIERS))
                name = self.acknowledge(creditor_id, path, arrived)
                if name:
                    done.append(name)
        return done

    def acknowledge(self, creditor_id: str, path: Path, received_at: datetime) -> str | None:
        """Check one PRLV file as the spec's §4 says and publish its ACK; None if already acknowledged."""
        with self.sessions() as session:
            known = session.get(ReceivedFile, (creditor_id, path.name))
            if known is not None:
                if known.sha256 != sha256_of(path):  # spec §1: same name, other bytes is an incident
                    log.error(
                        "INCIDENT: %s received again from %s with other bytes; not processed",
                        path.name,
                        creditor_id,
                    )
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
        plain, plain_name, sg01 = path, path.name, None
        if self.protection.agreement(creditor_id).protected:  # §8: opened first, else SG01 before FF01
            plain_name = plain_name_of(path.name) or path.name
            try:
                plain = self.protection.open_prlv(
                    creditor_id, path, received_at.astimezone(ALGIERS).date()
                ).plain
            except ProtectionError as error:
                sg01 = str(error)
        elif plain_name_of(path.name) is not None:
            log.warning(
                "ignoring %s in %s's inbound: protected, but its agreement is version 001",
                path.name,
                creditor_id,
            )
            return None
        try:
            parse_file_name(plain_name)
        except FileNameError:
            log.warning("ignoring %s in %s's inbound: not a PRLV file name", path.name, creditor_id)
            return None
        if sg01 is not None:
            return self._reject_sg01(creditor_id, path, plain_name, received_at, sg01)
        report = validate_file(
            plain,
            calendar=self.calendar,
            expected_creditor=creditor_id,
            expected_creditor_rip=creditor.rip,
            received_at=received_at,
            keep_details=False,
        )
        rejection = report.first_rejection()
        batch = batch_sha256(plain)
        if rejection is None and batch in accepted_batches:
            rejection = ("DU01", 0)
        status = "ACCP" if rejection is None else "RJCT"
        reason, line = rejection if rejection else ("", 0)
        if reason in ("FF01", "AG01", "DT01") and line == 0:
            line = max(1, report.detail_count + 1)  # a whole-file fault: point at where the file went wrong
        line = min(line, MAX_DETAILS)  # the ACK's field has 6 digits
        text = ""
        if rejection:
            first = next((p for p in report.problems if p.code == reason and p.line == line), None) or next(
                (p for p in report.problems if p.code == reason), None
            )
            detail = f": line {line} {first.field or ''} {first.message}" if first else ""
            text = normalize_text(f"{FILE_CODE_MEANINGS[reason]}{detail}", 80)
        ack_at = (received_at + timedelta(seconds=self.scenario.ack_after_seconds)).astimezone(ALGIERS)
        name = ack_name(plain_name)
        ack_table = pa.table(
            {
                "prlv_file_name": [plain_name],
                "status": [status],
                "reason": [reason],
                "faulty_line": [line],
                "detail_count": [min(report.detail_count, MAX_DETAILS)],
                "total_amount": [min(report.computed.get("total_amount", 0), 10**18 - 1)],
                "free_text": [text],
            }
        )
        # The ACK is named after the PRLV file, so its header carries that file's creditor even when
        # the file was dropped into another creditor's inbound (then rejected AG01).
        named_creditor = int(parse_file_name(plain_name).creditor)
        header = {
            "creditor_id": named_creditor,
            "ack_date": ack_at.date(),
            "ack_time": ack_at.time().replace(microsecond=0),
        }
        settles = (report.header or {}).get("settlement_date")
        try:
            return self._record_ack(
                creditor_id,
                path,
                received_at,
                status,
                reason,
                line,
                batch,
                settles,
                name,
                header,
                ack_table,
                ack_at,
                plain,
            )
        except IntegrityError:  # another process (serve or tick) acknowledged it first: one ACK only
            log.info("%s was acknowledged by another process", path.name)
            return None

    def _reject_sg01(
        self, creditor_id: str, path: Path, plain_name: str, received_at: datetime, reason: str
    ) -> str | None:
        """Contract §8: the ACK ``RJCT SG01`` (line 000000, count and sum zero), nothing else checked."""
        ack_at = (received_at + timedelta(seconds=self.scenario.ack_after_seconds)).astimezone(ALGIERS)
        ack_table = pa.table(
            {
                "prlv_file_name": [plain_name],
                "status": ["RJCT"],
                "reason": ["SG01"],
                "faulty_line": [0],
                "detail_count": [0],
                "total_amount": [0],
                "free_text": [normalize_text(reason.removeprefix(f"{path.name}: "), 80)],  # the key first
            }
        )
        header = {
            "creditor_id": int(parse_file_name(plain_name).creditor),
            "ack_date": ack_at.date(),
            "ack_time": ack_at.time().replace(microsecond=0),
        }
        log.warning("SG01 for %s from creditor %s: %s", path.name, creditor_id, reason)
        try:
            return self._record_ack(
                creditor_id, path, received_at, "RJCT", "SG01", 0, "", None, ack_name(plain_name), header,
                ack_table, ack_at,
            )  # fmt: skip
        except IntegrityError:
            log.info("%s was acknowledged by another process", path.name)
            return None

    def _record_ack(
        self,
        creditor_id: str,
        path: Path,
        received_at: datetime,
        status: str,
        reason: str,
        line: int,
        batch: str,
        settles: date | None,
        name: str,
        header: dict[str, Any],
        ack_table: pa.Table,
        ack_at: datetime,
        plain: Path | None = None,
    ) -> str:
        with self._transaction() as session:
            session.add(
                ReceivedFile(
                    creditor_id=creditor_id,
                    name=path.name,
                    sha256=sha256_of(path),
                    size=path.stat().st_size,
                    received_at=received_at.astimezone(UTC),
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
                self._register_instructions(session, creditor_id, plain or path, settles)
            published = self._publish(session, creditor_id, "ACK", ack_at.date(), name, header, ack_table)
        log.info("acknowledged %s: %s %s", path.name, status, reason)
        return published

    def _register_instructions(self, session: Session, creditor_id: str, path: Path, settles: date) -> None:
        details = read_file(path, calendar=self.calendar).details
        assert details is not None
        refs: list[str] = details.column("end_to_end_reference").to_pylist()
        used = self._already_used(session, creditor_id, refs)  # only this file's references are looked up
        reused = [ref in used for ref in refs]
        scenario = self.scenario
        delayed = scenario.fractions("delay", creditor_id, refs) < scenario.delayed_share
        two_days = scenario.fractions("days", creditor_id, refs) >= 0.5
        delays = np.where(delayed, np.where(two_days, 2, 1), 0)
        connection = session.connection()
        execute_on = {
            d: db_value(connection, self.calendar.add_business_days(settles, d) if d else settles)
            for d in (0, 1, 2)
        }
        columns = (
            "creditor_id",
            "file_name",
            "line",
            "reference",
            "rip",
            "amount",
            "mandate_reference",
            "settlement_date",
            "execute_on",
            "reference_reused",
            "status",
        )
        rows = zip(
            [creditor_id] * len(refs),
            [path.name] * len(refs),
            [n + 1 for n in details.column("record_number").to_pylist()],
            refs,
            details.column("debtor_rip").to_pylist(),
            details.column("amount").to_pylist(),
            details.column("mandate_reference").to_pylist(),
            [settles] * len(refs),
            [execute_on[int(d)] for d in delays],
            reused,
            ["pending"] * len(refs),
            strict=True,
        )
        insert_rows(connection, Instruction.__tablename__, columns, rows)
        fresh = ((creditor_id, ref, path.name) for ref, again in zip(refs, reused, strict=True) if not again)
        insert_rows(connection, UsedReference.__tablename__, ("creditor_id", "reference", "file_name"), fresh)

    @staticmethod
    def _already_used(session: Session, creditor_id: str, refs: list[str]) -> set[str]:
        """Which of ``refs`` an earlier accepted file already carried (AM05), through a scratch table
        joined on the used_reference key: the cost follows the file, not the creditor's history."""
        connection = session.connection()
        run_sql(connection, "DROP TABLE IF EXISTS file_reference")
        run_sql(connection, "CREATE TEMPORARY TABLE file_reference (reference VARCHAR(24) PRIMARY KEY)")
        insert_rows(connection, "file_reference", ("reference",), [(ref,) for ref in refs])
        found = fetch_frame(connection, USED_SQL, (creditor_id,), ("reference",))
        run_sql(connection, "DROP TABLE file_reference")
        return set(found["reference"].tolist())

    # -- the clock -----------------------------------------------------------------------------------
    def last_closed_day(self) -> date | None:
        """The latest business day already executed and published for any creditor (None: none yet)."""
        with self.sessions() as session:
            return session.scalar(select(func.max(DayClosed.day)))

    def tick(self, day: date) -> TickResult:
        """Advance the simulated clock to the end of ``day``: ACK what is waiting, execute what is due,
        publish RETR, RELV and MNDT files. Running it again for the same day publishes nothing new."""
        clock = datetime.combine(day, self.scenario.arrival_time, tzinfo=ALGIERS)
        acknowledged = self.acknowledge_pending(not_after=clock)
        published: list[str] = []
        with self.sessions() as session:
            creditors = list(session.scalars(select(Creditor.creditor_id).order_by(Creditor.creditor_id)))
        failures: list[Exception] = []
        for creditor_id in creditors:  # one creditor's failure does not hold back the others
            try:
                for business_day in self._days_to_run(creditor_id, day):
                    published += self._run_day(creditor_id, business_day)
            except Exception as exc:
                log.exception("creditor %s: the day could not be run", creditor_id)
                failures.append(exc)
        if failures:
            raise failures[0]
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
        return days

    def _run_day(self, creditor_id: str, day: date) -> list[str]:
        published: list[str] = []
        with self._transaction() as session:
            if session.get(DayClosed, (creditor_id, day)) is not None:
                return []
            self._execute(session, creditor_id, day)
            self._counter_activity(session, creditor_id, day)
            published += self._publish_returns(session, creditor_id, day)
            published += self._publish_statement(session, creditor_id, day)
            published += self._publish_mandates(session, creditor_id, day)
            session.add(DayClosed(creditor_id=creditor_id, day=day))
        return published

    # -- execution -------------------------------------------------------------------------------------
    def _execute(self, session: Session, creditor_id: str, day: date) -> None:
        """Final status for every instruction due by ``day``, checks in the spec's order (§5)."""
        connection = session.connection()
        due = fetch_frame(connection, DUE_SQL, (creditor_id, day), DUE_COLUMNS)
        if due.empty:
            return
        creditor = session.get(Creditor, creditor_id)
        assert creditor is not None
        reasons = decide_reasons(due, creditor_id, day, self.scenario)
        settled = consume_balances(due, reasons)
        prefix = f"AP{day:%Y%m%d}"
        start = (
            int(last[len(prefix) :])
            if (
                last := session.scalar(  # a range on the unique index: no scan of the history
                    select(func.max(Instruction.transaction_id)).where(
                        Instruction.transaction_id >= prefix, Instruction.transaction_id < prefix + "Z"
                    )
                )
            )
            else 0
        )
        ids = [f"{prefix}{start + i + 1:010d}" for i in range(len(due))]
        db_day = db_value(connection, day)
        run_sql(connection, "DROP TABLE IF EXISTS day_result")
        run_sql(connection, CREATE_DAY_RESULT)
        insert_rows(
            connection,
            "day_result",
            ("id", "status", "reason", "transaction_id", "account", "amount", "reference"),
            zip(
                due["id"].tolist(),
                ["ACSC" if ok else "RJCT" for ok in settled],
                [None if ok else r for ok, r in zip(settled, reasons, strict=True)],
                ids,
                [None if pd.isna(n) else int(n) for n in due["number"].tolist()],
                due["amount"].tolist(),
                due["reference"].tolist(),
                strict=True,
            ),
        )
        run_sql(connection, APPLY_STATUSES, (db_day,))
        run_sql(connection, RECORD_TRANSFERS, (db_day, creditor.account, creditor_id))
        run_sql(connection, DEBIT_ACCOUNTS)
        total = int(due["amount"].to_numpy(dtype=np.int64)[settled].sum())
        session.execute(
            update(Account).where(Account.number == creditor.account).values(balance=Account.balance + total)
        )
        run_sql(connection, "DROP TABLE day_result")
        log.info(
            "%s %s: %d executed, %d settled for %d centimes",
            creditor_id,
            day,
            len(due),
            int(settled.sum()),
            total,
        )

    def _counter_activity(self, session: Session, creditor_id: str, day: date) -> None:
        """The scenario's counter events of the day: some mandates revoked, some ceilings changed.

        Drawn after the day's executions, so they apply from the next business day on."""
        scenario = self.scenario
        if not (scenario.revoke_rate or scenario.ceiling_change_rate):
            return
        references = list(
            session.scalars(
                select(Mandate.reference)
                .where(
                    Mandate.creditor_id == creditor_id,
                    Mandate.revoked_on.is_(None),
                    Mandate.effective_date <= day,
                )
                .order_by(Mandate.reference)
            )
        )
        if not references:
            return
        revoke = scenario.fractions(f"revoke {day}", creditor_id, references) < scenario.revoke_rate
        change = scenario.fractions(f"ceiling {day}", creditor_id, references) < scenario.ceiling_change_rate
        effective = self.calendar.next_business_day(day)
        for index in np.flatnonzero(revoke | change).tolist():  # a few: load only those mandates
            mandate = session.get(Mandate, references[index])
            assert mandate is not None
            if revoke[index]:
                mandate.revoked_on = effective
                session.add(_event(mandate, "R", day, effective))
            else:
                mandate.ceiling = 0 if mandate.ceiling else scenario.new_ceiling  # lift one, or set one
                session.add(_event(mandate, "M", day, effective))
        session.flush()

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
        """Write a file as NAME.part, recorded in this transaction, renamed when it commits."""
        outbound = self.home(creditor_id) / "outbound"
        outbound.mkdir(parents=True, exist_ok=True)
        staging = outbound / f"{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"  # one per writer
        write_file(staging, kind, header, details, calendar=self.calendar, name=name)
        exchanged = name
        if self.protection.agreement(creditor_id).protected:  # contract §8: only NAME.pgp is published
            exchanged = protected_name(name)
            sealed = outbound / f"{exchanged}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
            try:
                self.protection.protect(creditor_id, staging, sealed, name=name, day=day)
            finally:
                staging.unlink()
            staging = sealed
        final = staging
        self._staged.append((staging, outbound / exchanged))
        session.add(
            PublishedFile(
                name=exchanged,
                creditor_id=creditor_id,
                kind=kind,
                day=day,
                sha256=sha256_of(final),
                size=final.stat().st_size,
            )
        )
        return exchanged

    def _next_name(self, session: Session, creditor_id: str, kind: str, day: date) -> str:
        taken = {
            plain_name_of(published) or published
            for published in session.scalars(
                select(PublishedFile.name).where(PublishedFile.creditor_id == creditor_id)
            )
        }
        outbound = self.home(creditor_id) / "outbound"
        for sequence in range(1, 100):
            name = build_file_name(kind, creditor_id, day, sequence)
            if name not in taken and not any((outbound / n).exists() for n in (name, protected_name(name))):
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
        """RETR files for every final status not yet reported (no empty RETR is published)."""
        connection = session.connection()
        rows = fetch_frame(connection, RETURNS_SQL, (creditor_id, self._late(day)), RETURNS_COLUMNS)
        names: list[str] = []
        for start in range(0, len(rows), MAX_DETAILS):
            part = rows.iloc[start : start + MAX_DETAILS]
            table = pa.table(
                {
                    "end_to_end_reference": pa.array(part["reference"].tolist(), pa.string()),
                    "debtor_rip": pa.array(part["rip"].tolist(), pa.string()),
                    "amount": pa.array(part["amount"].to_numpy(dtype=np.int64)),
                    "status": pa.array(part["status"].tolist(), pa.string()),
                    "reason": pa.array(part["reason"].fillna("").tolist(), pa.string()),
                    "status_date": pa.array(
                        pd.to_datetime(part["status_date"]).to_numpy().astype("datetime64[D]")
                    ),
                    "transaction_id": pa.array(part["transaction_id"].tolist(), pa.string()),
                    "prlv_file_name": pa.array(part["file_name"].tolist(), pa.string()),
                }
            )
            name = self._next_name(session, creditor_id, "RETR", day)
            header = self._standard_header(session, creditor_id, day, name)
            names.append(self._publish(session, creditor_id, "RETR", day, name, header, table))
            if len(rows) <= MAX_DETAILS:  # the usual case: one set-based update
                run_sql(connection, MARK_REPORTED, (name, creditor_id, db_value(connection, self._late(day))))
            else:
                update_rows(
                    connection,
                    Instruction.__tablename__,
                    ("retr_name",),
                    "id",
                    [(name, int(i)) for i in part["id"].tolist()],
                )
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
                exchanged = (name, protected_name(name))
                source = next(s for s, final in self._staged if final.name in exchanged).read_bytes()
                if self.protection.agreement(creditor_id).protected:  # the damaged copy, protected name
                    copy = protected_name(copy)
                data = (
                    source[: len(source) // 2]
                    if broken == "truncate"
                    else (source[:200] + (b"X" if source[200:201] != b"X" else b"Y") + source[201:])
                )
                target = self.home(creditor_id) / "outbound" / f"{copy}.{os.getpid()}.fault.part"
                target.write_bytes(data)
                self._staged.append((target, target.with_name(copy)))
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
        """MNDT: the counter actions up to ``day`` not yet reported, each as it was when it happened."""
        events = list(
            session.scalars(
                select(MandateEvent)
                .where(
                    MandateEvent.creditor_id == creditor_id,
                    MandateEvent.day <= day,
                    MandateEvent.published_in.is_(None),
                )
                .order_by(MandateEvent.id)
            )
        )
        if not events:
            return []
        table = pa.table(
            {
                "mandate_reference": [e.reference for e in events],
                "debtor_rip": [e.rip for e in events],
                "debtor_name": [e.debtor_name for e in events],
                "subscriber_number": [e.subscriber_number for e in events],
                "action": [e.action for e in events],
                "effective_date": pa.array([e.effective_date for e in events], pa.date32()),
                "ceiling": pa.array([e.ceiling for e in events], pa.int64()),
            }
        )
        name = self._next_name(session, creditor_id, "MNDT", day)
        header = self._standard_header(session, creditor_id, day, name)
        self._publish(session, creditor_id, "MNDT", day, name, header, table)
        for event_row in events:
            event_row.published_in = name
        return [name]


def _event(mandate: Mandate, action: str, day: date, effective: date) -> MandateEvent:
    """A counter action, with the mandate as it stands after it (what the MNDT record will say)."""
    return MandateEvent(
        reference=mandate.reference,
        creditor_id=mandate.creditor_id,
        action=action,
        day=day,
        rip=mandate.rip,
        debtor_name=mandate.debtor_name,
        subscriber_number=mandate.subscriber_number,
        ceiling=mandate.ceiling,
        effective_date=effective,
    )


DUE_COLUMNS = (
    "id",
    "reference",
    "file_name",
    "rip",
    "amount",
    "reference_reused",
    "number",
    "balance",
    "status",
    "deceased",
    "mandate_creditor",
    "mandate_rip",
    "ceiling",
    "effective_date",
    "revoked_on",
)
DUE_SQL = """
SELECT i.id, i.reference, i.file_name, i.rip, i.amount, i.reference_reused,
       a.number, a.balance, a.status, a.deceased,
       m.creditor_id, m.rip, m.ceiling, m.effective_date, m.revoked_on
FROM instruction i
LEFT JOIN account a ON a.rip = i.rip
LEFT JOIN mandate m ON m.reference = i.mandate_reference
WHERE i.creditor_id = ? AND i.status = 'pending' AND i.execute_on <= ?
ORDER BY i.id
"""


# Execution results go to a scratch table, then one set-based statement each: far faster than a million
# single-row updates (UPDATE ... FROM: SQLite 3.33+ and PostgreSQL).
CREATE_DAY_RESULT = """
CREATE TEMPORARY TABLE day_result (id INTEGER PRIMARY KEY, status VARCHAR(7), reason VARCHAR(4),
    transaction_id VARCHAR(20), account BIGINT, amount BIGINT, reference VARCHAR(24))
"""
APPLY_STATUSES = """
UPDATE instruction
SET status = r.status, reason = r.reason, transaction_id = r.transaction_id, status_date = ?
FROM day_result AS r WHERE instruction.id = r.id
"""
RECORD_TRANSFERS = """
INSERT INTO transfer (transaction_id, day, debit_account, credit_account, amount, creditor_id, reference)
SELECT r.transaction_id, ?, r.account, ?, r.amount, ?, r.reference
FROM day_result AS r WHERE r.status = 'ACSC'
"""
DEBIT_ACCOUNTS = """
UPDATE account SET balance = account.balance - s.spent
FROM (SELECT r.account AS number, SUM(r.amount) AS spent
      FROM day_result AS r WHERE r.status = 'ACSC' GROUP BY r.account) AS s
WHERE account.number = s.number
"""
USED_SQL = """
SELECT f.reference FROM file_reference AS f
JOIN used_reference AS u ON u.creditor_id = ? AND u.reference = f.reference
"""
MARK_REPORTED = """
UPDATE instruction SET retr_name = ?
WHERE creditor_id = ? AND status <> 'pending' AND retr_name IS NULL AND status_date <= ?
"""
RETURNS_COLUMNS = (
    "id",
    "reference",
    "rip",
    "amount",
    "status",
    "reason",
    "status_date",
    "transaction_id",
    "file_name",
)
RETURNS_SQL = """
SELECT id, reference, rip, amount, status, reason, status_date, transaction_id, file_name
FROM instruction
WHERE creditor_id = ? AND status <> 'pending' AND retr_name IS NULL AND status_date <= ?
ORDER BY id
"""


_IDENTIFIER = re.compile(r"^[A-Z0-9.,'/&()-](?:[A-Z0-9 .,'/&()-]*[A-Z0-9.,'/&()-])?$")


def mandate_problem(
    reference: str, rip: str, debtor_name: str, subscriber_number: str, ceiling: int
) -> str | None:
    """Why a counter could not register this mandate (it must be reportable in an MNDT file, spec §6)."""
    if not _IDENTIFIER.match(reference) or len(reference) > 20:
        return "the reference must be 1 to 20 of A–Z 0–9 . , - ' / & ( ), without edge spaces"
    if not _IDENTIFIER.match(subscriber_number) or len(subscriber_number) > 14:
        return "the subscriber number must be 1 to 14 allowed characters"
    if rip_problem(rip):
        return f"RIP {rip_problem(rip)}"
    if not normalize_text(debtor_name, 30):
        return "the debtor's name is empty once written in the A-field alphabet (e.g. Arabic script only)"
    if not 0 <= ceiling < 10**14:
        return "the ceiling must be 0 (none) to 14 digits of centimes"
    return None


def decide_reasons(due: pd.DataFrame, creditor_id: str, day: date, scenario: Scenario) -> list[str | None]:
    """The first reject reason of each instruction in the spec's order (§5), AM04 excepted (balances
    are consumed in order by ``consume_balances``); None where the instruction may be executed.

    ``due`` holds each instruction joined with its account and its mandate (nulls when unknown).
    """
    reasons = np.full(len(due), None, dtype=object)

    def apply(code: str, hit: npt.NDArray[np.bool_]) -> None:
        reasons[(reasons == None) & hit] = code  # noqa: E711 - elementwise comparison

    def flag(column: str) -> npt.NDArray[np.bool_]:
        values = due[column].to_numpy(dtype=object)  # bool, 0/1 or null depending on the database
        return np.array([bool(v) if v is not None and v == v else False for v in values], dtype=np.bool_)

    keys = [f"{f}/{r}" for f, r in zip(due["file_name"].tolist(), due["reference"].tolist(), strict=True)]
    apply(
        "MS03", scenario.fractions("ms03", creditor_id, keys) < scenario.ms03_rate
    )  # may happen at any point
    apply("AM05", flag("reference_reused"))
    apply("AC01", ~valid_rips(due["rip"].tolist()) | due["number"].isna().to_numpy())
    apply("MD07", flag("deceased"))
    apply("AC04", (due["status"] == "closed").to_numpy(dtype=np.bool_, na_value=False))
    apply("AC06", (due["status"] == "blocked").to_numpy(dtype=np.bool_, na_value=False))
    today = pd.Timestamp(day)
    effective = pd.to_datetime(due["effective_date"])
    revoked = pd.to_datetime(due["revoked_on"])
    no_mandate = (
        due["mandate_creditor"].isna().to_numpy()
        | (due["mandate_creditor"] != creditor_id).to_numpy(dtype=np.bool_, na_value=True)
        | (due["mandate_rip"] != due["rip"]).to_numpy(dtype=np.bool_, na_value=True)
        | (revoked <= today).to_numpy(dtype=np.bool_, na_value=False)
        | (effective > today).to_numpy(dtype=np.bool_, na_value=False)
    )
    apply("MD01", no_mandate)
    ceiling = due["ceiling"].fillna(0).to_numpy(dtype=np.int64)
    apply("AM02", (ceiling > 0) & (due["amount"].to_numpy(dtype=np.int64) > ceiling))
    return list(reasons)


def valid_rips(rips: list[str]) -> npt.NDArray[np.bool_]:
    """Vectorised RIP check: 20 digits, bank 007, agency 99999, right key."""
    ok = np.array([len(r) == 20 and r.isdigit() for r in rips], dtype=np.bool_)
    padded = [r if good else "0" * 20 for r, good in zip(rips, ok, strict=True)]
    digits = np.frombuffer("".join(padded).encode(), dtype=np.uint8).reshape(len(rips), 20) - 48
    return ok & rip_prefix_ok(digits) & rip_keys_ok(digits)


def consume_balances(due: pd.DataFrame, reasons: list[str | None]) -> npt.NDArray[np.bool_]:
    """Debit in order while the balance allows (AM04 otherwise). Accounts with one instruction that day
    are decided at once; the few with several are walked in order."""
    candidate = np.array([r is None for r in reasons], dtype=np.bool_)
    rips = due["rip"].to_numpy(dtype=object)
    amounts = due["amount"].to_numpy(dtype=np.int64)
    balance = due["balance"].fillna(0).to_numpy(dtype=np.int64)
    counts = pd.Series(rips[candidate]).value_counts()
    several = set(counts.index[counts.to_numpy() > 1])
    single = candidate & ~pd.Series(rips).isin(several).to_numpy()
    settled = single & (balance >= amounts)
    left: dict[str, int] = {}
    for i in np.flatnonzero(candidate & ~single).tolist():
        rip = rips[i]
        remaining = left.get(rip, int(balance[i]))
        if remaining >= amounts[i]:
            left[rip] = remaining - int(amounts[i])
            settled[i] = True
        else:
            left[rip] = remaining
    for i in np.flatnonzero(candidate & ~settled).tolist():
        reasons[i] = "AM04"
    return settled
