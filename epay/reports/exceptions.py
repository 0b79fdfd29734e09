"""``epay exceptions --date D``: the day's exceptions list — what a person must look at. Empty on a good
day; the command's exit status is 1 when anything is listed, so it can drive an alert.

The list for D is meant to be read once D's inbound files are in (the evening of D, or the next morning):
it says what is wrong as of then. Two kinds of entries:

- **open conditions**, listed for as long as they last: instructions of D or earlier not at the post
  office when they should be (in a file not sent before its cut-off, taken out of a file rejected at ACK
  or expired and not re-filed yet, held after a rejection, in a batch held above the day's ceilings), a
  file in quarantine (inbound or billing extract, quarantined by the run of a business date on or before
  D), an instruction without its final status ``returns_overdue_business_days`` business days after its
  settlement date (AP reports on the settlement date or up to two business days
  later, spec §5; so by the end of settlement date + N they must all be in), a PRLV file sent more than
  ``ack_deadline_minutes`` before ``now`` without its ACK, a business day up to D without its RELV
  statement (AP publishes one every business day, spec §7);
- **events**, listed on the day they happen: return exceptions (records of a RETR that did not match what
  was sent) and refunds owed (paid elsewhere while debited), those of D and of the days since the
  previous business day (so Sunday's list also shows the weekend's). Every refund still owed is also
  summed up, for information, without counting as an exception.

Every entry has a reference, stable from one list to the next (``reference``: a category prefix and a
digest of its natural key, or ``RX-``/``RF-`` and a ledger id), by which a person marks it handled with who
and why (``epay.reports.handling``; a refund is marked refunded by finance): it is then listed apart as
handled, and the counts (and so the exit status and the night's alert) are what is still open.

The selection rules are pure functions (``overdue_returns``, ``acks_overdue``, ``missing_statements``,
``in_window``); ``daily_exceptions`` reads the ledger and the quarantine folders and applies them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, cast, func, literal, select

from epay.alerts import mask_rips
from epay.calendar import BusinessCalendar
from epay.ledger.bulk import stored_utc
from epay.ledger.models import ExceptionHandling, ExchangeFile, Instruction, ReturnException
from epay.settings import ALGIERS, Settings

QUARANTINE_FOLDERS = ("inbound", "billing")
SHOWN_PER_CATEGORY = 200  # entries listed per category; the counts are always complete
REFERENCES_SHOWN = 20  # overdue references listed per file
OPEN_STATES = ("sent", "presented")  # at the post office, final status not known yet
_RELV_NAME = re.compile(r"^RELV_[0-9]{6}_([0-9]{8})_[0-9]{2}\.txt$")
_COPY_SUFFIX = re.compile(r"^(.+\.[A-Za-z0-9]+)\.([0-9]+)$")  # NAME.txt.1: the second file of that name


# --- quarantine folders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantinedFile:
    folder: str  # inbound | billing
    name: str  # the file's own name
    stored_as: str  # its name in the quarantine folder (NAME, or NAME.1, NAME.2... when taken)
    size: int
    quarantined_at: datetime  # UTC: when its reasons were written
    reasons: tuple[str, ...]  # RIPs masked
    business_date: date  # the business date of the run that quarantined it
    reference: str  # the exception's reference: QF- and a digest of (folder, name kept, day, sha256)

    @property
    def quarantined_on(self) -> date:
        return self.business_date

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["quarantined_at"] = self.quarantined_at.isoformat()
        document["quarantined_on"] = self.quarantined_on.isoformat()
        document["business_date"] = self.business_date.isoformat()
        document["reasons"] = list(self.reasons)
        return document


def quarantined_files(quarantine_dir: Path, name: str | None = None) -> list[QuarantinedFile]:
    """The files in ``quarantine_dir/inbound`` and ``quarantine_dir/billing`` (only those of ``name`` if
    given, a bare file name), with the reasons written beside each, oldest first. Each is dated by the
    business date its reasons file records (the run's day); a reasons file written before that was
    recorded dates it by its time in Algiers. The folders are listed, never joined with an outside name."""
    from epay.quarantine import REASON_SUFFIX as SUFFIX
    from epay.quarantine import file_sha256, read_reasons

    found = []
    for folder in QUARANTINE_FOLDERS:
        base = quarantine_dir / folder
        if not base.is_dir():
            continue
        with os.scandir(base) as entries:
            listed = [e for e in entries if e.is_file(follow_symlinks=False)]
        for entry in listed:
            if entry.name.endswith(SUFFIX):
                continue
            copy = _COPY_SUFFIX.match(entry.name)
            original = copy.group(1) if copy else entry.name
            if name is not None and name not in (original, entry.name):
                continue
            reasons_path = base / (entry.name + SUFFIX)
            stat = reasons_path.stat() if reasons_path.is_file() else entry.stat(follow_symlinks=False)
            at = datetime.fromtimestamp(stat.st_mtime, UTC)
            written = read_reasons(
                reasons_path.read_text(encoding="utf-8", errors="replace") if reasons_path.is_file() else ""
            )
            day = written.business_date or at.astimezone(ALGIERS).date()
            sha256 = written.sha256 or file_sha256(Path(entry.path))
            found.append(
                QuarantinedFile(
                    folder=folder,
                    name=original,
                    stored_as=entry.name,
                    size=entry.stat(follow_symlinks=False).st_size,
                    quarantined_at=at,
                    reasons=tuple(mask_rips(line) for line in written.reasons),
                    business_date=day,
                    reference=reference("QF", folder, entry.name, day.isoformat(), sha256),
                )
            )
    return sorted(found, key=lambda q: (q.business_date, q.quarantined_at, q.folder, q.stored_as))


def reference(prefix: str, *key: str) -> str:
    """An exception's reference: its category's prefix and the first 10 hex digits of the sha256 of its
    natural key — stable from one list to the next, the same on every machine, short enough to type."""
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:10]}"


# --- pure selection -----------------------------------------------------------------------------------------


def in_window(day: date, business_date: date, calendar: BusinessCalendar) -> bool:
    """True for ``business_date`` and the days since the previous business day: (previous, D]."""
    return calendar.previous_business_day(business_date) < day <= business_date


def returns_due_by(settlement_date: date, calendar: BusinessCalendar, business_days: int) -> date:
    """The last day a final status may come for an instruction settling on ``settlement_date``."""
    return calendar.add_business_days(settlement_date, business_days)


@dataclass(frozen=True)
class OpenReturns:
    """Instructions of one PRLV file (and settlement date) still waiting for their final status."""

    file: str | None
    settlement_date: date
    count: int
    amount: int


@dataclass(frozen=True)
class OverdueReturns:
    file: str | None
    settlement_date: date
    due_by: date
    count: int
    amount: int
    references: tuple[str, ...] = ()  # the first few, for a person to start from

    @property
    def reference(self) -> str:
        """The group's exception reference: its file and settlement date."""
        return reference("OR", self.file or "", self.settlement_date.isoformat())

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document.update(
            settlement_date=self.settlement_date.isoformat(),
            due_by=self.due_by.isoformat(),
            references=list(self.references),
            reference=self.reference,
        )
        return document


def overdue_returns(
    waiting: Iterable[OpenReturns], business_date: date, calendar: BusinessCalendar, business_days: int
) -> list[OverdueReturns]:
    """The groups whose last day for a final status (settlement date + ``business_days`` business days)
    is ``business_date`` or earlier: the list is read at the end of the day."""
    overdue = []
    for group in waiting:
        due_by = returns_due_by(group.settlement_date, calendar, business_days)
        if due_by <= business_date:
            overdue.append(
                OverdueReturns(group.file, group.settlement_date, due_by, group.count, group.amount)
            )
    return sorted(overdue, key=lambda o: (o.settlement_date, o.file or ""))


@dataclass(frozen=True)
class SentFile:
    name: str
    business_date: date
    sent_at: datetime


@dataclass(frozen=True)
class AckOverdue:
    name: str
    business_date: date
    sent_at: datetime
    waiting_minutes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": reference("AK", self.name),
            "name": self.name,
            "business_date": self.business_date.isoformat(),
            "sent_at": self.sent_at.isoformat(),
            "waiting_minutes": self.waiting_minutes,
        }


