"""The nightly build: select what is due, pass the quality gate, write the PRLV files and register them
together with the instructions' new state in one transaction.

Re-running the build for a day that already has its batch changes nothing and returns the same files,
byte for byte (re-written from the ledger if the copy on disk went missing). Files are written to a
staging folder inside the transaction and revealed under their final name only after the commit, never
over a file with other bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine, insert, select

from epay.calendar import BusinessCalendar
from epay.faults import fault_point
from epay.formats import build_file_name, write_file
from epay.ledger import audit
from epay.ledger.bulk import execute, fetch_frame, insert_frame, now_utc, scalar
from epay.ledger.db import lock_ledger, transaction
from epay.ledger.models import Batch, ExchangeFile
from epay.outbound.cutoff import build_window_problem
from epay.outbound.expiry import expire_stale_files
from epay.outbound.references import references
from epay.outbound.selection import ITEM_COLUMNS, MANDATE_COLUMNS, RetryPolicy, select_due
from epay.settings import Settings

if TYPE_CHECKING:
    from epay.quality.outbound_gate import GateResult

ACTOR = "outbound.build"
LIVE_STATES = ("built", "held", "sent", "presented")  # held: a rejected file's, waiting for release
_TEXT, _INT, _DAY = pa.string(), pa.int64(), pa.date32()
ITEM_TYPES = dict(
    zip(ITEM_COLUMNS, (_INT, _TEXT, _TEXT, _TEXT, _TEXT, _INT, _DAY, _INT, _TEXT, _DAY), strict=True)
)
MANDATE_TYPES = dict(zip(MANDATE_COLUMNS, (_TEXT, _TEXT, _TEXT, _INT, _DAY, _DAY, _TEXT), strict=True))
MAX_SEQUENCE = 99


class BuildError(Exception):
    """The build cannot run for this date (the message says why); nothing was changed."""


class GateRefusedError(BuildError):
    """The quality gate refused the batch: no file was written, nothing was registered."""

    def __init__(self, message: str, report: Path) -> None:
        super().__init__(f"{message}\nfull report: {report}")
        self.report = report


class BuildWindowClosedError(BuildError):
    """The night's build window is closed by the clock (not begun, or past the cut-off): nothing built."""


class FileIncidentError(BuildError):
    """A file with this name exists with other bytes: never overwritten, a person must look."""


@dataclass(frozen=True)
class BuildPolicy:
    max_details_per_file: int = 999_999
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    day_max_count: int | None = None
    day_max_amount: int | None = None  # centimes

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildPolicy:
        return cls(
            max_details_per_file=settings.max_details_per_file,
            retry=RetryPolicy(settings.retry_after_business_days, settings.max_tries),
            day_max_count=settings.day_max_count,
            day_max_amount=settings.day_max_amount,
        )


@dataclass(frozen=True)
class BuiltFile:
    name: str
    path: Path
    sha256: str
    size: int
    detail_count: int
    amount: int
    state: str


@dataclass(frozen=True)
class BuildResult:
    business_date: date
    settlement_date: date
    batch_number: int
    batch_state: str
    instruction_count: int
    amount: int
    files: tuple[BuiltFile, ...]
    held: dict[str, int]  # rows held back by the gate, by reason
    excluded: dict[str, int]  # due but not selected, by reason
    stopped: int  # items whose tries ran out tonight
    created: bool  # False: the day's batch already existed and was returned as it is

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["business_date"] = self.business_date.isoformat()
        out["settlement_date"] = self.settlement_date.isoformat()
        out["files"] = [{**asdict(f), "path": str(f.path)} for f in self.files]
        return out


