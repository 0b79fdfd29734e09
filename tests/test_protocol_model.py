"""The AT <-> AP exchange, model-checked with spin (schemas/protocol/exchange.pml, docs/protocol-model.md),
and the regression test of what the model found."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from epay.calendar import BusinessCalendar
from epay.faults import FAULT_POINTS
from epay.inbound.receive import receive_file
from epay.outbound.build import BuildPolicy, build_outbound
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from tests.conftest import REPO, at_night

MODEL = REPO / "schemas" / "protocol" / "exchange.pml"
DAY = date(2026, 11, 25)


def documented_check() -> str:
    """The command docs/protocol-model.md shows under "Run it by hand" (the test runs it as written)."""
    text = (REPO / "docs" / "protocol-model.md").read_text(encoding="utf-8")
    block = text.split("Run it by hand:\n\n", 1)[1].split("\n\n", 1)[0]
    return " ".join(line.strip().rstrip("\\").strip() for line in block.splitlines())


def check(tmp_path: Path, *defines: str) -> str:
    """The documented ``spin -a``, ``gcc``, ``./pan`` in ``tmp_path`` (``defines`` given to spin): an
    exhaustive search of the model's states; pan's report."""
    command = (
        documented_check()
        .replace('cd "$(mktemp -d)"', f"cd {shlex.quote(str(tmp_path))}")
        .replace("/path/to/epay", shlex.quote(str(REPO)))
        .replace("spin -a", " ".join(["spin", *defines, "-a"]))
    )
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=900)
    assert (tmp_path / "pan").is_file(), run.stderr
    return run.stdout


def test_the_exchange_never_debits_twice_and_every_accepted_instruction_ends_final(tmp_path: Path) -> None:
    """Every interleaving of AT's steps and AP's, every ACK outcome, every crash at every fault point
    (two per run), a RETR re-delivered: no reference in two accepted files, no item debited twice, and when
    nothing can move any more every instruction AP accepted is final in the ledger with AP's status."""
    report = check(tmp_path)
    assert "errors: 0" in report, report
    assert "Search not completed" not in report, report
    stored = int(re.search(r"(\d+) states, stored", report).group(1))  # type: ignore[union-attr]
    assert stored > 100_000, report  # the search went through the interleavings, not a trivial start
    print(f"spin: {stored} states stored, no violation")


def test_the_model_finds_the_status_lost_when_a_built_instruction_is_not_open(tmp_path: Path) -> None:
    """With the earlier rule (a status applies only to a sent or presented instruction), the model finds a
    run that ends with an accepted instruction never final: its send crashed after the rename, the RETR came
    before the send ran again, and its status was taken for an exception. The model can fail."""
    report = check(tmp_path, "-DBUILT_NOT_OPEN")
    assert "assertion violated" in report and "errors: 1" in report, report


def test_the_model_has_a_crash_branch_at_every_registered_fault_point() -> None:
    modelled = set(re.findall(r"FAULT\((\w+)\)", MODEL.read_text(encoding="utf-8"))) - {"point"}
    assert modelled == {name.replace(".", "_") for name in FAULT_POINTS}


def test_a_status_for_an_instruction_whose_send_crashed_after_the_rename_is_applied(
    ledger_engine: Engine, ledger_settings: Settings, calendar: BusinessCalendar
) -> None:
    """What the model found, on the real code: the file reached AP but the send crashed before recording
    it sent (its instructions are still built). AP acknowledges it and executes it; its RETR is read before
    the ACK. Each status applies (never a `not_presented` exception); the ACK read after it is applied to the
    file and leaves the final states alone."""
    install_sample(ledger_settings, 40, 9, DAY, calendar)
    at_night(DAY, 20, 5)
    built = build_outbound(ledger_engine, ledger_settings, DAY, calendar, BuildPolicy())
    office = PostOffice(
        ledger_settings.poste_dir,
        ledger_settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(ledger_settings.poste_scenario_file),
    )
    inbound = office.home(ledger_settings.creditor_id) / "inbound"
    acks = []
    for file in built.files:  # at AP, never recorded sent here
        shutil.copyfile(file.path, inbound / file.name)
        acks.append(
            office.acknowledge(
                ledger_settings.creditor_id, inbound / file.name, datetime.combine(DAY, time(20, 6), ALGIERS)
            )
        )
    settles = calendar.next_business_day(DAY)
    published: list[str] = []
    for day in (settles, calendar.add_business_days(settles, 1), calendar.add_business_days(settles, 2)):
        published += office.tick(day).published
    at_night(calendar.add_business_days(settles, 2), 23, 30)
    outbound = office.home(ledger_settings.creditor_id) / "outbound"
    local = ledger_settings.inbound_dir(settles)
    local.mkdir(parents=True)
    first = [n for n in published if n.startswith("RETR_")] + [a for a in acks if a is not None]
    for name in first:  # the returns first, then the acknowledgements
        shutil.copyfile(outbound / name, local / name)
        got = receive_file(ledger_engine, ledger_settings, local / name, calendar, settles)
        assert got.outcome == "applied", (name, got.detail)
        assert got.detail.get("exceptions", 0) == 0, got.detail
    with ledger_engine.connect() as c:
        states = dict(c.execute(text("SELECT state, count(*) FROM instruction GROUP BY state")).all())
        files = set(c.execute(text("SELECT state FROM exchange_file WHERE kind = 'PRLV'")).scalars())
        exceptions = c.execute(text("SELECT count(*) FROM return_exception")).scalar_one()
    assert set(states) <= {"settled", "rejected"} and states, states
    assert (files, exceptions) == ({"accepted"}, 0)


@pytest.fixture(autouse=True)
def _spin_installed() -> None:
    assert shutil.which("spin") and shutil.which("gcc"), "make test installs spin and gcc"
