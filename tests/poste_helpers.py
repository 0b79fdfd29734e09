"""Helpers for the simulated post office's tests: a small world (creditor, CCP accounts, mandates),
PRLV files written with the real writer straight into a creditor's inbound/, and readers of what the
post office published in outbound/ and holds in its database."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from epay.calendar import BusinessCalendar
from epay.formats import build_file_name, get_layout, read_file, rip_from_account, validate_file, write_file
from epay.poste.office import PostOffice
from epay.poste.scenario import Faults, Scenario, load_scenario
from epay.poste.state import Account, Instruction, Transfer
from tests.conftest import SAMPLES

ALGIERS = ZoneInfo("Africa/Algiers")
CREDITOR = "100237"
CREDITOR_RIP = rip_from_account(123456)  # 00799999000012345687, as in sample_files/
CREDITOR_NAME = "ALGERIE TELECOM"
OTHER = "100238"
OTHER_RIP = rip_from_account(654321)

WED = date(2026, 11, 25)
THU = date(2026, 11, 26)
FRI = date(2026, 11, 27)
SAT = date(2026, 11, 28)
SUN = date(2026, 11, 29)
MON = date(2026, 11, 30)
TUE = date(2026, 12, 1)
SIGNED = date(2026, 11, 1)  # mandates are signed and effective well before the debits


def at(day: date, hh: int = 20, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=ALGIERS)


def quiet(**changes: Any) -> Scenario:
    """The default scenario without randomness: no MS03, no delayed status."""
    return replace(load_scenario(), **({"ms03_rate": 0.0, "delayed_share": 0.0} | changes))


def faulty(**faults: Any) -> Scenario:
    return quiet(faults=replace(Faults(), **faults))


@dataclass(frozen=True)
class Debit:
    """One PRLV instruction. ``rip`` overrides the account's RIP (e.g. a wrong key)."""

    account: int
    amount: int
    ref: str
    mandate: str
    rip: str | None = None
    name: str = "BENALI MOHAMED"

    @property
    def debtor_rip(self) -> str:
        return self.rip or rip_from_account(self.account)


def details_table(debits: list[Debit]) -> pa.Table:
    return pa.table(
        {
            "operation": ["FA"] * len(debits),
            "debtor_rip": [d.debtor_rip for d in debits],
            "debtor_name": [d.name for d in debits],
            "amount": pa.array([d.amount for d in debits], pa.int64()),
            "end_to_end_reference": [d.ref for d in debits],
            "mandate_reference": [d.mandate for d in debits],
            "invoice_number": [f"FAC{i:08d}" for i in range(1, len(debits) + 1)],
            "due_date": pa.array([date(2026, 11, 20)] * len(debits), pa.date32()),
        }
    )


def prlv_header(
    created: date, settles: date, seq: int, creditor: str = CREDITOR, rip: str = CREDITOR_RIP
) -> dict[str, Any]:
    return {
        "creditor_id": int(creditor),
        "creation_date": created,
        "settlement_date": settles,
        "sequence": seq,
        "creditor_rip": rip,
        "creditor_name": CREDITOR_NAME,
    }


def set_field(path: Path, line: int, field: str, value: str) -> None:
    """Overwrite one field of the record at ``line`` (1-based) of a PRLV file, padded to its width."""
    records = path.read_bytes().split(b"\n")[:-1]
    layout = get_layout("PRLV")
    role = "header" if line == 1 else "trailer" if line == len(records) else "detail"
    spec = getattr(layout, role).field(field)
    text = value.zfill(spec.length) if spec.kind == "N" else value.ljust(spec.length)
    record = bytearray(records[line - 1])
    record[spec.offset : spec.end] = text.encode("ascii")[: spec.length]
    records[line - 1] = bytes(record)
    path.write_bytes(b"\n".join(records) + b"\n")


INVALID_ROW = re.compile(
    r"^\| `(?P<path>[^`]+)` \| [^|]+ \| (?P<code>[A-Z]{2}[0-9]{2})[^|]* \| (?P<line>[0-9-]+) \| "
    r"(?P<field>[a-z_]+) \|$"
)


