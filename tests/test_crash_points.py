"""Crash safety: at every named fault point (``epay.faults``) a real ``epay`` process dies by SIGKILL, then
the night is run again as a data engineer would, and nothing is lost or done twice.

One small world (install_sample) per database, copied for each case. The night: Wednesday's build →
send → ACKs, the post office's clock moved to Thursday evening (executions, RETR, RELV, MNDT), Thursday's
inbound and status export. The step holding the point runs as an ``epay`` command in a process of its
own with ``EPAY_CRASH_AT`` set and must die of SIGKILL; then the data engineer runs that day's steps
again (one case: only the steps after the one that died), the post office closes the following days,
the returns are received, and the invariants are checked against the post office's own database and
against a run of the same night without a crash.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

from epay import jobs
from epay.calendar import BusinessCalendar, load_calendar
from epay.clock import FileClock
from epay.faults import FAULT_POINTS, fault_point
from epay.ledger.db import open_ledger
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.poste.sftp_server import PosteSftpServer
from epay.poste.state import Mandate
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from tests.conftest import REPO, _pg_admin, _pg_url, at_night

WED, THU = date(2026, 11, 25), date(2026, 11, 26)  # Wednesday's batch settles on Thursday
SETTLE = date(2026, 12, 1)  # Tuesday: the last delayed status of Wednesday's batch is known
SUBSCRIBERS, SEED, PER_FILE = 100, 11, 20  # about 60 instructions in 4 PRLV files, 4 ACKs

# The night's steps, in order, Wednesday's then Thursday's; each fault point is reached in one of them
# (``:N``: the N-th time in that process). "close" is the post office's, between the two days.
WED_STEPS = ("build", "send", "acks", "export_wed")
STEPS = (*WED_STEPS, "close", "returns", "export_thu")
CLI = {
    "build": ("outbound", "build", "--date", WED.isoformat()),
    "send": ("outbound", "send", "--date", WED.isoformat()),
    "acks": ("inbound", "--date", WED.isoformat()),
    "export_wed": ("billing", "export", "--date", WED.isoformat()),
    "returns": ("inbound", "--date", THU.isoformat()),  # MNDT, RETR, RELV of Wednesday and Thursday
    "export_thu": ("billing", "export", "--date", THU.isoformat()),
}
# (point, the step that dies there, the step the data engineer runs the night again from)
CASES = (
    ("build.after_write", "build", "build"),
    ("build.after_register", "build", "build"),
    ("build.after_register", "build", "send"),  # only the send is run again: it must cope
    ("build.after_reveal:2", "build", "build"),
    ("send.mid_part_write:2", "send", "build"),
    ("send.after_part_upload", "send", "build"),
    ("send.after_rename:2", "send", "build"),
    ("send.after_record", "send", "build"),
    ("inbound.after_download:3", "acks", "build"),
    ("ack.mid_apply", "acks", "build"),
    ("ack.before_commit:2", "acks", "build"),
    ("ack.after_commit:4", "acks", "build"),
    ("mndt.before_commit", "returns", "returns"),
    ("mndt.after_commit", "returns", "returns"),
    ("retr.mid_apply", "returns", "returns"),
    ("retr.before_commit", "returns", "returns"),
    ("retr.after_commit", "returns", "returns"),
    ("relv.before_commit:2", "returns", "returns"),
    ("relv.after_commit", "returns", "returns"),
    ("export.after_part", "export_thu", "returns"),
    ("export.after_commit", "export_thu", "returns"),
)


def test_every_fault_point_is_exercised() -> None:
    covered = {point.partition(":")[0] for point, _, _ in CASES}
    assert covered == set(FAULT_POINTS)
    assert all(step in CLI and STEPS.index(again) <= STEPS.index(step) + 1 for _, step, again in CASES)


def test_a_fault_point_is_a_no_op_unless_named_and_a_typo_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EPAY_CRASH_AT", raising=False)
    fault_point("export.after_part")
    monkeypatch.setenv("EPAY_CRASH_AT", "export.after_part")
    fault_point("build.after_write")  # another point: nothing happens
    with pytest.raises(KeyError, match="unregistered"):
        fault_point("export.afterpart")


def test_name_colon_n_kills_the_process_the_nth_time_the_point_is_reached() -> None:
    code = (
        "from epay.faults import fault_point\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    fault_point('send.after_record')\n"
    )
    env = {**os.environ, "EPAY_CRASH_AT": "send.after_record:3"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL and done.stdout.split() == ["0", "1", "2"]


# --- one world per database, copied for each case ------------------------------------------------------


@dataclass(frozen=True)
class World:
    """A data folder (ledger on SQLite inside it, or a PostgreSQL database) as of Wednesday morning."""

    home: Path
    database: str | None  # PostgreSQL database name; None: SQLite under home
    calendar: BusinessCalendar
    due: frozenset[int] = frozenset()  # the items Wednesday's build must decide on

    def settings(self) -> Settings:
        url = _pg_url(self.database) if self.database else None
        return Settings(home=self.home, database_url=url, max_details_per_file=PER_FILE)

    def copy(self, target: Path) -> World:
        shutil.copytree(self.home, target / "home")
        database = None
        if self.database:
            database = f"epay_c_{uuid.uuid4().hex[:12]}"
            with _pg_admin() as admin:
                admin.execute(f"CREATE DATABASE {database} TEMPLATE {self.database}")
        return World(target / "home", database, self.calendar, self.due)

    def drop(self) -> None:
        if self.database:
            with _pg_admin() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database = None
    if request.param == "postgresql":
        template = request.getfixturevalue("pg_template")  # skips (or fails in CI) without PostgreSQL
        database = f"epay_w_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as admin:
            admin.execute(f"CREATE DATABASE {database} TEMPLATE {template}")
    home = tmp_path_factory.mktemp(f"world-{request.param}") / "home"
    try:
        yield _install(World(home, database, load_calendar()))
    finally:
        World(home, database, load_calendar()).drop()


def _install(world: World) -> World:
    """The sample world as of Wednesday morning, with a revocation at a counter for Wednesday's MNDT."""
    settings = world.settings()
    install_sample(settings, SUBSCRIBERS, SEED, WED, world.calendar)
    office = _office(settings, world.calendar)
    with office.sessions() as session:
        reference = session.scalars(
            select(Mandate.reference).where(Mandate.revoked_on.is_(None)).order_by(Mandate.reference)
        ).first()
    assert reference is not None
    office.revoke_mandate(reference, day=WED, effective_date=date(2026, 12, 15))
    office.sessions.kw["bind"].dispose()
    engine = open_ledger(settings.ledger_url, migrate=False)
    try:
        due = _frame(engine, f"SELECT id FROM billing_item WHERE state = 'due' AND due_date <= '{WED}'")
    finally:
        engine.dispose()
    return World(world.home, world.database, world.calendar, frozenset(due["id"].tolist()))


