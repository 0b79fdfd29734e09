"""The independent count the finance figures are checked against: the exchanged files themselves (PRLV
sent, ACK, RETR and RELV received), read from the data folder with the codec, never through the ledger or
``epay.finance``. Amounts are int centimes.

- presented on settlement date D: the details of the PRLV files whose header settles on D and whose ACK
  is not RJCT; settled / rejected (by reason) / pending: by the final status the RETR files give each
  reference (no RETR line yet: pending);
- not presented on D: the PRLV files settling on D rejected at ACK; re-filed: their references found in a
  later file that was not rejected;
- debited on debit date D: the ACSC lines of the RETR files whose date (positions 75–82) is D, each
  reference once; late: due on an earlier settlement date (its accepted PRLV file's); credited: the RELV
  lines for D; statement in: a RELV file named for D was received.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from epay.formats import read_file

RELV_NAME = re.compile(r"RELV_\d{6}_(\d{8})_\d{2}\.txt")


@dataclass
class Files:
    prlv: dict[str, tuple[date, dict[str, tuple[str, int]]]] = field(default_factory=dict)  # name ->
    ack: dict[str, tuple[str, str]] = field(default_factory=dict)  # PRLV name -> (status, reason)
    retr: dict[str, tuple[str, str, date, int]] = field(default_factory=dict)  # ref -> status...
    relv: list[tuple[date, date, int, int]] = field(default_factory=list)  # statement, debit, n, amount
    statement_days: set[date] = field(default_factory=set)

    def accepted_file_of(self, reference: str) -> str | None:
        for name, (_, details) in self.prlv.items():
            if reference in details and self.ack.get(name, ("", ""))[0] != "RJCT":
                return name
        return None


def read_files(home: Path) -> Files:
    files = Files()
    for path in sorted(home.glob("files/outbound/*/PRLV_*.txt")):
        report = read_file(path)
        assert report.header is not None and report.details is not None
        details = {
            str(d["end_to_end_reference"]): (str(d["operation"]), int(d["amount"]))
            for d in report.details.to_pylist()
        }
        files.prlv[path.name] = (report.header["settlement_date"], details)
    for path in sorted(home.glob("files/inbound/*/ACK_*.txt")):
        (line,) = read_file(path).details.to_pylist()  # type: ignore[union-attr]
        files.ack[str(line["prlv_file_name"])] = (str(line["status"]), str(line["reason"]).strip())
    for path in sorted(home.glob("files/inbound/*/RETR_*.txt")):
        for line in read_file(path).details.to_pylist():  # type: ignore[union-attr]
            files.retr[str(line["end_to_end_reference"])] = (
                str(line["status"]),
                str(line["reason"]).strip(),
                line["status_date"],
                int(line["amount"]),
            )
    for path in sorted(home.glob("files/inbound/*/RELV_*.txt")):
        match = RELV_NAME.fullmatch(path.name)
        assert match is not None
        day = date(int(match[1][:4]), int(match[1][4:6]), int(match[1][6:]))
        files.statement_days.add(day)
        for line in read_file(path).details.to_pylist():  # type: ignore[union-attr]
            files.relv.append((day, line["debit_date"], int(line["settled_count"]), int(line["amount"])))
    return files


Pair = list[int]  # [count, amount]


@dataclass
class SettlementCount:
    presented: dict[str, Pair]  # by operation and "total"
    settled: dict[str, Pair]
    rejected: dict[str, Pair]
    pending: dict[str, Pair]
    rejected_by_reason: dict[str, Pair]
    not_presented: dict[str, tuple[str, int, int]]  # file -> (reason, count, amount)
    re_filed: dict[str, Pair]  # rejected file -> count, amount found again in a later file


def _add(table: dict[str, Pair], key: str, amount: int) -> None:
    pair = table.setdefault(key, [0, 0])
    pair[0] += 1
    pair[1] += amount


def settlement_count(files: Files, first: date, last: date) -> SettlementCount:
    tables: dict[str, dict[str, Pair]] = {n: {} for n in ("presented", "settled", "rejected", "pending")}
    by_reason: dict[str, Pair] = {}
    not_presented: dict[str, tuple[str, int, int]] = {}
    re_filed: dict[str, Pair] = {}
    for name, (settles, details) in files.prlv.items():
        if not first <= settles <= last:
            continue
        status, reason = files.ack.get(name, ("", ""))
        if status == "RJCT":
            not_presented[name] = (reason, len(details), sum(a for _, a in details.values()))
            for reference, (_, amount) in details.items():
                later = files.accepted_file_of(reference)
                if later is not None and later != name:
                    _add(re_filed, name, amount)
            continue
        for reference, (operation, amount) in details.items():
            final = files.retr.get(reference)
            state = "pending" if final is None else ("settled" if final[0] == "ACSC" else "rejected")
            for key in (operation, "total"):
                _add(tables["presented"], key, amount)
                _add(tables[state], key, amount)
            if state == "rejected":
                assert final is not None
                _add(by_reason, final[1], amount)
    return SettlementCount(
        tables["presented"],
        tables["settled"],
        tables["rejected"],
        tables["pending"],
        by_reason,
        not_presented,
        re_filed,
    )


@dataclass
class CashCount:
    debited: Pair
    late: Pair
    late_from: set[date]
    credited: Pair
    statement_in: bool


def cash_count(files: Files, day: date) -> CashCount:
    debited, late = [0, 0], [0, 0]
    late_from: set[date] = set()
    for reference, (status, _, debit_date, amount) in files.retr.items():
        if status != "ACSC" or debit_date != day:
            continue
        debited[0] += 1
        debited[1] += amount
        carrier = files.accepted_file_of(reference)
        assert carrier is not None, reference
        due_on = files.prlv[carrier][0]
        if due_on < day:
            late[0] += 1
            late[1] += amount
            late_from.add(due_on)
    credited = [0, 0]
    for _, debit_date, count, amount in files.relv:
        if debit_date == day:
            credited[0] += count
            credited[1] += amount
    return CashCount(debited, late, late_from, credited, day in files.statement_days)


def debit_dates(files: Files) -> set[date]:
    days = {d for status, _, d, _ in files.retr.values() if status == "ACSC"}
    return days | {d for _, d, _, _ in files.relv}


def settlement_dates(files: Files) -> set[date]:
    return {settles for settles, _ in files.prlv.values()}


__all__ = ["CashCount", "Files", "SettlementCount", "cash_count", "read_files", "settlement_count"]