def invalid_prlv_samples() -> list[tuple[str, str, int]]:
    """(path under sample_files/invalid, code, line) of the hand-built invalid PRLV files."""
    rows = []
    for text in (SAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        m = INVALID_ROW.match(text)
        if m and "/PRLV_100237_20261125_01.txt" in m["path"]:
            rows.append((m["path"], m["code"], int(m["line"])))
    return rows


class World:
    """A post office in a temporary folder with AT registered, plus shortcuts."""

    def __init__(self, root: Path, calendar: BusinessCalendar, scenario: Scenario | None = None) -> None:
        self.calendar = calendar
        self.office = PostOffice(root / "poste", calendar=calendar, scenario=scenario or quiet())
        self.office.add_creditor(CREDITOR, CREDITOR_NAME, CREDITOR_RIP)

    # -- the world -------------------------------------------------------------------------------
    def inbound(self, creditor: str = CREDITOR) -> Path:
        return self.office.home(creditor) / "inbound"

    def outbound(self, creditor: str = CREDITOR) -> Path:
        return self.office.home(creditor) / "outbound"

    def accounts(self, rows: list[tuple[int, int, str, bool]]) -> None:
        """(account number, balance, status, deceased) per account."""
        self.office.add_accounts(
            pd.DataFrame(
                {
                    "rip": [rip_from_account(n) for n, *_ in rows],
                    "holder": [f"HOLDER {n}" for n, *_ in rows],
                    "balance": [b for _, b, _, _ in rows],
                    "status": [s for _, _, s, _ in rows],
                    "deceased": [d for *_, d in rows],
                }
            )
        )

    def account(
        self, number: int, balance: int = 10_000_000, status: str = "open", deceased: bool = False
    ) -> None:
        self.accounts([(number, balance, status, deceased)])

    def mandate(
        self,
        reference: str,
        account: int,
        *,
        ceiling: int = 0,
        effective: date = SIGNED,
        day: date = SIGNED,
        creditor: str = CREDITOR,
    ) -> None:
        self.office.register_mandate(
            reference,
            creditor,
            rip_from_account(account),
            "BENALI MOHAMED",
            f"TLF{account:010d}",
            effective_date=effective,
            day=day,
            ceiling=ceiling,
        )

    def customer(self, account: int, balance: int = 10_000_000, ceiling: int = 0) -> str:
        """An open account with a valid mandate; returns the mandate reference."""
        self.account(account, balance)
        reference = f"APM{account:010d}"
        self.mandate(reference, account, ceiling=ceiling)
        return reference

    # -- PRLV files --------------------------------------------------------------------------------
    def prlv(
        self,
        debits: list[Debit],
        *,
        created: date = WED,
        settles: date = THU,
        seq: int = 1,
        creditor: str = CREDITOR,
        rip: str = CREDITOR_RIP,
        folder: Path | None = None,
        validate: bool = True,
        arrived: datetime | None = None,
    ) -> Path:
        """Write a PRLV file with the real writer into ``folder`` (default: the creditor's inbound/)."""
        name = build_file_name("PRLV", creditor, created, seq)
        path = (folder or self.inbound(creditor)) / name
        write_file(
            path,
            "PRLV",
            prlv_header(created, settles, seq, creditor, rip),
            details_table(debits),
            calendar=self.calendar,
            validate=validate,
        )
        if arrived is not None:
            os.utime(path, (arrived.timestamp(), arrived.timestamp()))
        return path

    def ack(
        self, path: Path, received_at: datetime | None = None, creditor: str = CREDITOR
    ) -> dict[str, Any]:
        """Acknowledge ``path`` as arrived at ``received_at`` (default: Wednesday 20:00); the ACK's record."""
        name = self.office.acknowledge(creditor, path, received_at or at(WED))
        assert name == f"ACK_{path.name}"
        return self.ack_record(name, creditor)

    def ack_record(self, name: str, creditor: str = CREDITOR) -> dict[str, Any]:
        report = read_file(self.outbound(creditor) / name, calendar=self.calendar)
        assert report.details is not None and report.details.num_rows == 1
        record: dict[str, Any] = report.details.to_pylist()[0]
        return record

    # -- what was published --------------------------------------------------------------------------
    def published(self, kind: str, creditor: str = CREDITOR) -> list[Path]:
        return sorted(p for p in self.outbound(creditor).glob(f"{kind}_*.txt"))

    def records(self, path: Path) -> list[dict[str, Any]]:
        report = read_file(path, calendar=self.calendar)
        assert report.details is not None
        rows: list[dict[str, Any]] = report.details.to_pylist()
        return rows

    def retr(self, creditor: str = CREDITOR) -> list[dict[str, Any]]:
        """Every RETR record published so far, with the RETR file's name under ``retr``."""
        return [r | {"retr": p.name} for p in self.published("RETR", creditor) for r in self.records(p)]

    def statuses(self, creditor: str = CREDITOR) -> dict[str, tuple[str, str]]:
        """reference -> (status, reason) from the RETR files; each reference reported once."""
        rows = self.retr(creditor)
        refs = [r["end_to_end_reference"] for r in rows]
        assert len(refs) == len(set(refs)), refs
        return {r["end_to_end_reference"]: (r["status"], r["reason"] or "") for r in rows}

    def outbound_state(self, creditor: str = CREDITOR) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.outbound(creditor).iterdir())}

    def all_valid(self, creditor: str = CREDITOR) -> None:
        for path in sorted(self.outbound(creditor).glob("*.txt")):
            report = validate_file(path, calendar=self.calendar)
            assert report.valid, (path.name, report.problems[:3])

    # -- the database --------------------------------------------------------------------------------
    def balances(self) -> dict[int, int]:
        with self.office.sessions() as session:
            return {a.number: a.balance for a in session.scalars(select(Account))}

    def balance(self, account: int) -> int:
        return self.balances()[account]

    def transfers(self) -> list[Transfer]:
        with self.office.sessions() as session:
            return list(session.scalars(select(Transfer)))

    def instructions(self) -> list[Instruction]:
        with self.office.sessions() as session:
            return list(session.scalars(select(Instruction).order_by(Instruction.id)))
