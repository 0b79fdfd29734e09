"""`epay audit`: the history of one instruction or one file, on SQLite and PostgreSQL, told from a small
world driven through the real nightly code — build, verified SFTP send, the simulated post office's ACK,
RETR (with a status for a reference never sent), RELV, MNDT, a retry after AM04/MS03 — never from rows
inserted by hand. A RIP never appears unmasked; a --file that is a path is refused."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, text

from epay import jobs
from epay.calendar import BusinessCalendar
from epay.formats import mask_rip, read_file
from epay.ledger.models import AuditEvent, ExchangeFile
from epay.outbound.build import sha256_of
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.poste.sftp_server import PosteSftpServer
from epay.reports.audit_trail import (
    AuditNotFoundError,
    _file_before,
    check_file_name,
    file_trail,
    instruction_trail,
)
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings, get_settings
from tests.conftest import at_night

START = date(2026, 11, 25)  # Wednesday; settles Thursday 26; Friday and Saturday are the weekend
SUBSCRIBERS, SEED = 120, 11
FULL_RIP = re.compile(r"(?<!\d)007\d{17}(?!\d)")  # a whole RIP, as written in files and the ledger


class Night:
    """Both sides of a small sampled world: the ledger, and the simulated post office behind its SFTP
    server, acknowledging each PRLV file as it arrives (unless told not to). Days are driven by the same
    job functions the CLI and the DAGs call."""

    def __init__(
        self, settings: Settings, calendar: BusinessCalendar, tmp_path: Path, **faults: bool | int
    ) -> None:
        install_sample(settings, SUBSCRIBERS, SEED, START, calendar)
        source = settings.poste_scenario_file.read_text(encoding="utf-8")
        for key, value in faults.items():
            literal = str(value).lower() if isinstance(value, bool) else str(value)
            source, count = re.subn(rf"(?m)^{key} = [^\s#]+", f"{key} = {literal}", source)
            assert count == 1, key
        scenario_file = tmp_path / "scenario.toml"
        scenario_file.write_text(source, encoding="utf-8")
        self.calendar = calendar
        self.office = PostOffice(
            settings.poste_dir, settings.poste_url, calendar=calendar, scenario=load_scenario(scenario_file)
        )
        self.acknowledging = True
        self.lock = threading.Lock()
        self.clock = datetime.combine(START, time(20, 5), tzinfo=ALGIERS)
        self.server = PosteSftpServer(settings.poste_dir, port=0, on_file_received=self._received)
        self.base = settings
        self.settings = settings

    def _received(self, creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_") and self.acknowledging:
            with self.lock:
                self.office.acknowledge(creditor, path, self.clock)

    def __enter__(self) -> Night:
        self.server.__enter__()
        self.settings = self.base.model_copy(
            update={
                "sftp_port": self.server.port,
                "sftp_host_key": self.server.host_key_line,
                "sftp_private_key_file": self.base.home / "keys" / "at_sftp_ecdsa",
            }
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.__exit__(kind, error, tb)

    def send(self, day: date, at: time = time(20, 5)) -> list[str]:
        """The evening debit run: build, send by SFTP (arriving ``at``), apply the ACKs that came back.
        epay's clock reads ``at`` too, unless that is past the cut-off: epay then still builds and sends
        at 21:45 by its own clock (it never sends late), and the post office judges the arrival at ``at``."""
        self.clock = datetime.combine(day, at, tzinfo=ALGIERS)
        at_night(day, *((at.hour, at.minute) if at < time(21, 45) else (21, 45)))
        built = jobs.build(self.settings, day)
        jobs.send(self.settings, day)
        jobs.receive(self.settings, day)
        return [f.name for f in built.files]

    def publish(self, day: date) -> list[str]:
        """The post office's clock to the end of ``day``: executions, RETR, RELV, MNDT published."""
        with self.lock:
            published = self.office.tick(day).published
        at_night(day, 23, 30)  # read after AP's end of day, by epay's clock (a file is never from the future)
        return published

    def receive(self, day: date) -> list[dict[str, Any]]:
        return jobs.receive(self.settings, day)

    def close(self, day: date) -> list[dict[str, Any]]:
        self.publish(day)
        return self.receive(day)


def rows(engine: Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(text(sql)).mappings()]


def epay(*args: str) -> Result:
    from epay.cli import main

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()