def acks_overdue(sent: Iterable[SentFile], now: datetime, deadline_minutes: int) -> list[AckOverdue]:
    """Files sent more than ``deadline_minutes`` before ``now`` (aware) that still wait for their ACK (the
    rule of the debit run's own wait, ``epay.jobs.overdue_acks``)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    late = []
    for file in sent:
        waited = now - file.sent_at
        if waited > timedelta(minutes=deadline_minutes):
            late.append(
                AckOverdue(file.name, file.business_date, file.sent_at, int(waited.total_seconds() // 60))
            )
    return sorted(late, key=lambda a: (a.sent_at, a.name))


def missing_statements(
    received: Iterable[date], first_day: date | None, business_date: date, calendar: BusinessCalendar
) -> list[date]:
    """Business days from ``first_day`` to ``business_date`` (both included) without a RELV statement."""
    if first_day is None or first_day > business_date:
        return []
    have = set(received)
    missing = []
    day = calendar.add_business_days(first_day, 0)  # first_day, or the next business day
    while day <= business_date:
        if day not in have:
            missing.append(day)
        day = calendar.next_business_day(day)
    return missing


def statement_day(name: str) -> date | None:
    """The business day a RELV file states (from its name), None for another name."""
    match = _RELV_NAME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None


# --- reading the ledger -------------------------------------------------------------------------------------


def _open_returns(engine: Engine, business_date: date) -> list[OpenReturns]:
    query = (
        select(
            ExchangeFile.name,
            Instruction.settlement_date,
            func.count(),
            func.coalesce(func.sum(Instruction.amount), 0),
        )
        .select_from(Instruction)
        .outerjoin(ExchangeFile, ExchangeFile.id == Instruction.file_id)
        .where(Instruction.state.in_(OPEN_STATES), Instruction.settlement_date <= business_date)
        .group_by(ExchangeFile.name, Instruction.settlement_date)
    )
    with engine.connect() as connection:
        return [OpenReturns(r[0], r[1], int(r[2]), int(r[3])) for r in connection.execute(query)]


def _with_references(engine: Engine, groups: list[OverdueReturns]) -> list[OverdueReturns]:
    out = []
    with engine.connect() as connection:
        for group in groups:
            query = (
                select(Instruction.reference)
                .outerjoin(ExchangeFile, ExchangeFile.id == Instruction.file_id)
                .where(
                    Instruction.state.in_(OPEN_STATES),
                    Instruction.settlement_date == group.settlement_date,
                    ExchangeFile.name.is_(None) if group.file is None else ExchangeFile.name == group.file,
                )
                .order_by(Instruction.reference)
                .limit(REFERENCES_SHOWN)
            )
            references = tuple(connection.execute(query).scalars())
            out.append(
                OverdueReturns(
                    group.file, group.settlement_date, group.due_by, group.count, group.amount, references
                )
            )
    return out


def sent_files(engine: Engine, business_date: date) -> list[SentFile]:
    """PRLV files sent for ``business_date`` or before whose ACK has not been applied, with the time they
    were recorded sent (``updated_at`` of a file in state ``sent``: written with its audit event, and a
    re-run that found the file already uploaded counts from then). Shared with the debit run's wait."""
    query = (
        select(ExchangeFile.name, ExchangeFile.business_date, ExchangeFile.updated_at)
        .where(
            ExchangeFile.direction == "out",
            ExchangeFile.kind == "PRLV",
            ExchangeFile.state == "sent",
            ExchangeFile.business_date <= business_date,
        )
        .order_by(ExchangeFile.name)
    )
    with engine.connect() as connection:
        return [SentFile(name, day, stored_utc(sent)) for name, day, sent in connection.execute(query)]


