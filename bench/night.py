"""One whole night, end to end, every stage timed: wall time and peak RSS of each stage's own process.

    .venv/bin/python bench/night.py                                   # 100k instructions, both databases
    .venv/bin/python bench/night.py --size 1M --database postgresql --runs 3
    .venv/bin/python bench/night.py --size 1M --size 3M --database sqlite   # growth 1M -> 3M vs linear
    .venv/bin/python bench/night.py --size 200 --database sqlite --runs 1   # a smoke run (the test's)

The world (untimed): a sampled world (``epay.sample.world.generate_world``, the generator ``epay sample``
uses) of about ``size`` x 1.063 subscribers as of Wednesday 2026-11-25, so that about ``size``
instructions are due on the busy night ``D`` ten days later; its billing extract is left in the billing
drop folder, its mandates are in the ledger, the simulated post office has the accounts and mandates and
AT's SFTP account. It is made once per database and size, then copied for each run (the folder; on
PostgreSQL ``CREATE DATABASE ... TEMPLATE``), so every run starts from the same world.

The night, each stage a fresh process (``night.py --child STAGE``) on epay's settable clock
(``EPAY_CLOCK=file:...``, stopped at the stage's time, Africa/Algiers):

 1. ``billing load``      D 19:00  the extract checked and loaded (``jobs.load_extracts``)
 2. ``build``             D 20:00  selection, quality gate, PRLV files, ledger (``jobs.build``)
 3. ``upload``            D 20:30  SFTP to the post office's server on loopback (``jobs.send``)
 4. ``poste ACK``         D 20:35  the post office checks each PRLV and publishes its ACK
 5. ``inbound ACK``       D 20:40  download and apply of the ACKs (``jobs.receive``)
 6. ``status export D``   D 20:50  payment statuses for billing (``jobs.export_statuses``)
 7. ``poste execution``   S 23:30  the post office executes the settlement day S and publishes RETR,
                                   RELV and MNDT (``PostOffice.tick``)
 8. ``inbound returns``   S 23:40  download and apply of the RETR, RELV, MNDT (``jobs.receive``)
 9. ``status export S``   S 23:50  payment statuses after the returns
10. ``finance report``    S 23:55  the finance report of S, JSON and XLSX (``jobs.finance_summary``)

The post office's SFTP server runs in a process of its own from the upload to the last download (its
peak RSS is printed apart). A stage's *wall* is its process's whole life (interpreter start and imports
included, as for an Airflow task); *work* is the time inside the stage's call, measured by the child;
*peak RSS* is the child's own high-water mark (``os.wait4``). Medians, min and max over ``--runs``;
the machine's load average before and after each block. Figures only: nothing is judged or asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
AS_OF = date(2026, 11, 25)  # the world's date (a Wednesday)
SEED = 1
# bench/outbound.py: 1,100,000 subscribers give 1,034,559 instructions on the busy night
SUBSCRIBERS_PER_INSTRUCTION = 1_100_000 / 1_034_559
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Stage:
    name: str
    child: str  # the --child step
    day: str  # "D" (the night) or "S" (its settlement day)
    at: tuple[int, int]  # the clock, Algiers


STAGES = (
    Stage("billing load", "load", "D", (19, 0)),
    Stage("build", "build", "D", (20, 0)),
    Stage("upload", "send", "D", (20, 30)),
    Stage("poste ACK", "poste-ack", "D", (20, 35)),
    Stage("inbound ACK", "receive", "D", (20, 40)),
    Stage("status export D", "export", "D", (20, 50)),
    Stage("poste execution", "poste-tick", "S", (23, 30)),
    Stage("inbound returns", "receive", "S", (23, 40)),
    Stage("status export S", "export", "S", (23, 50)),
    Stage("finance report", "finance", "S", (23, 55)),
)
SERVER_FROM, SERVER_UNTIL = "upload", "inbound returns"


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "").replace(",", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1_000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    try:
        value = int(float(text) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 200, 100k, 1M, 3M)") from None
    if value < 50:
        raise argparse.ArgumentTypeError("--size must be at least 50")
    return value


def subscribers_for(size: int) -> int:
    return max(60, round(size * SUBSCRIBERS_PER_INSTRUCTION))


def night_of(calendar: Any) -> date:
    """The busy night: the first business day ten days after the world's date (every current bill due)."""
    day: date = calendar.next_business_day(AS_OF + timedelta(days=10))
    return day