def build_outbound(
    engine: Engine,
    settings: Settings,
    business_date: date,
    calendar: BusinessCalendar,
    policy: BuildPolicy | None = None,
) -> BuildResult:
    """Build (or return, when it exists) the day's batch and its PRLV files."""
    policy = policy or BuildPolicy.from_settings(settings)
    _check_day(business_date, calendar)
    settlement_date = calendar.next_business_day(business_date)
    now = settings.now()
    closed = build_window_problem(
        business_date, now, calendar, timedelta(minutes=settings.cutoff_margin_minutes)
    )
    staged: list[tuple[Path, Path]] = []
    staging_dir = settings.outbound_dir(business_date) / ".staging" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with transaction(engine) as connection:
            lock_ledger(connection)
            existing = _batch_of(connection, business_date)
            if existing is None and closed is not None:
                raise BuildWindowClosedError(closed)
            if closed is None:  # files that missed their cut-off unsent: re-filed tonight, never sent late
                expire_stale_files(connection, now, calendar, business_date, ACTOR)
            if existing is None:
                result = _build_new(
                    connection,
                    settings,
                    business_date,
                    settlement_date,
                    calendar,
                    policy,
                    staged,
                    staging_dir,
                )
                batch = _batch_of(connection, business_date)
                assert batch is not None
                refiled = _pack_unfiled(
                    connection, settings, calendar, business_date, settlement_date, batch, staged, staging_dir
                )
                result = dataclasses.replace(result, files=result.files + refiled)
            else:
                if closed is None:  # a re-run past the cut-off returns the batch as built, re-files nothing
                    _pack_unfiled(
                        connection,
                        settings,
                        calendar,
                        business_date,
                        settlement_date,
                        existing,
                        staged,
                        staging_dir,
                    )
                result = _existing_result(connection, settings, existing, created=False)
            fault_point("build.after_write")
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)  # nothing was registered: nothing may stay
        raise
    fault_point("build.after_register")
    for staging, final in staged:
        reveal(staging, final)
        fault_point("build.after_reveal")
    shutil.rmtree(staging_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # only when empty: another build may be staging there
        staging_dir.parent.rmdir()
    if not result.created:
        _ensure_on_disk(engine, settings, result)
    return result


def existing_batch(engine: Engine, business_date: date) -> Batch | None:
    with engine.connect() as connection:
        return _batch_of(connection, business_date)


def _batch_of(connection: Connection, business_date: date) -> Batch | None:
    row = connection.execute(
        select(Batch.__table__).where(Batch.business_date == business_date).order_by(Batch.number)
    ).first()
    return None if row is None else Batch(**row._mapping)


def _load_due(connection: Connection, business_date: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    live = ", ".join(f"'{s}'" for s in LIVE_STATES)
    items = fetch_frame(
        connection,
        "SELECT b.id, b.kind, b.number, b.subscriber_number, s.name, b.amount, b.due_date, b.tries, "
        "b.last_reason, b.last_reason_on FROM billing_item b "
        "LEFT JOIN subscriber s ON s.number = b.subscriber_number "
        "WHERE b.state = 'due' AND b.due_date <= ? AND NOT EXISTS "
        f"(SELECT 1 FROM instruction i WHERE i.item_id = b.id AND i.state IN ({live}))",
        (business_date,),
        ITEM_COLUMNS,
        dates=("due_date", "last_reason_on"),
        types=ITEM_TYPES,
    )
    mandates = fetch_frame(
        connection,
        f"SELECT {', '.join(MANDATE_COLUMNS)} FROM mandate",
        (),
        MANDATE_COLUMNS,
        dates=("effective_date", "revoked_from"),
        types=MANDATE_TYPES,
    )
    return items, mandates


@dataclass(frozen=True)
class Plan:
    """What a build would do for a day, before anything is written."""

    business_date: date
    settlement_date: date
    batch_number: int
    excluded: pd.DataFrame  # due but not selected: item_id, reason, detail
    exhausted: np.ndarray  # item ids whose tries ran out
    gate: GateResult


def plan_batch(
    connection: Connection,
    settings: Settings,
    business_date: date,
    calendar: BusinessCalendar,
    policy: BuildPolicy,
    batch_number: int = 1,
) -> Plan:
    """Select what is due and pass it through the quality gate; writes only the gate's report."""
    from epay.quality.outbound_gate import gate_batch  # imports Great Expectations: only when needed

    settlement_date = calendar.next_business_day(business_date)
    # the loaded frames live only inside select_due: a million rows are not kept twice
    selection = select_due(
        *_load_due(connection, business_date), business_date, calendar, policy.retry, settles=settlement_date
    )
    chosen, excluded, exhausted = selection.selected, selection.excluded, selection.exhausted
    del selection
    candidates = pd.DataFrame(
        {
            "reference": references(business_date, batch_number, len(chosen)).to_pandas(),
            "operation": chosen["kind"],
            "rip": chosen["rip"],
            "debtor_name": chosen["subscriber_name"].fillna(""),
            "amount": chosen["amount"].astype("int64"),
            "ceiling": chosen["ceiling"].astype("int64"),
            "mandate_reference": chosen["mandate_reference"],
            "item_number": chosen["number"],
            "due_date": chosen["due_date"].dt.date,
            "item_id": chosen["item_id"],
            "try_number": chosen["tries"].astype("int64") + 1,
        }
    )
    del chosen
    gate = gate_batch(
        candidates, business_date=business_date, settlement_date=settlement_date, calendar=calendar
    )
    del candidates
    write_gate_report(settings, business_date, gate.to_dict())
    return Plan(business_date, settlement_date, batch_number, excluded, exhausted, gate)


def preview(
    engine: Engine, settings: Settings, business_date: date, calendar: BusinessCalendar, policy: BuildPolicy
) -> Plan:
    """The validate step: plan the day's batch without registering anything."""
    _check_day(business_date, calendar)
    with engine.connect() as connection:
        plan = plan_batch(connection, settings, business_date, calendar, policy)
        connection.rollback()
    return plan


def _check_day(business_date: date, calendar: BusinessCalendar) -> None:
    if not calendar.is_business_day(business_date):
        raise BuildError(
            f"{business_date} is not a business day: PRLV files are built on business days only "
            f"(next one: {calendar.next_business_day(business_date)})"
        )


def _build_new(
    connection: Connection,
    settings: Settings,
    business_date: date,
    settlement_date: date,
    calendar: BusinessCalendar,
    policy: BuildPolicy,
    staged: list[tuple[Path, Path]],
    staging_dir: Path,
) -> BuildResult:
    plan = plan_batch(connection, settings, business_date, calendar, policy)
    gate, batch_number = plan.gate, plan.batch_number
    if not gate.passed:
        report = settings.reports_dir / business_date.isoformat() / f"gate-{business_date.isoformat()}.json"
        raise GateRefusedError(
            f"quality gate refused the batch of {business_date}: {gate.failure_message()}", report
        )
    accepted = gate.accepted.reset_index(drop=True)
    count, amount = len(accepted), int(accepted["amount"].sum())
    over = _over_day_ceilings(count, amount, policy)
    state = "held" if over else "released"
    now = now_utc()
    batch_id = connection.execute(
        insert(Batch).values(
            business_date=business_date,
            number=batch_number,
            settlement_date=settlement_date,
            state=state,
            instruction_count=count,
            amount=amount,
            held_count=len(gate.held),
            hold_reason=over,
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    audit.record(
        connection,
        "batch",
        f"{business_date}/{batch_number}",
        state,
        actor=ACTOR,
        reason=over,
        business_date=business_date,
    )
    file_state = "held" if over else "built"
    accepted["file_index"] = np.arange(count) // policy.max_details_per_file
    accepted["line"] = np.arange(count) % policy.max_details_per_file + 1
    files = _write_files(
        staging_dir,
        connection,
        settings,
        calendar,
        accepted,
        business_date,
        settlement_date,
        batch_id,
        file_state,
        staged,
    )
    accepted["file_id"] = [files[i][1] for i in accepted["file_index"]]
    _register_instructions(connection, accepted, business_date, settlement_date, batch_id, now)
    _record_exclusions(connection, plan.excluded, gate.held, business_date)
    stopped = _stop_exhausted(connection, plan.exhausted, business_date)
    return BuildResult(
        business_date=business_date,
        settlement_date=settlement_date,
        batch_number=batch_number,
        batch_state=state,
        instruction_count=count,
        amount=amount,
        files=tuple(f for f, _ in files),
        held=dict(Counter(gate.held["reason"].tolist())) if len(gate.held) else {},
        excluded=dict(Counter(plan.excluded["reason"].tolist())),
        stopped=stopped,
        created=True,
    )


def _pack_unfiled(
    connection: Connection,
    settings: Settings,
    calendar: BusinessCalendar,
    created: date,
    settles: date,
    batch: Batch,
    staged: list[tuple[Path, Path]],
    staging_dir: Path,
) -> tuple[BuiltFile, ...]:
    """Instructions taken out of a file rejected DT01, expired unsent, or released after another
    rejection go into new files of this build: the same references (spec §3), the new settlement date.
    Only a build inside its window calls this, so the new file can still make its cut-off."""
    rows = instruction_rows(connection, "state = 'built' AND file_id IS NULL ORDER BY reference", (), ("id",))
    if rows.empty:
        return ()
    per_file = settings.max_details_per_file
    rows["file_index"] = np.arange(len(rows)) // per_file
    rows["line"] = np.arange(len(rows)) % per_file + 1
    state = "held" if batch.state == "held" else "built"
    files = _write_files(
        staging_dir, connection, settings, calendar, rows, created, settles, batch.id, state, staged
    )
    rows["file_id"] = [files[i][1] for i in rows["file_index"]]
    execute(
        connection,
        "CREATE TEMPORARY TABLE IF NOT EXISTS refile (id BIGINT PRIMARY KEY, file_id BIGINT, line BIGINT)",
    )
    execute(connection, "DELETE FROM refile")
    insert_frame(connection, "refile", rows[["id", "file_id", "line"]].astype("int64"))
    audit.record_many(
        connection,
        "instruction",
        "i.reference",
        "instruction i JOIN refile r ON r.id = i.id",
        "1 = 1",
        (),
        "built",
        actor=ACTOR,
        from_state="built",
        reason="into a new file",
        business_date=created,
        file_sql="r.file_id",
    )
    execute(
        connection,
        "UPDATE instruction SET file_id = (SELECT r.file_id FROM refile r WHERE r.id = instruction.id), "
        "line = (SELECT r.line FROM refile r WHERE r.id = instruction.id), settlement_date = ?, "
        "updated_at = ? WHERE id IN (SELECT id FROM refile)",
        (settles, now_utc()),
    )
    execute(connection, "DROP TABLE refile")
    return tuple(f for f, _ in files)


FILE_COLUMNS = (
    "reference",
    "operation",
    "rip",
    "debtor_name",
    "amount",
    "mandate_reference",
    "item_number",
    "due_date",
)


def instruction_rows(
    connection: Connection, where: str, params: tuple[Any, ...], extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Instructions with the columns a PRLV detail is written from (plus ``extra``)."""
    columns = (*FILE_COLUMNS, *extra)
    return fetch_frame(
        connection,
        f"SELECT {', '.join(columns)} FROM instruction WHERE {where}",
        params,
        columns,
        dates=("due_date",),
    )


def _over_day_ceilings(count: int, amount: int, policy: BuildPolicy) -> str | None:
    reasons = []
    if policy.day_max_count is not None and count > policy.day_max_count:
        reasons.append(f"{count} instructions > day ceiling {policy.day_max_count}")
    if policy.day_max_amount is not None and amount > policy.day_max_amount:
        reasons.append(f"amount {amount} centimes > day ceiling {policy.day_max_amount}")
    return "; ".join(reasons) or None


def _prlv_table(rows: pd.DataFrame) -> pa.Table:
    """The PRLV detail columns, straight from the frame's Arrow-backed columns (no Python objects)."""

    def text(column: str) -> pa.Array:
        return pa.array(rows[column], type=pa.string(), from_pandas=True)

    return pa.table(
        {
            "operation": text("operation"),
            "debtor_rip": text("rip"),
            "debtor_name": text("debtor_name"),
            "amount": pa.array(rows["amount"].to_numpy(dtype=np.int64), pa.int64()),
            "end_to_end_reference": text("reference"),
            "mandate_reference": text("mandate_reference"),
            "invoice_number": text("item_number"),
            "due_date": pa.array(pd.to_datetime(rows["due_date"]).to_numpy(dtype="datetime64[D]")),
        }
    )


def _header(settings: Settings, created: date, settles: date, sequence: int) -> dict[str, Any]:
    return {
        "creditor_id": int(settings.creditor_id),
        "creation_date": created,
        "settlement_date": settles,
        "sequence": sequence,
        "creditor_rip": settings.creditor_rip,
        "creditor_name": settings.creditor_name,
    }


def _write_files(
    staging_dir: Path,
    connection: Connection,
    settings: Settings,
    calendar: BusinessCalendar,
    accepted: pd.DataFrame,
    created: date,
    settles: date,
    batch_id: int,
    state: str,
    staged: list[tuple[Path, Path]],
) -> list[tuple[BuiltFile, int]]:
    last = scalar(
        connection,
        "SELECT max(sequence) FROM exchange_file WHERE direction = 'out' AND kind = 'PRLV' "
        "AND business_date = ?",
        (created,),
    )
    folder = settings.outbound_dir(created)
    staging_dir.mkdir(parents=True, exist_ok=True)
    out: list[tuple[BuiltFile, int]] = []
    now = now_utc()
    for position, (_, rows) in enumerate(accepted.groupby("file_index", sort=True)):
        sequence = int(last or 0) + position + 1
        if sequence > MAX_SEQUENCE:
            raise BuildError(f"more than {MAX_SEQUENCE} PRLV files on {created}: the spec's sequence is full")
        name = build_file_name("PRLV", settings.creditor_id, created, sequence)
        staging = staging_dir / name
        written = write_file(
            staging,
            "PRLV",
            _header(settings, created, settles, sequence),
            _prlv_table(rows),
            calendar=calendar,
            name=name,
        )
        final = folder / name
        built = BuiltFile(
            name=name,
            path=final,
            sha256=sha256_of(staging),
            size=written.size,
            detail_count=written.detail_count,
            amount=int(rows["amount"].sum()),
            state=state,
        )
        file_id = connection.execute(
            insert(ExchangeFile).values(
                direction="out",
                name=name,
                kind="PRLV",
                business_date=created,
                sequence=sequence,
                settlement_date=settles,
                path=str(final.relative_to(settings.home)),
                sha256=built.sha256,
                size=built.size,
                detail_count=built.detail_count,
                amount=built.amount,
                state=state,
                batch_id=batch_id,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        audit.record(connection, "file", name, state, actor=ACTOR, business_date=created)
        staged.append((staging, final))
        out.append((built, int(file_id)))
    return out


def _register_instructions(
    connection: Connection,
    accepted: pd.DataFrame,
    business_date: date,
    settlement_date: date,
    batch_id: int,
    now: Any,
) -> None:
    frame = pd.DataFrame(
        {
            "reference": accepted["reference"],
            "item_id": accepted["item_id"].astype("int64"),
            "try_number": accepted["try_number"].astype("int64"),
            "operation": accepted["operation"],
            "amount": accepted["amount"].astype("int64"),
            "mandate_reference": accepted["mandate_reference"],
            "rip": accepted["rip"],
            "debtor_name": accepted["debtor_name"],
            "item_number": accepted["item_number"],
            "due_date": accepted["due_date"],
            "business_date": business_date,
            "settlement_date": settlement_date,
            "batch_id": batch_id,
            "file_id": accepted["file_id"].astype("int64"),
            "line": accepted["line"].astype("int64"),
            "state": "built",
            "updated_at": pd.Timestamp(now),
        }
    )
    insert_frame(connection, "instruction", frame)
    file_ids = sorted(int(i) for i in accepted["file_id"].unique())
    for file_id in file_ids:  # one statement per file, on its index
        audit.record_many(
            connection,
            "instruction",
            "reference",
            "instruction",
            "file_id = ?",
            (file_id,),
            "built",
            actor=ACTOR,
            business_date=business_date,
            file_id=file_id,
        )
    for file_id in file_ids:  # the item's key is on the instruction: no join with billing_item
        audit.record_many(
            connection,
            "item",
            "operation || ':' || item_number",
            "instruction",
            "file_id = ?",
            (file_id,),
            "in_collection",
            actor=ACTOR,
            from_state="due",
            business_date=business_date,
            file_id=file_id,
        )
    if connection.dialect.name == "postgresql":
        execute(connection, "ANALYZE instruction")  # a million fresh rows: let the planner know
    changed = execute(
        connection,
        "UPDATE billing_item SET state = 'in_collection', tries = tries + 1, updated_at = ? "
        "WHERE state = 'due' AND id IN (SELECT item_id FROM instruction WHERE batch_id = ?)",
        (now, batch_id),
    )
    if changed != len(frame):  # an item changed under us: register nothing rather than debit it
        raise BuildError(
            f"{len(frame) - changed} selected item(s) were no longer due when registered; nothing was "
            "built, run the build again"
        )


def _record_exclusions(
    connection: Connection, excluded: pd.DataFrame, held: pd.DataFrame, business_date: date
) -> None:
    held_rows = pd.DataFrame(
        {
            "item_id": held["item_id"].astype("int64") if len(held) else pd.Series([], dtype="int64"),
            "reason": held["reason"] if len(held) else pd.Series([], dtype=object),
            "detail": held["detail"] if len(held) else pd.Series([], dtype=object),
        }
    )
    rows = pd.concat([excluded, held_rows], ignore_index=True)
    rows["business_date"] = business_date
    rows["detail"] = rows["detail"].astype(object).where(rows["detail"].notna(), None)
    insert_frame(connection, "exclusion", rows[["business_date", "item_id", "reason", "detail"]])


def _stop_exhausted(connection: Connection, item_ids: np.ndarray, business_date: date) -> int:
    if len(item_ids) == 0:
        return 0
    ids = pd.DataFrame({"id": item_ids.astype(np.int64)})
    execute(connection, "CREATE TEMPORARY TABLE IF NOT EXISTS stop_ids (id BIGINT PRIMARY KEY)")
    execute(connection, "DELETE FROM stop_ids")
    insert_frame(connection, "stop_ids", ids)
    audit.record_many(
        connection,
        "item",
        "kind || ':' || number",
        "billing_item",
        "id IN (SELECT id FROM stop_ids)",
        (),
        "stopped",
        actor=ACTOR,
        from_state="due",
        reason="tries_exhausted",
        business_date=business_date,
    )
    changed = execute(
        connection,
        "UPDATE billing_item SET state = 'stopped', updated_at = ? WHERE id IN (SELECT id FROM stop_ids)",
        (now_utc(),),
    )
    execute(connection, "DROP TABLE stop_ids")
    return changed


def _existing_result(
    connection: Connection, settings: Settings, batch: Batch, *, created: bool
) -> BuildResult:
    files = connection.execute(
        select(ExchangeFile.__table__)
        .where(ExchangeFile.batch_id == batch.id, ExchangeFile.state != "rejected")
        .order_by(ExchangeFile.sequence)
    ).mappings()
    built = tuple(
        BuiltFile(
            name=f["name"],
            path=settings.home / f["path"],
            sha256=f["sha256"],
            size=f["size"],
            detail_count=f["detail_count"],
            amount=f["amount"],
            state=f["state"],
        )
        for f in files
    )
    reasons = connection.execute(select(Batch.business_date).where(Batch.id == batch.id)).scalar_one()
    excluded = fetch_frame(
        connection,
        "SELECT reason, count(*) FROM exclusion WHERE business_date = ? GROUP BY reason",
        (reasons,),
        ("reason", "count"),
    )
    counts = {str(r): int(c) for r, c in zip(excluded["reason"], excluded["count"], strict=True)}
    gate_reasons = ("name_to_correct", "rip_invalid", "above_ceiling")
    return BuildResult(
        business_date=batch.business_date,
        settlement_date=batch.settlement_date,
        batch_number=batch.number,
        batch_state=batch.state,
        instruction_count=batch.instruction_count,
        amount=batch.amount,
        files=built,
        held={r: c for r, c in counts.items() if r in gate_reasons},
        excluded={r: c for r, c in counts.items() if r not in gate_reasons},
        stopped=0,
        created=created,
    )


def _ensure_on_disk(engine: Engine, settings: Settings, result: BuildResult) -> None:
    """A registered file missing from disk is re-written from the ledger and must hash the same."""
    for built in result.files:
        if built.path.exists():
            if sha256_of(built.path) != built.sha256:
                raise FileIncidentError(f"{built.path} does not hold the bytes registered for {built.name}")
            continue
        from epay.outbound.rewrite import rewrite_file

        rewrite_file(engine, settings, built.name, built.path, built.sha256)


def reveal(staging: Path, final: Path) -> None:
    """Give a staged file its final name, never replacing a file with other bytes."""
    try:
        os.link(staging, final)
    except FileExistsError:
        if sha256_of(final) != sha256_of(staging):
            raise FileIncidentError(
                f"{final} already exists with other bytes than the file registered under that name"
            ) from None
    staging.unlink()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_gate_report(settings: Settings, business_date: date, report: dict[str, Any]) -> Path:
    folder = settings.reports_dir / business_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gate-{business_date.isoformat()}.json"
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