def _statements(engine: Engine) -> tuple[list[date], date | None]:
    """(days stated by the RELV files received, the first day a RELV is expected)."""
    with engine.connect() as connection:
        names = connection.execute(
            select(ExchangeFile.name).where(ExchangeFile.direction == "in", ExchangeFile.kind == "RELV")
        ).scalars()
        days = [d for d in (statement_day(n) for n in names) if d is not None]
        first_settlement = connection.execute(
            select(func.min(ExchangeFile.settlement_date)).where(
                ExchangeFile.direction == "out",
                ExchangeFile.kind == "PRLV",
                ExchangeFile.state.in_(("sent", "accepted", "rejected")),
            )
        ).scalar_one_or_none()
    starts = [d for d in (first_settlement, min(days, default=None)) if d is not None]
    return days, min(starts, default=None)


def _return_exceptions(
    engine: Engine, business_date: date, calendar: BusinessCalendar, shown: int | None
) -> tuple[int, int, list[dict[str, Any]]]:
    """(open count, handled count, the entries: open ones first, up to ``shown`` of each). An entry's
    reference is RX- and its ledger id; its handling is joined in SQL (a RETR can bring many)."""
    since = calendar.previous_business_day(business_date)
    where = (ReturnException.business_date > since, ReturnException.business_date <= business_date)
    ref = literal("RX-", String) + cast(ReturnException.id, String)
    joined = ReturnException.__table__.outerjoin(ExceptionHandling, ExceptionHandling.reference == ref)
    handled = ExceptionHandling.reference.is_not(None)
    with engine.connect() as connection:
        counts = dict(
            connection.execute(
                select(handled, func.count()).select_from(joined).where(*where).group_by(handled)
            ).all()
        )
        entries = []
        for is_handled in (False, True):
            query = (
                select(
                    ReturnException.id,
                    ExchangeFile.name,
                    ReturnException.line,
                    ReturnException.reference,
                    ReturnException.kind,
                    ReturnException.detail,
                    ReturnException.business_date,
                )
                .select_from(joined.join(ExchangeFile, ExchangeFile.id == ReturnException.file_id))
                .where(*where, handled if is_handled else ExceptionHandling.reference.is_(None))
                .order_by(ReturnException.business_date, ExchangeFile.name, ReturnException.line)
            )
            if shown is not None:
                query = query.limit(shown)
            entries += [
                {
                    "reference": f"RX-{row_id}",
                    "file": name,
                    "line": int(line),
                    "instruction_reference": instruction,
                    "kind": kind,
                    "detail": mask_rips(detail),
                    "business_date": day.isoformat(),
                    "handled": is_handled,  # replaced by the handling itself below
                }
                for row_id, name, line, instruction, kind, detail, day in connection.execute(query)
            ]
    return int(counts.get(False, 0)), int(counts.get(True, 0)), entries