# -- the children ------------------------------------------------------------------------------------


def child(step: str, day_text: str, subscribers: int) -> None:
    """One step in this process; prints one JSON line: the work's seconds and a short summary. With
    ``EPAY_BENCH_PROFILE=PATH`` the step runs under cProfile, its statistics written to PATH."""
    from epay.settings import Settings

    settings = Settings()
    day = date.fromisoformat(day_text) if day_text else settings.today()
    profile_to = os.environ.get("EPAY_BENCH_PROFILE")
    started = time.perf_counter()
    if profile_to:
        import cProfile

        with cProfile.Profile() as profile:
            summary = _step(settings, step, day, subscribers)
        profile.dump_stats(profile_to)
    else:
        summary = _step(settings, step, day, subscribers)
    print(json.dumps({"work": time.perf_counter() - started, "summary": summary}, default=str), flush=True)


def _step(settings: Any, step: str, day: date, subscribers: int) -> dict[str, Any]:
    from epay import jobs

    summary: dict[str, Any]
    if step == "world":
        summary = _world(settings, subscribers, day)
    elif step == "load":
        outcomes = jobs.load_extracts(settings, jobs.pending_extracts(settings, day), day)
        summary = {"extracts": [o.to_dict() for o in outcomes]}
        if any(o.quarantined for o in outcomes):
            raise SystemExit(f"an extract was quarantined: {summary}")
    elif step == "build":
        result = jobs.build(settings, day)
        summary = {
            "instructions": result.instruction_count,
            "files": [f.name for f in result.files],
            "settlement_date": result.settlement_date.isoformat(),
            "batch_state": result.batch_state,
        }
    elif step == "send":
        summary = {"sent": [str(s.get("name", s)) for s in jobs.send(settings, day)]}
    elif step == "poste-ack":
        summary = {"acknowledged": _office(settings).acknowledge_pending(not_after=settings.now())}
    elif step == "poste-tick":
        summary = {"published": _office(settings).tick(day).published}
    elif step == "receive":
        received = jobs.receive(settings, day)
        summary = {"received": [(r["name"], r["outcome"]) for r in received]}
        if any(r["outcome"] == "quarantined" for r in received):
            raise SystemExit(f"a file was quarantined: {received}")
    elif step == "export":
        summary = {"export": jobs.export_statuses(settings, day).name}
    elif step == "finance":
        summary = {"report": jobs.finance_summary(settings, day).name}
    else:
        raise SystemExit(f"unknown step {step}")
    return summary


def _office(settings: Any) -> Any:
    from epay.calendar import load_calendar
    from epay.poste.office import PostOffice
    from epay.poste.scenario import load_scenario

    return PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=load_calendar(settings.holidays_file),
        scenario=load_scenario(settings.poste_scenario_file),
    )


