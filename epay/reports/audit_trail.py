"""``epay audit``: the whole story of one instruction (``--reference``) or of one exchange file
(``--file``), from the append-only ``audit_event`` trail and the ledger's current rows.

Each event names the file it came with (``audit_event.file_id``: the PRLV built or sent, the PRLV an ACK
answered, the RETR). Events written before that column existed are matched the way they were written: a
file's state change (send, ACK) or registration (RETR) is recorded in the same transaction as, and just
before, the changes it caused to instructions, and the writers that apply inbound files hold the ledger's
lock, so their file is the latest file event of the same step before them (by event id).

A RIP only ever appears masked; subscriber and debtor names are shown. Times are UTC in the JSON
document and Africa/Algiers in the text.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from epay.alerts import mask_rips
from epay.formats.rip import mask_rip
from epay.ledger.models import (
    AuditEvent,
    Batch,
    BillingExtract,
    BillingItem,
    ExchangeFile,
    ExternalPayment,
    Instruction,
    Mandate,
    ReturnException,
    Subscriber,
)
from epay.reports.exceptions import quarantined_files
from epay.settings import ALGIERS

MAX_NAME = 120
EXCEPTIONS_SHOWN = 50


class AuditNotFoundError(LookupError):
    """Nothing in the ledger (nor in quarantine) about that reference or file."""


def check_file_name(name: str) -> str:
    """``name`` if it is a bare file name; ValueError for anything that could be a path (a separator,
    ``.``/``..``, a drive, control characters), since a name from outside is never joined to a folder."""
    problem = None
    if not name or len(name) > MAX_NAME:
        problem = f"a file name is 1 to {MAX_NAME} characters"
    elif any(c in name for c in "/\\:") or name in (".", "..") or name.startswith("~"):
        problem = "give the file's bare name (e.g. PRLV_100237_20261125_01.txt), not a path"
    elif not name.isprintable() or not name.isascii() or name != name.strip():
        problem = "a file name of the contract is printable ASCII without surrounding spaces"
    if problem:
        raise ValueError(f"{name!r}: {problem}")
    return name


# --- small readers ----------------------------------------------------------------------------------------


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat()


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _mask(rip: str | None) -> str | None:
    return None if rip is None else mask_rip(rip)


def _one(connection: Connection, query: Any) -> dict[str, Any] | None:
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def _events(connection: Connection, entity: str, key: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(AuditEvent.__table__, ExchangeFile.name.label("file_name"))
        .outerjoin(ExchangeFile, ExchangeFile.id == AuditEvent.file_id)
        .where(AuditEvent.entity == entity, AuditEvent.entity_key == key)
        .order_by(AuditEvent.id)
    ).mappings()
    return [
        {
            "id": int(r["id"]),
            "at": _utc(r["at"]),
            "entity": r["entity"],
            "key": r["entity_key"],
            "from_state": r["from_state"],
            "to_state": r["to_state"],
            "reason": None if r["reason"] is None else mask_rips(r["reason"]),
            "actor": r["actor"],
            "business_date": _iso(r["business_date"]),
            "file_name": r["file_name"],
        }
        for r in rows
    ]


def _file_before(connection: Connection, event_id: int, actor: str) -> str | None:
    """The file whose change made instruction event ``event_id``: the latest file event before it of
    the same step (send, ACK), or for a return the latest RETR registered before it."""
    query = select(AuditEvent.entity_key).where(AuditEvent.entity == "file", AuditEvent.id < event_id)
    if actor == "inbound.retr":
        query = query.where(
            AuditEvent.from_state.is_(None), func.substr(AuditEvent.entity_key, 1, 5) == "RETR_"
        )
    else:
        query = query.where(AuditEvent.actor == actor)
    found = connection.execute(query.order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
    return None if found is None else str(found)


def _file_row(connection: Connection, direction: str, name: str) -> dict[str, Any] | None:
    return _one(
        connection,
        select(ExchangeFile.__table__).where(ExchangeFile.direction == direction, ExchangeFile.name == name),
    )


def _file_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "direction": row["direction"],
        "kind": row["kind"],
        "state": row["state"],
        "reason": row["reason"],
        "business_date": _iso(row["business_date"]),
        "settlement_date": _iso(row["settlement_date"]),
        "sha256": row["sha256"],
        "size": int(row["size"]),
        "detail_count": int(row["detail_count"]),
        "amount": int(row["amount"]),
        "registered_at": _utc(row["created_at"]),
        "updated_at": _utc(row["updated_at"]),
        "path": row["path"],  # relative to the data folder
    }


def _ack_of(connection: Connection, prlv_name: str) -> dict[str, Any] | None:
    """The ACK file received for ``prlv_name`` and the verdict it carried, None before it came."""
    ack = _file_row(connection, "in", f"ACK_{prlv_name}")
    verdict = _one(
        connection,
        select(AuditEvent.at, AuditEvent.to_state, AuditEvent.reason)
        .where(
            AuditEvent.entity == "file",
            AuditEvent.entity_key == prlv_name,
            AuditEvent.to_state.in_(("accepted", "rejected")),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1),
    )
    if ack is None and verdict is None:
        return None
    return {
        "name": f"ACK_{prlv_name}",
        "received": ack is not None,
        "registered_at": None if ack is None else _utc(ack["created_at"]),
        "sha256": None if ack is None else ack["sha256"],
        "verdict": None if verdict is None else {"accepted": "ACCP", "rejected": "RJCT"}[verdict["to_state"]],
        "reason": None if verdict is None else verdict["reason"],
        "applied_at": None if verdict is None else _utc(verdict["at"]),
    }


# --- one instruction ----------------------------------------------------------------------------------------


def instruction_trail(engine: Engine, reference: str) -> dict[str, Any]:
    """Everything the ledger knows about the instruction ``reference`` (see the module's doc)."""
    with engine.connect() as connection:
        row = _one(connection, select(Instruction.__table__).where(Instruction.reference == reference))
        events = _events(connection, "instruction", reference)
        exceptions = [
            {
                "file": r["name"],
                "line": int(r["line"]),
                "kind": r["kind"],
                "detail": mask_rips(r["detail"]),
                "business_date": _iso(r["business_date"]),
            }
            for r in connection.execute(
                select(
                    ExchangeFile.name,
                    ReturnException.line,
                    ReturnException.kind,
                    ReturnException.detail,
                    ReturnException.business_date,
                )
                .join(ExchangeFile, ExchangeFile.id == ReturnException.file_id)
                .where(ReturnException.reference == reference)
                .order_by(ReturnException.id)
            ).mappings()
        ]
        if row is None and not events and not exceptions:
            raise AuditNotFoundError(
                f"no instruction with reference {reference!r} in the ledger, nor any return"
            )
        for event in events:
            if event["actor"] in ("outbound.send", "inbound.ack", "inbound.retr"):
                event["file"] = event["file_name"] or _file_before(connection, event["id"], event["actor"])
        document: dict[str, Any] = {
            "reference": reference,
            "instruction": None,
            "item": None,
            "subscriber": None,
            "mandate": None,
            "tries": [],
            "files": [],
            "return": None,
            "return_exceptions": exceptions,
            "payments_elsewhere": [],
            "events": events,
        }
        if row is None:  # a reference AP returned that this ledger never sent
            return document
        document["instruction"] = _instruction(connection, row)
        document["files"] = _instruction_files(connection, row, events)
        document["return"] = _return_of(row, events)
        item = _one(connection, select(BillingItem.__table__).where(BillingItem.id == row["item_id"]))
        if item is not None:
            document["item"] = {
                "kind": item["kind"],
                "number": item["number"],
                "subscriber_number": item["subscriber_number"],
                "amount": int(item["amount"]),
                "issued_on": _iso(item["issued_on"]),
                "due_date": _iso(item["due_date"]),
                "state": item["state"],
                "tries": int(item["tries"]),
                "last_reason": item["last_reason"],
                "last_reason_on": _iso(item["last_reason_on"]),
                "paid_by": item["paid_by"],
                "paid_on": _iso(item["paid_on"]),
            }
            subscriber = _one(
                connection, select(Subscriber.__table__).where(Subscriber.number == item["subscriber_number"])
            )
            if subscriber is not None:
                document["subscriber"] = {"number": subscriber["number"], "name": subscriber["name"]}
            document["events"] = sorted(
                events + _events(connection, "item", f"{item['kind']}:{item['number']}"),
                key=lambda e: e["id"],
            )
            document["tries"] = [
                {
                    "reference": t["reference"],
                    "try_number": int(t["try_number"]),
                    "state": t["state"],
                    "reason": t["reason"],
                    "business_date": _iso(t["business_date"]),
                    "settlement_date": _iso(t["settlement_date"]),
                    "status_date": _iso(t["status_date"]),
                }
                for t in connection.execute(
                    select(Instruction.__table__)
                    .where(Instruction.item_id == row["item_id"])
                    .order_by(Instruction.try_number, Instruction.id)
                ).mappings()
            ]
            document["payments_elsewhere"] = [
                {
                    "amount": int(p["amount"]),
                    "paid_on": _iso(p["paid_on"]),
                    "channel": p["channel"],
                    "during_collection": bool(p["during_collection"]),
                    "extract_id": p["extract_id"],
                }
                for p in connection.execute(
                    select(ExternalPayment.__table__)
                    .where(ExternalPayment.item_id == row["item_id"])
                    .order_by(ExternalPayment.id)
                ).mappings()
            ]
        mandate = _one(
            connection, select(Mandate.__table__).where(Mandate.reference == row["mandate_reference"])
        )
        if mandate is not None:
            document["mandate"] = {
                "reference": mandate["reference"],
                "rip": _mask(mandate["rip"]),
                "debtor_name": mandate["debtor_name"],
                "status": mandate["status"],
                "status_reason": mandate["status_reason"],
                "effective_date": _iso(mandate["effective_date"]),
                "revoked_from": _iso(mandate["revoked_from"]),
                "ceiling": int(mandate["ceiling"]),
            }
    return document


def _instruction(connection: Connection, row: dict[str, Any]) -> dict[str, Any]:
    batch = _one(connection, select(Batch.__table__).where(Batch.id == row["batch_id"]))
    return {
        "state": row["state"],
        "reason": row["reason"],
        "try_number": int(row["try_number"]),
        "operation": row["operation"],
        "item_number": row["item_number"],
        "amount": int(row["amount"]),
        "due_date": _iso(row["due_date"]),
        "business_date": _iso(row["business_date"]),
        "settlement_date": _iso(row["settlement_date"]),
        "status_date": _iso(row["status_date"]),
        "transaction_id": row["transaction_id"],
        "mandate_reference": row["mandate_reference"],
        "rip": _mask(row["rip"]),
        "debtor_name": row["debtor_name"],
        "line": None if row["line"] is None else int(row["line"]),
        "batch": None
        if batch is None
        else {
            "business_date": _iso(batch["business_date"]),
            "number": int(batch["number"]),
            "state": batch["state"],
            "released_by": batch["released_by"],
        },
        "updated_at": _utc(row["updated_at"]),
    }


def _instruction_files(
    connection: Connection, row: dict[str, Any], events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each PRLV file the instruction went in (it leaves a file rejected DT01, or released after another
    rejection, for a new one), oldest first, each with its ACK."""
    names: list[str] = []
    for event in events:
        name = event.get("file")
        if name and name.startswith("PRLV_") and name not in names:
            names.append(name)
    current = None
    if row["file_id"] is not None:
        current = _one(connection, select(ExchangeFile.__table__).where(ExchangeFile.id == row["file_id"]))
        if current is not None and current["name"] not in names:
            names.append(current["name"])
    files = []
    for name in names:
        file = _file_row(connection, "out", name)
        if file is None:
            continue
        summary = _file_summary(file)
        summary["current"] = current is not None and current["name"] == name
        summary["line"] = row["line"] if summary["current"] else None
        summary["ack"] = _ack_of(connection, name)
        files.append(summary)
    return files


def _return_of(row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    final = [e for e in events if e["actor"] == "inbound.retr" and e["to_state"] in ("settled", "rejected")]
    if not final:
        return None
    event = final[-1]
    return {
        "file": event.get("file"),
        "applied_at": event["at"],
        "status": "ACSC" if event["to_state"] == "settled" else "RJCT",
        "reason": row["reason"],
        "status_date": _iso(row["status_date"]),
        "transaction_id": row["transaction_id"],
    }


# --- one file ---------------------------------------------------------------------------------------------


def _window_effects(
    connection: Connection, registration: dict[str, Any], kind: str
) -> dict[str, dict[str, int]]:
    """What applying an inbound file changed: the events of its step after its registration and before
    the next file registered (entity -> to_state -> count)."""
    after = registration["id"]
    following = connection.execute(
        select(func.min(AuditEvent.id)).where(
            AuditEvent.id > after, AuditEvent.entity == "file", AuditEvent.from_state.is_(None)
        )
    ).scalar_one_or_none()
    actors = {registration["actor"], f"inbound.{kind.lower()}"}
    query = (
        select(AuditEvent.entity, AuditEvent.to_state, func.count())
        .where(AuditEvent.id > after, AuditEvent.actor.in_(actors), AuditEvent.entity != "file")
        .group_by(AuditEvent.entity, AuditEvent.to_state)
    )
    if following is not None:
        query = query.where(AuditEvent.id < following)
    effects: dict[str, dict[str, int]] = {}
    for entity, to_state, count in connection.execute(query):
        effects.setdefault(str(entity), {})[str(to_state)] = int(count)
    return effects


def _outbound_details(connection: Connection, row: dict[str, Any]) -> dict[str, Any]:
    carried: dict[str, dict[str, int]] = {}
    for state, count, amount in connection.execute(
        select(Instruction.state, func.count(), func.coalesce(func.sum(Instruction.amount), 0))
        .where(Instruction.file_id == row["id"])
        .group_by(Instruction.state)
    ):
        carried[str(state)] = {"count": int(count), "amount": int(amount)}
    batch = _one(connection, select(Batch.__table__).where(Batch.id == row["batch_id"]))
    return {
        "instructions": carried,
        "ack": _ack_of(connection, row["name"]),
        "batch": None
        if batch is None
        else {
            "business_date": _iso(batch["business_date"]),
            "number": int(batch["number"]),
            "state": batch["state"],
            "released_by": batch["released_by"],
        },
    }


def _inbound_details(
    connection: Connection, row: dict[str, Any], events: list[dict[str, Any]]
) -> dict[str, Any]:
    details: dict[str, Any] = {}
    registration = next((e for e in events if e["from_state"] is None), None)
    details["effects"] = (
        {} if registration is None else _window_effects(connection, registration, row["kind"])
    )
    if row["kind"] == "ACK":
        prlv = row["name"].removeprefix("ACK_")
        target = _file_row(connection, "out", prlv)
        details["acknowledges"] = {
            "name": prlv,
            "state": None if target is None else target["state"],
            "reason": None if target is None else target["reason"],
        }
    if row["kind"] == "RETR":
        kinds = Counter(
            str(k)
            for k in connection.execute(
                select(ReturnException.kind).where(ReturnException.file_id == row["id"])
            ).scalars()
        )
        shown = [
            {
                "line": int(r["line"]),
                "reference": r["reference"],
                "kind": r["kind"],
                "detail": mask_rips(r["detail"]),
            }
            for r in connection.execute(
                select(ReturnException.__table__)
                .where(ReturnException.file_id == row["id"])
                .order_by(ReturnException.line)
                .limit(EXCEPTIONS_SHOWN)
            ).mappings()
        ]
        details["return_exceptions"] = {"by_kind": dict(sorted(kinds.items())), "first": shown}
    return details


def file_trail(engine: Engine, name: str, quarantine_dir: Path) -> dict[str, Any]:
    """Everything known about the exchange file ``name`` (a bare name; ValueError for a path): its
    registration, state changes, ACK, what it carried or changed, and quarantine."""
    name = check_file_name(name)
    with engine.connect() as connection:
        rows = [
            dict(r)
            for r in connection.execute(
                select(ExchangeFile.__table__).where(ExchangeFile.name == name).order_by(ExchangeFile.id)
            ).mappings()
        ]
        events = _events(connection, "file", name)
        extract = _one(
            connection,
            select(BillingExtract.__table__).where(BillingExtract.extract_id == name.rsplit(".", 1)[0]),
        )
        files = []
        for row in rows:
            summary = _file_summary(row)
            if row["direction"] == "out":
                summary.update(_outbound_details(connection, row))
            else:
                summary.update(_inbound_details(connection, row, events))
            files.append(summary)
    quarantined = [q.to_dict() for q in quarantined_files(quarantine_dir, name)]
    if extract is not None and not name.startswith("BILL_"):
        extract = None
    if not rows and not events and not quarantined and extract is None:
        raise AuditNotFoundError(f"no file named {name} in the ledger or in quarantine")
    return {
        "name": name,
        "files": files,
        "events": events,
        "quarantine": quarantined,
        "billing_extract": None
        if extract is None
        else {
            "extract_id": extract["extract_id"],
            "extract_date": _iso(extract["extract_date"]),
            "sha256": extract["sha256"],
            "row_count": int(extract["row_count"]),
            "rejected_count": int(extract["rejected_count"]),
            "loaded_at": _utc(extract["loaded_at"]),
        },
    }


# --- text -------------------------------------------------------------------------------------------------


def _money(centimes: int) -> str:
    return f"{centimes // 100:,}.{centimes % 100:02d} DZD".replace(",", " ")


def _local(iso: str | None) -> str:
    if iso is None:
        return "?"
    return datetime.fromisoformat(iso).astimezone(ALGIERS).strftime("%Y-%m-%d %H:%M:%S")


def _sp(value: object) -> str:
    """`` value`` (with a space before it), or nothing when there is no value."""
    return f" {value}" if value else ""


def _event_line(event: dict[str, Any]) -> str:
    change = f"{event['from_state']} → {event['to_state']}" if event["from_state"] else event["to_state"]
    extra = [f"reason {event['reason']}"] if event["reason"] else []
    if event.get("file"):
        extra.append(f"file {event['file']}")
    tail = f" ({', '.join(extra)})" if extra else ""
    who = event["entity"] if event["entity"] != "instruction" else "instr."
    return f"    {_local(event['at'])}  {who:<6} {change}{tail}  [{event['actor']}]"


def instruction_lines(document: dict[str, Any]) -> list[str]:
    """The trail of one instruction as a person reads it (times in Africa/Algiers)."""
    lines = [f"instruction {document['reference']}"]
    instruction = document["instruction"]
    if instruction is None:
        lines.append("  never sent by this ledger: known only from what Algérie Poste returned")
    else:
        i = instruction
        lines.append(
            f"  {i['state']}{_sp(i['reason'])}: {i['operation']} {i['item_number']} "
            f"{_money(i['amount'])}, try {i['try_number']}, built {i['business_date']}, "
            f"settlement {i['settlement_date']}"
            + (f", status {i['status_date']} transaction {i['transaction_id']}" if i["status_date"] else "")
        )
        subscriber, item, mandate = document["subscriber"], document["item"], document["mandate"]
        if subscriber:
            lines.append(f"  subscriber {subscriber['number']} {subscriber['name']}")
        lines.append(f"  debtor {i['debtor_name']}, RIP {i['rip']}, mandate {i['mandate_reference']}")
        if mandate:
            lines.append(
                f"  mandate now {mandate['status']}{_sp(mandate['status_reason'])}, RIP {mandate['rip']}"
            )
        if item:
            lines.append(
                f"  item {item['kind']} {item['number']}: {item['state']}, {item['tries']} presentation(s)"
                + (f", paid by {item['paid_by']} on {item['paid_on']}" if item["paid_by"] else "")
            )
        if len(document["tries"]) > 1:
            lines.append("  presentations:")
            for t in document["tries"]:
                lines.append(
                    f"    try {t['try_number']} {t['reference']} built {t['business_date']}: {t['state']}"
                    f"{_sp(t['reason'])}"
                )
        for f in document["files"]:
            ack = f["ack"]
            verdict = (
                "no ACK yet"
                if ack is None or ack["verdict"] is None
                else f"ACK {ack['verdict']}{_sp(ack['reason'])} at {_local(ack['applied_at'])}"
            )
            where = f" line {f['line']}" if f["line"] else ""
            lines.append(f"  file {f['name']}{where}: {f['state']}, {verdict}")
        ret = document["return"]
        if ret:
            lines.append(
                f"  return {ret['status']}{_sp(ret['reason'])} dated {ret['status_date']}"
                f" in {ret['file'] or '?'}, applied {_local(ret['applied_at'])}"
            )
        for p in document["payments_elsewhere"]:
            lines.append(
                f"  paid elsewhere: {p['channel']} {p['paid_on']} {_money(p['amount'])}"
                + (" (while the debit was in flight)" if p["during_collection"] else "")
            )
    for e in document["return_exceptions"]:
        lines.append(f"  RETURN EXCEPTION {e['kind']} in {e['file']} line {e['line']}: {e['detail']}")
    lines.append("  history:")
    lines += [_event_line(e) for e in document["events"]]
    return lines


def file_lines(document: dict[str, Any]) -> list[str]:
    """The trail of one file as a person reads it (times in Africa/Algiers)."""
    lines = [f"file {document['name']}"]
    if not document["files"]:
        lines.append("  not registered in the ledger")
    for f in document["files"]:
        lines.append(
            f"  {f['direction']} {f['kind']} {f['state']}{_sp(f['reason'])}: "
            f"business date {f['business_date']}"
            + (f", settlement {f['settlement_date']}" if f["settlement_date"] else "")
            + f", registered {_local(f['registered_at'])}"
        )
        lines.append(
            f"    sha256 {f['sha256']}, {f['size']} bytes, {f['detail_count']} details, {_money(f['amount'])}"
        )
        if f["direction"] == "out":
            ack = f.get("ack")
            if ack is None or ack["verdict"] is None:
                lines.append("    ACK: not received yet")
            else:
                lines.append(
                    f"    ACK {ack['name']}: {ack['verdict']}{_sp(ack['reason'])}, "
                    f"applied {_local(ack['applied_at'])}"
                )
            carried = f.get("instructions") or {}
            lines.append(
                "    instructions now: "
                + (
                    ", ".join(f"{s} {v['count']} ({_money(v['amount'])})" for s, v in sorted(carried.items()))
                    or "none"
                )
            )
        else:
            if "acknowledges" in f:
                a = f["acknowledges"]
                lines.append(f"    acknowledges {a['name']} (now {a['state']}{_sp(a['reason'])})")
            for entity, states in sorted((f.get("effects") or {}).items()):
                lines.append(
                    f"    changed {entity}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items()))
                )
            exceptions = f.get("return_exceptions")
            if exceptions and exceptions["by_kind"]:
                lines.append(
                    "    return exceptions: "
                    + ", ".join(f"{k} {n}" for k, n in exceptions["by_kind"].items())
                )
    extract = document["billing_extract"]
    if extract:
        lines.append(
            f"  billing extract {extract['extract_id']} of {extract['extract_date']}: "
            f"{extract['row_count']} rows, {extract['rejected_count']} rejected, "
            f"loaded {_local(extract['loaded_at'])}"
        )
    for q in document["quarantine"]:
        lines.append(f"  QUARANTINED ({q['folder']}) as {q['stored_as']} at {_local(q['quarantined_at'])}:")
        lines += [f"    {r}" for r in q["reasons"]]
    if document["events"]:
        lines.append("  history:")
        lines += [_event_line(e) for e in document["events"]]
    return lines