def _refunds(
    engine: Engine, business_date: date, calendar: BusinessCalendar
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(the refunds owed that arose in the day's window, each with its reference and whether finance has
    refunded it; the refunds still owed in all, up to the day)."""
    from epay.reports.refunds import refund_list

    new, outstanding_count, outstanding_amount = [], 0, 0
    for row in refund_list(engine):
        paid, debited = date.fromisoformat(row["paid_elsewhere_on"]), date.fromisoformat(row["debited_on"])
        since = max(paid, debited)
        if since > business_date:
            continue
        if row["state"] == "owed":
            outstanding_count += 1
            outstanding_amount += int(row["amount"])
        if in_window(since, business_date, calendar):
            new.append({k: v for k, v in row.items() if k not in ("state", "refunded")})
    return new, {"count": outstanding_count, "amount": outstanding_amount}


def waiting_instructions(
    engine: Engine, business_date: date, now: datetime, calendar: BusinessCalendar
) -> list[dict[str, Any]]:
    """Instructions built on or before ``business_date`` that are not at the post office when they
    should be: taken out of a rejected (DT01) or expired file and not re-filed yet, held after their
    file's rejection, in a batch held above the day's ceilings, or in a file not sent before its
    cut-off. Listed until they are re-filed (or released, cancelled), grouped by night and file."""
    from epay.ledger.bulk import fetch_frame
    from epay.outbound.cutoff import cut_off

    with engine.connect() as connection:
        rows = fetch_frame(
            connection,
            "SELECT i.business_date, coalesce(f.name, ''), coalesce(f.state, ''), coalesce(f.reason, ''), "
            "f.settlement_date, i.state, count(*), coalesce(sum(i.amount), 0) FROM instruction i "
            "LEFT JOIN exchange_file f ON f.id = i.file_id "
            "WHERE i.state IN ('built', 'held') AND i.business_date <= ? "
            "GROUP BY i.business_date, f.name, f.state, f.reason, f.settlement_date, i.state "
            "ORDER BY i.business_date, f.name",
            (business_date,),
            ("night", "file", "file_state", "reason", "settles", "state", "count", "amount"),
            dates=("night", "settles"),
        )
        left = dict(  # the files a night's instructions were taken out of
            connection.execute(
                select(ExchangeFile.business_date, func.max(ExchangeFile.name))
                .where(
                    ExchangeFile.direction == "out",
                    ExchangeFile.kind == "PRLV",
                    ExchangeFile.state.in_(("rejected", "expired")),
                    ExchangeFile.business_date <= business_date,
                )
                .group_by(ExchangeFile.business_date)
            ).all()
        )
    found: list[dict[str, Any]] = []
    for night, file, file_state, reason, settles, state, count, amount in rows.itertuples(index=False):
        night_day = night.date()
        if not file:
            last = left.get(night_day)
            condition = "unfiled"
            why = (
                f"taken out of {last or 'its file'} (rejected at ACK or expired unsent), not re-filed yet: "
                "the next build re-files it"
            )
        elif state == "held":
            condition = "held_after_rejection"
            why = (
                f"held after {file} was rejected ({reason or 'see its ACK'}): once understood, "
                f"`epay outbound release-file --file {file} --by NAME`"
            )
        elif file_state == "held":
            condition = "batch_held"
            why = (
                f"batch held above the day's ceilings in {file}: `epay outbound release --date {night_day} "
                "--by NAME` before the cut-off, or `epay outbound cancel`"
            )
        elif file_state == "built" and settles is not None and now >= cut_off(settles.date(), calendar):
            condition = "not_sent_before_cutoff"
            why = f"{file} was not sent before its cut-off: the next build re-files its instructions"
        else:
            continue  # on its way: built tonight, still before its cut-off
        found.append(
            {
                "reference": reference("NP", night_day.isoformat(), file or "", condition),
                "condition": condition,
                "night": night_day.isoformat(),
                "file": file or None,
                "count": int(count),
                "amount": int(amount),
                "why": why,
            }
        )
    return found


CATEGORIES = (
    "not_at_post_office",
    "quarantined_files",
    "return_exceptions",
    "overdue_returns",
    "acks_overdue",
    "relv_missing",
    "refunds_owed",
)


def daily_exceptions(
    engine: Engine,
    settings: Settings,
    business_date: date,
    calendar: BusinessCalendar,
    *,
    now: datetime | None = None,
    shown: int | None = SHOWN_PER_CATEGORY,
    open_only: bool = False,
) -> dict[str, Any]:
    """The exceptions list of ``business_date`` as one JSON-ready document; ``now`` (aware, default the
    current time) is the moment the ACK deadlines are judged at.

    Every entry has a ``reference`` (stable from one list to the next) and ``handled``: None while it is
    open, else who handled it, when and why (a refund: who refunded it). ``counts`` are the open ones (what
    a person still has to look at; ``empty`` when there is none), ``handled_counts`` the others. Each
    category lists its open entries first, then (unless ``open_only``) its handled ones, up to ``shown``
    of each (None: all)."""
    from epay.reports.handling import handlings

    now = now or settings.now()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    quarantined = [q for q in quarantined_files(settings.quarantine_dir) if q.quarantined_on <= business_date]
    open_exceptions, handled_exceptions, exceptions = _return_exceptions(
        engine, business_date, calendar, shown
    )
    overdue = _with_references(
        engine,
        overdue_returns(
            _open_returns(engine, business_date),
            business_date,
            calendar,
            settings.returns_overdue_business_days,
        ),
    )
    acks = acks_overdue(sent_files(engine, business_date), now, settings.ack_deadline_minutes)
    stated, first_day = _statements(engine)
    missing = missing_statements(stated, first_day, business_date, calendar)
    refunds, outstanding = _refunds(engine, business_date, calendar)
    waiting = waiting_instructions(engine, business_date, now, calendar)
    entries: dict[str, list[dict[str, Any]]] = {
        "not_at_post_office": waiting,
        "quarantined_files": [q.to_dict() for q in quarantined],
        "return_exceptions": exceptions,
        "overdue_returns": [o.to_dict() for o in overdue],
        "acks_overdue": [a.to_dict() for a in acks],
        "relv_missing": [
            {"reference": reference("RM", d.isoformat()), "day": d.isoformat()} for d in missing
        ],
        "refunds_owed": refunds,
    }
    done = handlings(engine)
    for category, listed in entries.items():
        for entry in listed:
            handling = done.get(entry["reference"])
            if category == "return_exceptions" and not entry["handled"]:
                handling = None
            entry["handled"] = handling.to_dict() if handling else None

    def size(category: str, entry: dict[str, Any]) -> int:  # instructions for two categories, else 1
        return int(entry["count"]) if category in ("not_at_post_office", "overdue_returns") else 1

    counts, handled_counts, document_lists = {}, {}, {}
    for category in CATEGORIES:
        still_open = [e for e in entries[category] if e["handled"] is None]
        closed = [e for e in entries[category] if e["handled"] is not None]
        counts[category] = sum(size(category, e) for e in still_open)
        handled_counts[category] = sum(size(category, e) for e in closed)
        limit = len(entries[category]) if shown is None else shown
        document_lists[category] = still_open[:limit] + ([] if open_only else closed[:limit])
    counts["return_exceptions"], handled_counts["return_exceptions"] = open_exceptions, handled_exceptions
    return {
        "business_date": business_date.isoformat(),
        "as_of": now.astimezone(UTC).isoformat(),
        "rules": {
            "ack_deadline_minutes": settings.ack_deadline_minutes,
            "returns_overdue_business_days": settings.returns_overdue_business_days,
            "window": [
                (calendar.previous_business_day(business_date) + timedelta(days=1)).isoformat(),
                business_date.isoformat(),
            ],
        },
        "empty": not any(counts.values()),
        "open_only": open_only,
        "counts": counts,
        "handled_counts": handled_counts,
        **document_lists,
        "refunds_outstanding": outstanding,
    }


def listed_references(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every entry of a list (made with ``shown=None``) by its reference: (category, entry)."""
    return {entry["reference"]: (category, entry) for category in CATEGORIES for entry in document[category]}


# --- text ---------------------------------------------------------------------------------------------------


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(ALGIERS).strftime("%Y-%m-%d %H:%M")


def _more(shown: Sequence[Any], total: int) -> list[str]:
    return (
        [f"    ... and {total - len(shown)} more (--json lists up to {SHOWN_PER_CATEGORY})"]
        if total > len(shown)
        else []
    )


def entry_lines(category: str, entry: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """One entry as a person reads it: its reference first, then what it is (and its reasons)."""
    ref = entry["reference"]
    if category == "not_at_post_office":
        return [
            f"    {ref} night {entry['night']}: {entry['count']} instruction(s), {_money(entry['amount'])}: "
            f"{entry['why']}"
        ]
    if category == "quarantined_files":
        stored = "" if entry["stored_as"] == entry["name"] else f" (kept as {entry['stored_as']})"
        lines = [
            f"    {ref} {entry['folder']} {entry['name']}{stored}, quarantined by the run of "
            f"{entry['business_date']} at {_local(entry['quarantined_at'])}"
        ]
        lines += [f"      {reason}" for reason in entry["reasons"][:5]]
        if len(entry["reasons"]) > 5:
            lines.append(f"      ... {len(entry['reasons']) - 5} more reason(s)")
        return lines
    if category == "return_exceptions":
        return [
            f"    {ref} {entry['file']} line {entry['line']} {entry['instruction_reference']}: "
            f"{entry['kind']} — {entry['detail']}"
        ]
    if category == "overdue_returns":
        return [
            f"    {ref} {entry['file'] or '(no file)'} settlement {entry['settlement_date']}, due by "
            f"{entry['due_by']}: {entry['count']} instruction(s), {_money(entry['amount'])}; e.g. "
            f"{', '.join(entry['references'][:3])}"
        ]
    if category == "acks_overdue":
        return [
            f"    {ref} {entry['name']} sent {_local(entry['sent_at'])}, "
            f"waiting {entry['waiting_minutes']} min"
        ]
    if category == "relv_missing":
        return [f"    {ref} no RELV statement for {entry['day']}"]
    return [
        f"    {ref} {entry['kind']} {entry['item_number']} subscriber {entry['subscriber_number']}: "
        f"{_money(entry['amount'])} paid {entry['channel']} {entry['paid_elsewhere_on']}, "
        f"debited {entry['debited_on']} ({entry['debit_reference']})"
    ]


TITLES = {
    "not_at_post_office": "not at the post office ({n} instructions)",
    "quarantined_files": "quarantined files ({n})",
    "return_exceptions": "return exceptions ({n})",
    "overdue_returns": "overdue returns ({n} instructions without a final status {days} business days after "
    "settlement)",
    "acks_overdue": "ACK overdue ({n} PRLV file(s) without ACK {minutes} minutes after sending)",
    "relv_missing": "RELV missing ({n} business day(s) without a statement)",
    "refunds_owed": "refunds owed, new ({n})",
}


def exception_lines(document: dict[str, Any]) -> list[str]:
    """The list as a person reads it (times in Africa/Algiers): the open exceptions by category, each
    with its reference, then the handled ones with who handled them and why."""
    counts, handled_counts = document["counts"], document["handled_counts"]
    head = (
        f"exceptions for business date {document['business_date']} "
        f"(as of {_local(document['as_of'])} Algiers)"
    )
    handled_total = sum(handled_counts.values())
    handled_note = f" ({handled_total} handled)" if handled_total and not document["open_only"] else ""
    if document["empty"]:
        lines = [f"{head}: none open{handled_note}" if handled_note else f"{head}: none"]
    else:
        lines = [
            f"{head}: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v)
            + handled_note
        ]
    rules = document["rules"]
    handled: list[tuple[str, dict[str, Any]]] = []
    for category in CATEGORIES:
        still_open = [e for e in document[category] if e["handled"] is None]
        handled += [(category, e) for e in document[category] if e["handled"] is not None]
        if not counts[category]:
            continue
        title = TITLES[category].format(
            n=counts[category],
            days=rules["returns_overdue_business_days"],
            minutes=rules["ack_deadline_minutes"],
        )
        lines.append(f"  {title}:")
        for entry in still_open:
            lines += entry_lines(category, entry, document)
        if category in ("quarantined_files", "return_exceptions"):
            lines += _more(still_open, counts[category])
    outstanding = document["refunds_outstanding"]
    if outstanding["count"]:
        lines.append(
            f"  (refunds still owed in all: {outstanding['count']}, {_money(outstanding['amount'])}; "
            "`epay refunds --open` lists them)"
        )
    if handled:
        lines.append(f"  handled ({len(handled)}):")
        for category, entry in handled:
            lines += entry_lines(category, entry, document)[:1]
            mark = entry["handled"]
            transfer = f", transfer {mark['transfer_reference']}" if mark.get("transfer_reference") else ""
            lines.append(
                f"      {mark['action']} by {mark['by']} on {_local(mark['at'])}{transfer}: {mark['note']}"
            )
    return lines