def _world(settings: Any, subscribers: int, signed_on: date) -> dict[str, Any]:
    """``epay sample`` without its ledger load of the extract (that load is the night's first stage), and
    with one mandate in a hundred signed at the post office's counter on ``signed_on`` instead: unknown to
    the ledger until the night's MNDT file brings it."""
    from epay.billing.extract import write_extract
    from epay.calendar import load_calendar
    from epay.ledger.db import open_ledger, transaction
    from epay.ledger.mandates import actions_from_snapshot, apply_mandate_actions
    from epay.poste.sftp_server import add_account, host_key_line, load_or_create_host_key
    from epay.sample.install import _operator_key, _pin_host_key
    from epay.sample.world import generate_world

    calendar = load_calendar(settings.holidays_file)
    world = generate_world(subscribers, seed=SEED, as_of=AS_OF, calendar=calendar)
    path = settings.billing_incoming_dir / f"BILL_{AS_OF:%Y%m%d}_01.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_extract(world.extract, path)
    poste_mandates = world.poste_mandates(settings.creditor_id)
    signed = poste_mandates.index % 100 == 7
    engine = open_ledger(settings.ledger_url)
    try:
        known = ~world.mandates["reference"].isin(poste_mandates.loc[signed, "reference"])
        with transaction(engine) as connection:
            apply_mandate_actions(
                connection, actions_from_snapshot(world.mandates[known]), actor="sample", business_date=AS_OF
            )
    finally:
        engine.dispose()
    office = _office(settings)
    office.add_creditor(settings.creditor_id, settings.creditor_name, settings.creditor_rip)
    accounts = office.add_accounts(world.accounts)
    office.add_mandates(poste_mandates[~signed], day=AS_OF, report=False)
    office.add_mandates(poste_mandates[signed], day=signed_on, report=True)
    key_file = _operator_key(settings)
    public = key_file.with_suffix(".pub").read_text(encoding="utf-8").strip()
    add_account(office.poste_dir, settings.sftp_username, settings.creditor_id, public)
    _pin_host_key(settings, key_file, host_key_line(load_or_create_host_key(office.poste_dir / "host_key")))
    return {
        "subscribers": subscribers,
        "mandates": len(world.mandates),
        "signed_at_the_counter": int(signed.sum()),
        "poste_accounts": accounts,
    }


def serve() -> None:
    """The post office's SFTP server until stdin closes (no ACK on arrival: that is a stage of its own)."""
    from epay.poste.sftp_server import PosteSftpServer
    from epay.settings import Settings

    settings = Settings()
    with PosteSftpServer(settings.poste_dir, port=0) as server:
        print(server.port, flush=True)
        sys.stdin.read()


# -- the parent --------------------------------------------------------------------------------------


@dataclass
class Measure:
    wall: float
    work: float
    peak_mb: float
    summary: dict[str, Any]


@dataclass
class Block:
    database: str
    size: int
    world: Measure | None = None
    runs: list[dict[str, Measure]] = field(default_factory=list)
    server_peak_mb: list[float] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    night: date | None = None
    settles: date | None = None

    @property
    def instructions(self) -> int:
        return int(self.runs[0]["build"].summary["instructions"]) if self.runs else 0