def _office(settings: Settings, calendar: BusinessCalendar) -> PostOffice:
    scenario = load_scenario(settings.poste_scenario_file)
    return PostOffice(settings.poste_dir, settings.poste_url, calendar=calendar, scenario=scenario)


# --- the processes that crash ------------------------------------------------------------------------

# A Python process with epay and Great Expectations imported once, single-threaded, that forks one child
# per request to run an ``epay`` command: the child is a process of its own that SIGKILL really ends,
# without paying the seconds of imports each time (the build's gate imports Great Expectations).
ZYGOTE = """
import json, os, sys, traceback
import epay.cli, epay.inbound.fetch, epay.outbound.send, epay.quality.outbound_gate
import great_expectations.core.expectation_suite, great_expectations.data_context.types.base
import great_expectations.execution_engine.pandas_execution_engine
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(request["env"])
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        code = 0
        try:
            epay.cli.main.main(args=request["argv"][1:], prog_name=request["argv"][0])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Zygote:
    """The forking process of ``ZYGOTE``, one per module."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @classmethod
    def start(cls) -> Zygote:
        process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        return cls(process)

    def run(self, argv: list[str], env: dict[str, str], log: Path) -> int:
        """Run ``argv`` (an ``epay`` command line) in a child process; its exit status (-9: SIGKILL)."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"argv": argv, "env": env, "log": str(log)}) + "\n")
        process.stdin.flush()
        with selectors.DefaultSelector() as waiting:
            waiting.register(process.stdout, selectors.EVENT_READ)
            assert waiting.select(timeout=300), f"{argv}: still running after 300 s"
        return int(process.stdout.readline())

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    started = Zygote.start()
    try:
        yield started
    finally:
        started.stop()


# --- the night -------------------------------------------------------------------------------------


class Night:
    """A copy of the world with the post office's SFTP server running in this process."""

    def __init__(self, world: World, zygote: Zygote) -> None:
        self.world = world
        self.zygote = zygote
        self.office = _office(world.settings(), world.calendar)
        self.lock = threading.Lock()
        self.clock = datetime.combine(WED, time(20, 5), tzinfo=ALGIERS)
        self.server = PosteSftpServer(world.settings().poste_dir, port=0, on_file_received=self._received)

    def _received(self, creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with self.lock:
                self.office.acknowledge(creditor, path, self.clock)

    def __enter__(self) -> Night:
        at_night(WED, 20, 5)  # Wednesday's evening run, by epay's clock too
        self.server.start()
        self.settings = self.world.settings().model_copy(
            update={
                "sftp_port": self.server.port,
                "sftp_host_key": self.server.host_key_line,
                "sftp_private_key_file": self.world.home / "keys" / "at_sftp_ecdsa",
            }
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()
        self.office.sessions.kw["bind"].dispose()

    def step(self, name: str) -> None:
        """One step of the night, in this process."""
        s = self.settings
        actions: dict[str, Callable[[], Any]] = {
            "build": lambda: jobs.build(s, WED),
            "send": lambda: jobs.send(s, WED),
            "acks": lambda: jobs.receive(s, WED),
            "close": self._close,
            "export_wed": lambda: jobs.export_statuses(s, WED),
            "returns": lambda: jobs.receive(s, THU),
            "export_thu": lambda: jobs.export_statuses(s, THU),
        }
        actions[name]()

    def _close(self) -> None:
        with self.lock:
            self.office.tick(WED)
            self.office.tick(THU)
        at_night(THU, 23)  # Thursday's returns and export run on Thursday by epay's clock (never ahead)

    def crash(self, name: str, point: str) -> None:
        """Run step ``name`` as the ``epay`` command, in a process of its own with ``EPAY_CRASH_AT=point``:
        it must die there, of SIGKILL."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPAY_") or k == "EPAY_CLOCK"}
        env |= {
            "EPAY_HOME": str(s.home),
            "EPAY_DATABASE_URL": s.ledger_url,
            "EPAY_SFTP_PORT": str(s.sftp_port),
            "EPAY_SFTP_HOST_KEY": str(s.sftp_host_key),
            "EPAY_SFTP_PRIVATE_KEY_FILE": str(s.sftp_private_key_file),
            "EPAY_MAX_DETAILS_PER_FILE": str(PER_FILE),
            "EPAY_CRASH_AT": point,
        }
        log = self.world.home.parent / "crashed.log"
        status = self.zygote.run(["epay", *CLI[name]], env, log)
        assert status == -signal.SIGKILL, (
            f"{point}: exit {status}, not killed there\n{log.read_text()[-3000:]}"
        )

    def settle(self) -> None:
        """The post office closes the following business days; their returns are received."""
        with self.lock:
            self.office.tick(SETTLE)
        at_night(SETTLE, 23)  # read on that day by epay's clock: a file is never dated after today
        jobs.receive(self.settings, SETTLE)


def _run(world: World, zygote: Zygote, crash: tuple[str, str, str] | None) -> Outcome:
    """The night; with ``crash`` (point, step, again), that step dies at that point, then the data
    engineer runs the night again from step ``again``, to the end."""
    with Night(world, zygote) as night:
        start = 0
        if crash is not None:
            point, crashed_step, again = crash
            for name in STEPS[: STEPS.index(crashed_step)]:
                night.step(name)
            night.crash(crashed_step, point)
            start = STEPS.index(again)
        for name in STEPS[start:]:
            night.step(name)
        night.settle()
        return _outcome(night)


@pytest.fixture(scope="module")
def control(world: World, zygote: Zygote, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The same night without a crash (on a settable clock of its own: this runs before any test's)."""
    copy = world.copy(tmp_path_factory.mktemp("control"))
    clock = FileClock(tmp_path_factory.mktemp("control-clock") / "clock.json")
    clock.set(datetime.combine(WED, time(20, 5), tzinfo=ALGIERS))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("EPAY_CLOCK", f"file:{clock.path}")
            return _run(copy, zygote, None)
    finally:
        copy.drop()


@pytest.mark.parametrize(
    ("point", "step", "again"),
    CASES,
    ids=[point if again in ("build", "returns") else f"{point}-then-{again}" for point, _, again in CASES],
)
def test_a_crash_then_a_rerun_loses_nothing_and_does_nothing_twice(
    world: World, control: Outcome, zygote: Zygote, tmp_path: Path, point: str, step: str, again: str
) -> None:
    copy = world.copy(tmp_path)
    try:
        outcome = _run(copy, zygote, (point, step, again))
    finally:
        copy.drop()
    outcome.check_invariants(world)
    outcome.assert_same_as(control)


# --- what the night left, and the invariants ---------------------------------------------------------


@dataclass
class Outcome:
    ledger: dict[str, pd.DataFrame]
    poste: dict[str, pd.DataFrame]
    exports: list[bytes]  # the status exports of Wednesday and Thursday
    leftovers: list[str]  # unfinished uploads left on the server

    def check_invariants(self, world: World) -> None:
        instructions, items = self.ledger["instruction"], self.ledger["billing_item"]
        files, exclusions = self.ledger["exchange_file"], self.ledger["exclusion"]
        accepted, transfers = self.poste["instruction"], self.poste["transfer"]

        # the post office accepted each end-to-end reference once, and each file once
        assert accepted["reference"].is_unique
        assert not accepted["reference_reused"].astype(bool).any()
        assert set(self.poste["received_file"]["status"]) == {"ACCP"}
        assert not self.leftovers
        # every instruction sent ends in exactly one final state, the post office's
        assert set(instructions["state"]) <= {"settled", "rejected"}
        assert set(instructions["reference"]) == set(accepted["reference"])
        both = instructions.merge(accepted, on="reference", suffixes=("", "_poste"))
        assert (both["state"].map({"settled": "ACSC", "rejected": "RJCT"}) == both["status"]).all()
        assert (both["transaction_id"] == both["transaction_id_poste"]).all()
        # no billing item paid twice, none left hanging
        settled = instructions[instructions["state"] == "settled"]
        assert settled["item_id"].is_unique
        paid = items[(items["state"] == "paid") & (items["paid_by"] == "DEBIT")]
        assert set(paid["id"]) == set(settled["item_id"])
        assert "in_collection" not in set(items["state"])
        # every item due on Wednesday was either presented or excluded, once
        due = world.due
        of_day = instructions[instructions["business_date"].astype(str) == WED.isoformat()]
        excluded = exclusions[exclusions["business_date"].astype(str) == WED.isoformat()]
        taken = [*of_day["item_id"].tolist(), *excluded["item_id"].tolist()]
        assert len(taken) == len(set(taken)) and set(taken) == due
        # money: settled in the ledger = executed by the post office = credited in the statements
        credited = int(files.loc[files["kind"] == "RELV", "amount"].sum())
        executed = int(accepted.loc[accepted["status"] == "ACSC", "amount"].sum())
        assert int(settled["amount"].sum()) == executed == int(transfers["amount"].sum()) == credited > 0
        # every file in its final state, nothing quarantined or unexplained
        prlv = files[files["kind"] == "PRLV"]
        assert len(prlv) == 4 and set(prlv["state"]) == {"accepted"}
        assert set(files.loc[files["direction"] == "in", "state"]) == {"applied"}
        assert {"ACK", "MNDT", "RETR", "RELV"} <= set(files["kind"])
        assert self.ledger["return_exception"].empty

    def assert_same_as(self, control: Outcome) -> None:
        """The crash and the re-run changed nothing of what the night decided."""
        for table, keys in COMPARED.items():
            mine, theirs = self.ledger[table][list(keys)], control.ledger[table][list(keys)]
            pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, obj=table)
        for table, frame in self.poste.items():
            pd.testing.assert_frame_equal(
                frame, control.poste[table], check_dtype=False, obj=f"poste {table}"
            )
        assert self.exports == control.exports


COMPARED = {
    "instruction": ("reference", "item_id", "try_number", "state", "reason", "amount", "transaction_id"),
    "billing_item": ("id", "state", "tries", "last_reason", "paid_by", "paid_on"),
    "mandate": ("reference", "status", "status_reason", "revoked_from"),
    "exchange_file": ("name", "direction", "kind", "state", "detail_count", "amount", "outbound_sha256"),
    "exclusion": ("business_date", "item_id", "reason"),
}
LEDGER_SQL = {
    "instruction": "SELECT reference, item_id, try_number, state, reason, amount, transaction_id, "
    "business_date FROM instruction ORDER BY reference",
    "billing_item": "SELECT id, state, tries, last_reason, paid_by, paid_on FROM billing_item ORDER BY id",
    "mandate": "SELECT reference, status, status_reason, revoked_from FROM mandate ORDER BY reference",
    "exchange_file": "SELECT name, direction, kind, state, detail_count, amount, "
    "CASE WHEN direction = 'out' THEN sha256 END AS outbound_sha256 FROM exchange_file ORDER BY name",
    "exclusion": "SELECT business_date, item_id, reason FROM exclusion ORDER BY business_date, item_id",
    "return_exception": "SELECT reference, kind FROM return_exception",
}
POSTE_SQL = {
    "instruction": "SELECT file_name, line, reference, amount, reference_reused, status, reason, "
    "status_date, transaction_id FROM instruction ORDER BY reference",
    "transfer": "SELECT transaction_id, day, amount, reference FROM transfer ORDER BY transaction_id",
    "received_file": "SELECT name, sha256, status, reason FROM received_file ORDER BY name",
    "published_file": "SELECT name, kind, day FROM published_file ORDER BY name",
    "account": "SELECT number, balance FROM account ORDER BY number",
}


def _frame(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(text(sql))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _outcome(night: Night) -> Outcome:
    engine = open_ledger(night.settings.ledger_url, migrate=False)
    try:
        ledger = {table: _frame(engine, sql) for table, sql in LEDGER_SQL.items()}
    finally:
        engine.dispose()
    poste_engine = night.office.sessions.kw["bind"]
    poste = {table: _frame(poste_engine, sql) for table, sql in POSTE_SQL.items()}
    inbound = night.office.home(night.settings.creditor_id) / "inbound"
    exports = [
        (night.settings.billing_outgoing_dir / f"STATUS_{d:%Y%m%d}.csv").read_bytes() for d in (WED, THU)
    ]
    leftovers = sorted(p.name for p in inbound.iterdir() if p.name.endswith(".part"))
    return Outcome(ledger, poste, exports, leftovers)