@pytest.fixture
def cli_env(ledger_settings: Settings, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EPAY_HOME", str(ledger_settings.home))
    monkeypatch.setenv("EPAY_DATABASE_URL", ledger_url)
    monkeypatch.delenv("EPAY_CONFIG", raising=False)
    return ledger_settings


def assert_no_full_rip(document: object) -> None:
    dumped = json.dumps(document, default=str) if not isinstance(document, str) else document
    assert not FULL_RIP.search(dumped), FULL_RIP.search(dumped)


def test_the_story_of_instructions_and_files(
    ledger_engine: Engine, cli_env: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    settings = cli_env.model_copy(update={"retry_after_business_days": 1})
    with Night(settings, calendar, tmp_path, unknown_reference=True) as night:
        [prlv] = night.send(START)
        night.close(START)
        settles = calendar.next_business_day(START)  # Thursday 26
        night.close(settles)
        retry_day = calendar.next_business_day(settles)  # Sunday 29: AM04/MS03 rejects presented again
        retried = night.send(retry_day)
        night.close(retry_day)
        night.close(calendar.next_business_day(retry_day))
        night.close(calendar.add_business_days(retry_day, 2))

    instructions = rows(
        ledger_engine,
        "SELECT i.reference, i.item_id, i.state, i.reason, i.rip, i.try_number, i.amount, "
        "b.subscriber_number FROM instruction i JOIN billing_item b ON b.id = i.item_id ORDER BY i.reference",
    )
    assert retried and {i["state"] for i in instructions} == {"settled", "rejected"}

    # --- a settled instruction: built, sent, presented (ACK ACCP), settled by a RETR record -------------
    settled = next(i for i in instructions if i["state"] == "settled" and i["try_number"] == 1)
    trail = instruction_trail(ledger_engine, settled["reference"])
    assert_no_full_rip(trail)
    own = [
        (e["from_state"], e["to_state"], e["actor"]) for e in trail["events"] if e["entity"] == "instruction"
    ]
    assert own == [
        (None, "built", "outbound.build"),
        ("built", "sent", "outbound.send"),
        ("sent", "presented", "inbound.ack"),
        ("presented", "settled", "inbound.retr"),
    ]
    times = [e["at"] for e in trail["events"]]
    assert times == sorted(times) and all(datetime.fromisoformat(t).tzinfo for t in times)
    item_events = [e["to_state"] for e in trail["events"] if e["entity"] == "item"]
    assert item_events[-2:] == ["in_collection", "paid"]
    assert trail["instruction"]["rip"] == mask_rip(settled["rip"]) != settled["rip"]
    assert trail["instruction"]["amount"] == settled["amount"]
    [subscriber] = rows(
        ledger_engine, f"SELECT number, name FROM subscriber WHERE number = '{settled['subscriber_number']}'"
    )
    assert trail["subscriber"] == subscriber
    [file] = trail["files"]
    assert file["name"] == prlv and file["current"] and file["line"] >= 1
    assert file["ack"]["name"] == f"ACK_{prlv}" and file["ack"]["received"]
    assert (file["ack"]["verdict"], file["ack"]["reason"]) == ("ACCP", None)
    sent_event = next(e for e in trail["events"] if e["to_state"] == "sent")
    assert sent_event["file"] == prlv
    ret = trail["return"]
    assert ret["status"] == "ACSC" and ret["file"].startswith("RETR_")
    # the RETR named is really the one whose record settled it
    retr_path = settings.inbound_dir(settles) / ret["file"]
    records = read_file(retr_path, calendar=calendar).details
    assert records is not None
    record = next(r for r in records.to_pylist() if r["end_to_end_reference"] == settled["reference"])
    assert (record["status"], record["transaction_id"]) == ("ACSC", ret["transaction_id"])
    assert trail["item"]["state"] == "paid" and trail["return_exceptions"] == []

    # --- a rejected first try presented again: both tries, every item state change ----------------------
    second = next(i for i in instructions if i["try_number"] == 2)
    first = next(i for i in instructions if i["item_id"] == second["item_id"] and i["try_number"] == 1)
    assert first["state"] == "rejected" and first["reason"] in ("AM04", "MS03")
    trail = instruction_trail(ledger_engine, second["reference"])
    assert [(t["reference"], t["try_number"], t["state"]) for t in trail["tries"]] == [
        (first["reference"], 1, "rejected"),
        (second["reference"], 2, second["state"]),
    ]
    item_events = [(e["to_state"], e["business_date"]) for e in trail["events"] if e["entity"] == "item"]
    assert [s for s, _ in item_events][-4:-1] == ["in_collection", "due", "in_collection"]
    assert item_events[-1][0] == (
        "paid"
        if second["state"] == "settled"
        else "due"
        if second["reason"]
        in (
            "AM04",
            "MS03",
        )
        else "stopped"
    )
    assert trail["files"][0]["name"] in retried and trail["instruction"]["try_number"] == 2
    first_trail = instruction_trail(ledger_engine, first["reference"])
    assert first_trail["return"]["status"] == "RJCT" and first_trail["return"]["reason"] == first["reason"]

    # --- a status for a reference never sent: known only as a return exception -------------------------
    [ghost] = rows(ledger_engine, "SELECT reference, line, kind FROM return_exception ORDER BY id LIMIT 1")
    trail = instruction_trail(ledger_engine, ghost["reference"])
    assert trail["instruction"] is None and trail["item"] is None
    [exception] = trail["return_exceptions"]
    assert (exception["kind"], exception["line"]) == ("unknown_reference", ghost["line"])
    assert [(e["to_state"], e["file"]) for e in trail["events"]] == [("exception", exception["file"])]

    with pytest.raises(AuditNotFoundError):
        instruction_trail(ledger_engine, "E2026112501000000009999")

    # --- files: the PRLV, its ACK, a RETR ------------------------------------------------------------
    trail = file_trail(ledger_engine, prlv, settings.quarantine_dir)
    assert_no_full_rip(trail)
    [out] = trail["files"]
    assert out["sha256"] == sha256_of(settings.home / out["path"]) and out["size"] > 0
    assert [(e["from_state"], e["to_state"]) for e in trail["events"]] == [
        (None, "built"),
        ("built", "sent"),
        ("sent", "accepted"),
    ]
    assert out["ack"]["verdict"] == "ACCP" and out["ack"]["sha256"]
    carried = out["instructions"]
    assert sum(v["count"] for v in carried.values()) == out["detail_count"]
    assert sum(v["amount"] for v in carried.values()) == out["amount"]
    assert set(carried) <= {"settled", "rejected"} and trail["quarantine"] == []
    ack = file_trail(ledger_engine, f"ACK_{prlv}", settings.quarantine_dir)["files"][0]
    assert ack["acknowledges"] == {"name": prlv, "state": "accepted", "reason": None}
    assert ack["effects"] == {"instruction": {"presented": out["detail_count"]}}
    retr_name = ret["file"]
    retr = file_trail(ledger_engine, retr_name, settings.quarantine_dir)["files"][0]
    statuses = [r["status"] for r in records.to_pylist()]
    assert retr["effects"]["instruction"] == {
        k: v for k, v in (("settled", statuses.count("ACSC")), ("rejected", statuses.count("RJCT"))) if v
    }
    assert retr["effects"]["item"]["paid"] == statuses.count("ACSC")
    ghost_file = file_trail(ledger_engine, exception["file"], settings.quarantine_dir)["files"][0]
    assert ghost_file["return_exceptions"]["by_kind"] == {"unknown_reference": 1}

    # --- the command line --------------------------------------------------------------------------------
    shown = epay("audit", "--reference", settled["reference"])
    assert shown.exit_code == 0, shown.output
    assert mask_rip(settled["rip"]) in shown.output and settled["rip"] not in shown.output
    assert_no_full_rip(shown.output)
    assert f"file {prlv}" in shown.output and "ACK ACCP" in shown.output
    assert f"return ACSC dated {settles}" in shown.output and subscriber["name"] in shown.output
    as_json = epay("audit", "--reference", settled["reference"], "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["reference"] == settled["reference"]
    listed = epay("audit", "--file", prlv)
    assert listed.exit_code == 0 and "sent → accepted" in listed.output and out["sha256"] in listed.output
    assert json.loads(epay("audit", "--file", retr_name, "--json").output)["files"][0]["kind"] == "RETR"
    unknown = epay("audit", "--reference", "E2026112501000000009999")
    assert unknown.exit_code == 1 and "no instruction" in unknown.stderr and not unknown.stdout
    missing = epay("audit", "--file", "PRLV_100237_20261124_01.txt")
    assert missing.exit_code == 1 and "no file named" in missing.stderr

    # every change a file step made to an instruction or an item names its file, and it is the file the
    # order of the events says (what the trail had to infer before audit_event.file_id existed)
    steps = ("outbound.build", "outbound.send", "inbound.ack", "inbound.retr")
    with ledger_engine.connect() as c:
        events = c.execute(
            select(AuditEvent.id, AuditEvent.actor, AuditEvent.entity, ExchangeFile.name.label("file_name"))
            .outerjoin(ExchangeFile, ExchangeFile.id == AuditEvent.file_id)
            .where(AuditEvent.entity.in_(("instruction", "item")), AuditEvent.actor.in_(steps))
        ).all()
        assert {e.actor for e in events} == set(steps) and all(e.file_name for e in events)
        for event in events:
            if event.entity == "instruction" and event.actor != "outbound.build":
                assert _file_before(c, event.id, event.actor) == event.file_name, event
    built = {
        (r["reference"], r["name"])
        for r in rows(
            ledger_engine,
            "SELECT i.reference, f.name FROM instruction i JOIN exchange_file f ON f.id = i.file_id",
        )
    }
    recorded = {
        (r["entity_key"], r["file_name"])
        for r in rows(
            ledger_engine,
            "SELECT a.entity_key, f.name AS file_name FROM audit_event a JOIN exchange_file f "
            "ON f.id = a.file_id WHERE a.actor = 'outbound.build' AND a.entity = 'instruction'",
        )
    }
    assert built <= recorded


def test_an_instruction_sent_again_after_a_dt01_shows_both_files(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar, tmp_path: Path
) -> None:
    """Wednesday's file reaches the post office after the 22:00 cut-off: ACK RJCT DT01, its instructions
    leave it with their references (spec §3) and go out again in Thursday's file, for a new settlement."""
    with Night(ledger_settings, calendar, tmp_path) as night:
        [late] = night.send(START, at=time(22, 30))
        thursday = night.send(calendar.next_business_day(START))  # the refiled ones, and Thursday's own
    [moved] = rows(
        ledger_engine,
        "SELECT i.reference, f.name FROM instruction i JOIN exchange_file f ON f.id = i.file_id "
        "WHERE i.business_date = '2026-11-25' ORDER BY i.reference LIMIT 1",
    )
    reference, again = moved["reference"], moved["name"]
    assert again in thursday and again != late
    trail = instruction_trail(ledger_engine, reference)
    files = [
        (f["name"], f["state"], f["ack"]["verdict"], f["ack"]["reason"], f["current"]) for f in trail["files"]
    ]
    assert files == [(late, "rejected", "RJCT", "DT01", False), (again, "accepted", "ACCP", None, True)]
    own = [
        (e["from_state"], e["to_state"], e["reason"], e.get("file"))
        for e in trail["events"]
        if e["entity"] == "instruction"
    ]
    assert own == [
        (None, "built", None, None),
        ("built", "sent", None, late),
        ("sent", "built", "RJCT DT01", late),
        ("built", "built", "into a new file", None),
        ("built", "sent", None, again),
        ("sent", "presented", "ACCP", again),
    ]
    assert trail["instruction"]["settlement_date"] == "2026-11-29" and trail["instruction"]["try_number"] == 1
    rejected = file_trail(ledger_engine, late, ledger_settings.quarantine_dir)
    [out] = rejected["files"]
    assert (out["state"], out["reason"], out["instructions"]) == ("rejected", "DT01", {})
    assert (out["ack"]["verdict"], out["ack"]["reason"]) == ("RJCT", "DT01")
    assert [e["to_state"] for e in rejected["events"]] == ["built", "sent", "rejected"]
    ack = file_trail(ledger_engine, f"ACK_{late}", ledger_settings.quarantine_dir)["files"][0]
    assert ack["effects"] == {"instruction": {"built": out["detail_count"]}}


@pytest.mark.parametrize(
    "name",
    [
        "../epay.sqlite3",
        "/etc/passwd",
        "files/outbound/2026-11-25/PRLV_100237_20261125_01.txt",
        "..",
        "C:PRLV.txt",
        "..\\PRLV_100237_20261125_01.txt",
        " PRLV_100237_20261125_01.txt",
        "PRLV\n.txt",
        "",
    ],
)
def test_a_path_is_never_taken_for_a_file_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"bare name|printable ASCII|1 to"):
        check_file_name(name)


def test_the_command_refuses_paths_and_wants_one_question(cli_env: Settings) -> None:
    for path in ("../PRLV_100237_20261125_01.txt", "/tmp/PRLV_100237_20261125_01.txt"):
        refused = epay("audit", "--file", path)
        assert refused.exit_code == 2 and "not a path" in refused.output
    assert epay("audit").exit_code == 2
    assert epay("audit", "--reference", "E1", "--file", "PRLV_100237_20261125_01.txt").exit_code == 2
    assert check_file_name("PRLV_100237_20261125_01.txt") == "PRLV_100237_20261125_01.txt"
