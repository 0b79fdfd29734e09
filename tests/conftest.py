"""Shared helpers: build small valid files with the real writer, then break them precisely."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine

from epay.calendar import BusinessCalendar, load_calendar
from epay.clock import ALGIERS, FileClock
from epay.formats import ack_name, build_file_name, get_layout, write_file
from epay.formats import synthetic as synth
from epay.ledger.db import open_ledger
from epay.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_files"
CREATED = date(2026, 11, 25)  # a Wednesday
SETTLES = date(2026, 11, 26)  # Thursday, the next business day


@pytest.fixture(scope="session")
def calendar() -> BusinessCalendar:
    return load_calendar()


def default_file(kind: str, rows: int = 5) -> tuple[str, dict[str, object], pa.Table]:
    """A valid (name, header, details) triple of ``kind``."""
    prlv = build_file_name("PRLV", synth.CREDITOR_ID, CREATED, 1)
    if kind == "PRLV":
        return prlv, synth.standard_header("PRLV", CREATED, SETTLES), synth.prlv_details(rows, seed=1)
    if kind == "ACK":
        return ack_name(prlv), synth.ack_header(CREATED), synth.ack_detail(prlv, count=rows, amount=1000)
    if kind == "RETR":
        name = build_file_name("RETR", synth.CREDITOR_ID, SETTLES, 1)
        return (
            name,
            synth.standard_header("RETR", SETTLES, SETTLES),
            synth.retr_details(rows, seed=1, day=SETTLES),
        )
    if kind == "MNDT":
        name = build_file_name("MNDT", synth.CREDITOR_ID, CREATED, 1)
        return (
            name,
            synth.standard_header("MNDT", CREATED, CREATED),
            synth.mndt_details(rows, seed=1, day=CREATED),
        )
    name = build_file_name("RELV", synth.CREDITOR_ID, SETTLES, 1)
    table = synth.relv_details([CREATED, SETTLES], [3, 4], [10_000, 25_000])
    return name, synth.standard_header("RELV", SETTLES, SETTLES), table


class FileFactory:
    """Writes valid files and lets a test change one field of one record by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, kind: str, rows: int = 5, crlf: bool = False, name: str | None = None) -> Path:
        default_name, header, table = default_file(kind, rows)
        folder = self.folder / f"{kind}-{len(list(self.folder.iterdir()))}"
        folder.mkdir()
        path = folder / (name or default_name)
        write_file(path, kind, header, table, crlf=crlf)
        return path

    @staticmethod
    def records(path: Path) -> list[bytes]:
        return path.read_bytes().split(b"\n")[:-1]

    @staticmethod
    def save(path: Path, records: list[bytes]) -> None:
        path.write_bytes(b"\n".join(records) + b"\n")

    def set_field(self, path: Path, line: int, field: str, value: str | bytes) -> None:
        """Overwrite ``field`` of the record at ``line`` (1-based) with ``value`` padded to its width."""
        records = self.records(path)
        record = bytearray(records[line - 1])
        layout = get_layout(_kind_of(path))
        role = "header" if line == 1 else "trailer" if line == len(records) else "detail"
        spec = getattr(layout, role).field(field)
        raw = value.encode("ascii") if isinstance(value, str) else value
        if spec.kind == "N" and isinstance(value, str) and value.isdigit():
            raw = value.zfill(spec.length).encode()
        record[spec.offset : spec.end] = raw.ljust(spec.length)[: spec.length]
        records[line - 1] = bytes(record)
        self.save(path, records)

    def edit(self, path: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
        self.save(path, change(self.records(path)))


def _kind_of(path: Path) -> str:
    return path.name.split("_")[0]


@pytest.fixture
def files(tmp_path: Path) -> FileFactory:
    return FileFactory(tmp_path)


# --- the ledger on SQLite and PostgreSQL -------------------------------------------------------------
# Every ledger test runs on both. CI sets EPAY_REQUIRE_POSTGRES=1: there an unreachable PostgreSQL fails
# the run; on a newcomer's machine without one, the PostgreSQL cases are skipped with the reason shown.
PG_ADMIN_URL = os.environ.get("EPAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("EPAY_REQUIRE_POSTGRES") == "1"


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{database}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test gets a fresh copy of it (CREATE DATABASE ... TEMPLATE)."""
    try:
        admin = _pg_admin()
    except Exception as error:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({error.__class__.__name__}: {error})"
        if REQUIRE_PG:
            pytest.fail(message + " and EPAY_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(message + ": PostgreSQL cases skipped, SQLite ones ran")
    name = f"epay_tpl_{os.getpid()}"
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
        engine = open_ledger(_pg_url(name))
        engine.dispose()
        yield name
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.sqlite3"
    open_ledger(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"epay_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield _pg_url(name)
    finally:
        with _pg_admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def ledger_settings(ledger_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=ledger_url)


@pytest.fixture
def ledger_engine(ledger_settings: Settings) -> Iterator[Engine]:
    engine = open_ledger(ledger_settings.ledger_url)
    yield engine
    engine.dispose()


# --- the clock epay is given ------------------------------------------------------------------------------

FIRST_NIGHT = datetime(2026, 11, 25, 20, 0, tzinfo=ALGIERS)  # the evening run of the tests' first day


@pytest.fixture(autouse=True)
def epay_clock(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FileClock:
    """Every test runs on a settable clock of its own (``EPAY_CLOCK=file:…``, inherited by the epay and
    Airflow processes it starts), set at 20:00 Algiers on Wednesday 2026-11-25 and running at real speed.
    ``at_night(D)`` moves it to another night; a test about time sets it where it needs."""
    clock = FileClock(tmp_path_factory.mktemp("clock") / "clock.json")
    clock.set(FIRST_NIGHT)
    monkeypatch.setenv("EPAY_CLOCK", f"file:{clock.path}")
    return clock


def at_night(day: date, hour: int = 20, minute: int = 0) -> None:
    """Move this test's clock to ``hour:minute`` Algiers on ``day`` (the evening run by default)."""
    set_clock(datetime.combine(day, time(hour, minute), tzinfo=ALGIERS))


def set_clock(moment: datetime, speed: float = 1.0) -> None:
    spec = os.environ["EPAY_CLOCK"]
    assert spec.startswith("file:"), f"the test clock is not settable: EPAY_CLOCK={spec}"
    FileClock(Path(spec.removeprefix("file:"))).set(moment, speed)