def run_child(argv: list[str], env: dict[str, str]) -> Measure:
    """A fresh process: its wall time, its own peak RSS (``wait4``), the JSON line it printed."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)  # reaped here: the rusage is this child's alone
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"{' '.join(argv[1:])} failed ({process.returncode}):\n{err.read()[-4000:]}")
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        result = json.loads(lines[-1])
        return Measure(wall, float(result["work"]), usage.ru_maxrss / 1024, result["summary"])


def me(*args: str) -> list[str]:
    return [PYTHON, str(Path(__file__).resolve()), *args]


def copy_databases(url: str, pairs: list[tuple[str, str]]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        for source, target in pairs:
            admin.execute(f"CREATE DATABASE {target} TEMPLATE {source}")


def drop_databases(url: str, names: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        for name in names:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def database_url(server: str, name: str) -> str:
    return server.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name


class Night:
    """One database and size: the world once, then ``runs`` nights on copies of it."""

    def __init__(
        self,
        database: str,
        size: int,
        pg_url: str,
        scratch: Path,
        echo: Callable[[str], None],
        profile: tuple[list[str], Path] | None = None,
    ):
        self.database, self.size, self.pg_url, self.echo = database, size, pg_url, echo
        self.profile = profile
        self.tag = f"epay_bench_night_{secrets.token_hex(5)}"
        self.folder = scratch / f"{database}-{size}"
        self.world_home = self.folder / "world"
        self.created: list[str] = []  # PostgreSQL databases this object made (dropped in close())

    def env(self, home: Path, databases: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EPAY_", "AIRFLOW"))}
        env |= {
            "EPAY_HOME": str(home),
            "EPAY_CLOCK": f"file:{home / 'clock.json'}",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        if databases:
            env["EPAY_DATABASE_URL"] = database_url(self.pg_url, f"{databases}_ledger")
            env["EPAY_POSTE_DATABASE_URL"] = database_url(self.pg_url, f"{databases}_poste")
        return env

    def set_clock(self, home: Path, day: date, hour: int, minute: int) -> None:
        from epay.clock import FileClock, algiers

        FileClock(home / "clock.json").set(algiers(day, hour, minute), speed=0)

    def make_world(self, night: date, settles: date) -> Measure:
        import psycopg

        self.world_home.mkdir(parents=True)
        self.set_clock(self.world_home, night, 19, 0)
        databases = None
        if self.database == "postgresql":
            databases = f"{self.tag}_w"
            with psycopg.connect(self.pg_url, autocommit=True) as admin:
                for part in ("ledger", "poste"):
                    self.created.append(f"{databases}_{part}")
                    admin.execute(f"CREATE DATABASE {databases}_{part}")
        return run_child(
            me(
                "--child",
                "world",
                "--day",
                settles.isoformat(),
                "--subscribers",
                str(subscribers_for(self.size)),
            ),
            self.env(self.world_home, databases),
        )

    def one_run(self, number: int, night: date, settles: date) -> tuple[dict[str, Measure], float]:
        home = self.folder / f"run{number}"
        shutil.copytree(self.world_home, home, symlinks=True)
        databases = None
        if self.database == "postgresql":
            databases = f"{self.tag}_r{number}"
            pairs = [(f"{self.tag}_w_{p}", f"{databases}_{p}") for p in ("ledger", "poste")]
            self.created += [target for _, target in pairs]
            copy_databases(self.pg_url, pairs)
        env = self.env(home, databases)
        measures: dict[str, Measure] = {}
        server: subprocess.Popen[str] | None = None
        server_peak = 0.0
        try:
            for stage in STAGES:
                if stage.name == SERVER_FROM:
                    server, port = self._start_server(env)
                    env["EPAY_SFTP_PORT"] = str(port)
                day = night if stage.day == "D" else settles
                self.set_clock(home, day, *stage.at)
                stage_env = env
                if self.profile and stage.name in self.profile[0]:
                    self.profile[1].mkdir(parents=True, exist_ok=True)
                    target = (
                        self.profile[1]
                        / f"{self.database}-{self.size}-run{number}-{stage.name.replace(' ', '-')}.prof"
                    )
                    stage_env = env | {"EPAY_BENCH_PROFILE": str(target.resolve())}
                measure = run_child(me("--child", stage.child, "--day", day.isoformat()), stage_env)
                measures[stage.name] = measure
                self.echo(
                    f"    {stage.name:<17} {measure.wall:8.2f} s  work {measure.work:8.2f} s  "
                    f"peak {measure.peak_mb:7.0f} MB  {_short(measure.summary)}"
                )
                if stage.name == SERVER_UNTIL and server is not None:
                    server_peak = self._stop_server(server)
                    server = None
        finally:
            if server is not None:
                self._stop_server(server)
            shutil.rmtree(home, ignore_errors=True)
            if databases:
                names = [f"{databases}_ledger", f"{databases}_poste"]
                drop_databases(self.pg_url, names)
                self.created = [n for n in self.created if n not in names]
        return measures, server_peak

    def _start_server(self, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
        server = subprocess.Popen(
            me("--serve"), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.strip().isdigit():
            server.kill()
            server.wait()
            raise SystemExit(f"the post office's SFTP server did not start: {line!r}")
        return server, int(line)

    @staticmethod
    def _stop_server(server: subprocess.Popen[str]) -> float:
        stdin: IO[str] | None = server.stdin
        if stdin is not None:
            stdin.close()
        try:
            _, _, usage = os.wait4(server.pid, 0)
        except ChildProcessError:
            return 0.0
        server.returncode = 0
        return usage.ru_maxrss / 1024

    def close(self) -> None:
        if self.created:
            drop_databases(self.pg_url, self.created)
            self.created = []
        shutil.rmtree(self.folder, ignore_errors=True)


def _short(summary: dict[str, Any]) -> str:
    text = json.dumps(summary, default=str)
    return text if len(text) <= 110 else text[:107] + "..."


def stage_names() -> list[str]:
    return [stage.name for stage in STAGES]


def print_block(block: Block) -> None:
    runs = block.runs
    print(
        f"\n== {block.database}, size {block.size:,}: {block.instructions:,} instructions, night "
        f"{block.night} (settles {block.settles}), {len(runs)} run(s)"
    )
    if block.world:
        print(f"   world (untimed in the night): {block.world.wall:.1f} s, peak {block.world.peak_mb:.0f} MB")
    print(
        f"   load average before {block.load_before[0]:.2f} / {block.load_before[1]:.2f} / "
        f"{block.load_before[2]:.2f}, after {block.load_after[0]:.2f} / {block.load_after[1]:.2f} / "
        f"{block.load_after[2]:.2f} (1 / 5 / 15 min; {os.cpu_count()} cores)"
    )
    header = (
        f"   {'stage':<18}{'wall median':>12}{'min':>9}{'max':>9}{'work median':>13}"
        f"{'peak RSS median':>17}{'max':>8}"
    )
    print(header)
    print("   " + "-" * (len(header) - 3))
    for name in stage_names():
        walls = [run[name].wall for run in runs]
        works = [run[name].work for run in runs]
        peaks = [run[name].peak_mb for run in runs]
        print(
            f"   {name:<18}{statistics.median(walls):>10.2f} s{min(walls):>8.2f}s{max(walls):>8.2f}s"
            f"{statistics.median(works):>11.2f} s{statistics.median(peaks):>13.0f} MB{max(peaks):>5.0f} MB"
        )
    totals = [sum(m.wall for m in run.values()) for run in runs]
    works = [sum(m.work for m in run.values()) for run in runs]
    peaks = [max(m.peak_mb for m in run.values()) for run in runs]
    print(
        f"   {'whole night':<18}{statistics.median(totals):>10.2f} s{min(totals):>8.2f}s{max(totals):>8.2f}s"
        f"{statistics.median(works):>11.2f} s{statistics.median(peaks):>13.0f} MB{max(peaks):>5.0f} MB"
    )
    if block.server_peak_mb:
        print(
            "   the post office's SFTP server (upload to last download): "
            f"peak {max(block.server_peak_mb):.0f} MB"
        )


def print_growth(small: Block, large: Block) -> None:
    linear = large.instructions / small.instructions if small.instructions else float("nan")
    print(
        f"\n== growth {small.database}: {small.instructions:,} -> {large.instructions:,} instructions "
        f"(linear: x{linear:.2f})"
    )
    print(f"   {'stage':<18}{'wall median':>24}{'time x':>9}{'/ linear':>10}{'peak RSS':>20}{'peak x':>8}")
    for name in [*stage_names(), "whole night"]:
        if name == "whole night":
            a = statistics.median(sum(m.wall for m in run.values()) for run in small.runs)
            b = statistics.median(sum(m.wall for m in run.values()) for run in large.runs)
            pa = statistics.median(max(m.peak_mb for m in run.values()) for run in small.runs)
            pb = statistics.median(max(m.peak_mb for m in run.values()) for run in large.runs)
        else:
            a = statistics.median(run[name].wall for run in small.runs)
            b = statistics.median(run[name].wall for run in large.runs)
            pa = statistics.median(run[name].peak_mb for run in small.runs)
            pb = statistics.median(run[name].peak_mb for run in large.runs)
        ratio = b / a if a else float("nan")
        print(
            f"   {name:<18}{a:>9.2f} s ->{b:>8.2f} s{ratio:>8.2f}x{ratio / linear:>9.2f}x"
            f"{pa:>7.0f} ->{pb:>6.0f} MB{pb / pa if pa else float('nan'):>7.2f}x"
        )


def bench(
    database: str, size: int, runs: int, pg_url: str, scratch: Path, profile: tuple[list[str], Path] | None
) -> Block:
    from epay.calendar import load_calendar

    calendar = load_calendar()
    night = night_of(calendar)
    settles: date = calendar.next_business_day(night)  # what the build reports (checked below)
    block = Block(database, size, night=night, settles=settles)
    echo = print
    nights = Night(database, size, pg_url, scratch, echo, profile)
    try:
        echo(f"\n-- {database}, size {size:,}: world of {subscribers_for(size):,} subscribers ...")
        block.world = nights.make_world(night, settles)
        echo(f"   world ready in {block.world.wall:.1f} s (peak {block.world.peak_mb:.0f} MB)")
        block.load_before = os.getloadavg()
        for number in range(1, runs + 1):
            echo(f"   run {number}/{runs} (load {os.getloadavg()[0]:.2f})")
            measures, server_peak = nights.one_run(number, night, settles)
            block.runs.append(measures)
            block.server_peak_mb.append(server_peak)
            if measures["build"].summary["settlement_date"] != settles.isoformat():
                raise SystemExit(f"the build settles on {measures['build'].summary['settlement_date']}")
        block.load_after = os.getloadavg()
    finally:
        nights.close()
    return block


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        action="append",
        help="instructions of the night: 100k, 1M, 3M (repeatable)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3, help="nights per database and size (medians)")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="a PostgreSQL server (databases made, dropped)")
    parser.add_argument("--json", type=Path, help="also write every measure to this file")
    parser.add_argument(
        "--profile",
        action="append",
        choices=[stage.name for stage in STAGES],
        help="run this stage under cProfile (its times then carry the profiler's cost; repeatable)",
    )
    parser.add_argument("--profile-dir", type=Path, default=REPO / "bench" / "out" / "night-profiles")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--day", default="", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.day, args.subscribers)
        return
    if args.serve:
        serve()
        return
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    sys.path.insert(0, str(REPO))
    profile = (list(args.profile), args.profile_dir) if args.profile else None
    sizes = sorted(set(args.size or [100_000]))
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"bench/night.py: sizes {', '.join(f'{s:,}' for s in sizes)}; {', '.join(databases)}; "
        f"{args.runs} run(s); commit {commit or '?'}; load average {os.getloadavg()[0]:.2f}; "
        f"{os.cpu_count()} cores; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        flush=True,
    )
    blocks: list[Block] = []
    with tempfile.TemporaryDirectory(prefix="epay-bench-night-") as scratch:
        for database in databases:
            for size in sizes:
                blocks.append(bench(database, size, args.runs, args.pg_url, Path(scratch), profile))
                print_block(blocks[-1])
                sys.stdout.flush()
    print("\n== summary")
    for block in blocks:
        print_block(block)
    for database in databases:
        mine = [b for b in blocks if b.database == database]
        for small, large in itertools.pairwise(mine):
            print_growth(small, large)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "database": b.database,
                        "size": b.size,
                        "instructions": b.instructions,
                        "night": str(b.night),
                        "load_before": b.load_before,
                        "load_after": b.load_after,
                        "world": b.world.__dict__ if b.world else None,
                        "server_peak_mb": b.server_peak_mb,
                        "runs": [{k: m.__dict__ for k, m in run.items()} for run in b.runs],
                    }
                    for b in blocks
                ],
                default=str,
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
