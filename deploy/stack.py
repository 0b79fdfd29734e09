"""A production-shaped epay stack on one machine: ``python -m deploy.stack up|down|status`` (``make stack``).

It starts Airflow 3.3's real components — ``api-server``, ``scheduler``, ``dag-processor``,
``triggerer`` and the CeleryExecutor's workers (``airflow celery worker``, each in its own working folder
with its own TMPDIR) — with PostgreSQL as Airflow's metadata database and as epay's ledger (two
databases of the stack's own), Redis as the Celery broker (a db number of the stack's own), and the
simulated Algérie Poste serving SFTP on the shared clock (``epay poste serve --end-of-day-every``).

Everything the stack writes is under ``var/stack/<name>/`` (git-ignored):

- ``secrets.json`` and ``passwords.json`` (mode 0600): JWT secret, API secret key, Fernet key and the
  passwords of ``admin`` and ``finance`` (who sees the finance page and nothing else: docs/finance.md),
  generated once per stack, never printed;
- ``env.sh`` (mode 0600): the environment of every component; ``. var/stack/<name>/env.sh`` and the
  ``airflow`` and ``epay`` commands of the runbook talk to this stack;
- ``home/``: ``EPAY_HOME``, the shared storage every worker and the api-server read and write (files,
  billing drops, reports, alerts, ``clock.json``, the simulated post office's world);
- ``airflow/``: ``AIRFLOW_HOME``; ``logs/``: each component's output and the task logs;
- ``workers/w1``, ``workers/w2``: each worker's own working folder and ``tmp/`` (never shared).

Ports come from a base (default 28080): api-server = base, SFTP = base+1, triggerer log server = base+2,
scheduler log server = base+3, worker i's log server = base+3+i. A second stack takes another name and
base. Every process started carries ``DEPLOY_STACK_FOLDER=<its stack folder>`` in its environment:
``down`` stops exactly those (process groups, SIGTERM then SIGKILL), nothing found by name.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKER = "DEPLOY_STACK_FOLDER"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,20}$")
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
DAG_IDS = ("epay_debit_outbound", "epay_inbound")
Echo = Callable[[str], None]


class StackError(Exception):
    """The stack cannot be started or stopped as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Stack:
    """One stack: its name, ports, databases and sizing. Defaults fit a 2-core machine."""

    name: str = "dev"
    port_base: int = 28080
    redis_db: int = 7
    postgres: str = "postgresql://postgres@127.0.0.1:5432"  # the server; the stack adds its databases
    maintenance_db: str = "postgres"
    redis: str = "redis://127.0.0.1:6379"
    workers: int = 2
    worker_concurrency: int = 2  # task processes per worker: one per core
    parallelism: int = 4  # task instances running at once, all workers together
    poke_seconds: int = 30  # EPAY_SENSOR_POKE_SECONDS: how often the DAGs' sensors look again
    retry_delay_seconds: int = 120  # EPAY_RETRY_DELAY_SECONDS: the debit run's wait before a task's retry
    heartbeat_timeout: int = 300  # a task silent this long (its worker died) is failed by the scheduler
    end_of_day_every: float = 5.0  # the post office closes each day the clock has left, looking this often
    real_schedule: bool = False  # cron schedules on the real clock; off while the world is simulated
    sample_subscribers: int = 2000
    sample_seed: int = 1
    world_starts: str = "2026-11-25"
    clock_at: str = "2026-11-25T19:00:00+01:00"  # the shared clock when the world is new (stopped)
    var: Path = field(default=REPO / "var" / "stack")

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"stack name {self.name!r}: lower-case letters, digits and _, at most 21")
        if not 1024 <= self.port_base <= 65000:
            raise ValueError(f"port base {self.port_base}: between 1024 and 65000")
        if not 0 <= self.redis_db <= 15:
            raise ValueError(f"redis db {self.redis_db}: between 0 and 15")
        if self.workers < 1 or self.worker_concurrency < 1 or self.parallelism < 1:
            raise ValueError("workers, worker concurrency and parallelism must be at least 1")

    # -- where things are ---------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.var / self.name

    @property
    def airflow_home(self) -> Path:
        return self.folder / "airflow"

    @property
    def epay_home(self) -> Path:
        return self.folder / "home"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def env_file(self) -> Path:
        return self.folder / "env.sh"

    @property
    def passwords_file(self) -> Path:
        return self.folder / "passwords.json"

    def worker_folder(self, number: int) -> Path:
        return self.folder / "workers" / f"w{number}"

    # -- ports and databases --------------------------------------------------------------------------
    @property
    def api_port(self) -> int:
        return self.port_base

    @property
    def sftp_port(self) -> int:
        return self.port_base + 1

    def worker_log_port(self, number: int) -> int:
        return self.port_base + 3 + number

    def ports(self) -> dict[str, int]:
        ports = {
            "api-server": self.api_port,
            "sftp (simulated post office)": self.sftp_port,
            "triggerer log server": self.port_base + 2,
            "scheduler log server": self.port_base + 3,
        }
        ports |= {f"worker w{i} log server": self.worker_log_port(i) for i in self.worker_numbers()}
        return ports

    def worker_numbers(self) -> range:
        return range(1, self.workers + 1)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def airflow_db(self) -> str:
        return f"epay_stack_{self.name}_airflow"

    @property
    def ledger_db(self) -> str:
        return f"epay_stack_{self.name}_ledger"

    def database_url(self, database: str) -> str:
        return f"{self.postgres.replace('postgresql://', 'postgresql+psycopg://', 1)}/{database}"


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]


# -- secrets ----------------------------------------------------------------------------------------------
def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def ensure_secrets(stack: Stack) -> dict[str, str]:
    """The stack's secrets, generated on its first start and kept (mode 0600) in its folder."""
    path = stack.folder / "secrets.json"
    if path.exists():
        kept: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        if "finance_password" in kept:
            return kept
        values = {**kept, "finance_password": secrets.token_urlsafe(18)}  # a stack older than the user
    else:
        values = {
            "jwt_secret": secrets.token_urlsafe(48),
            "api_secret_key": secrets.token_urlsafe(48),
            "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "admin_password": secrets.token_urlsafe(18),
            "finance_password": secrets.token_urlsafe(18),
        }
    _write_private(path, json.dumps(values, indent=1) + "\n")
    # SimpleAuthManager reads its users' passwords from this file (and keeps a password it finds there).
    passwords = {"admin": values["admin_password"], "finance": values["finance_password"]}
    _write_private(stack.passwords_file, json.dumps(passwords) + "\n")
    return values


# -- the environment of every component ---------------------------------------------------------------
def environment(stack: Stack, secret: dict[str, str]) -> dict[str, str]:
    """What every component (and a data engineer's shell, through env.sh) runs with."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "_AIRFLOW", "EPAY_", MARKER))
    }
    metadata = stack.database_url(stack.airflow_db)
    settings = {
        "AIRFLOW_HOME": str(stack.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(stack.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(stack.parallelism),
        # Deliberate: the stack's DAGs are unpaused when first parsed (and `up` unpauses them), because
        # with the real-clock schedule off (below) nothing runs unless a backfill or a trigger asks.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
        # SimpleAuthManager plus a finance role that sees the finance page and nothing else
        "AIRFLOW__CORE__AUTH_MANAGER": "epay.finance_web.auth.FinanceAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,finance:finance",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(stack.passwords_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{stack.api_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        # Without this, `airflow db migrate` on PostgreSQL looks for asyncpg (not installed): psycopg 3
        # is async too.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata,
        "AIRFLOW__API__BASE_URL": stack.api_url,  # log links, the alert's log_url
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(stack.api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secret["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
        "AIRFLOW__CELERY__BROKER_URL": f"{stack.redis}/{stack.redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(stack.worker_concurrency),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(stack.logs / "airflow"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(stack.port_base + 3),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(stack.port_base + 2),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(stack.real_schedule),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(stack.heartbeat_timeout),
        "AIRFLOW_API_USERNAME": "admin",
        "EPAY_HOME": str(stack.epay_home),
        "EPAY_DATABASE_URL": stack.database_url(stack.ledger_db),
        "EPAY_CLOCK": "file",
        "EPAY_SFTP_HOST": "127.0.0.1",
        "EPAY_SFTP_PORT": str(stack.sftp_port),
        "EPAY_SENSOR_POKE_SECONDS": str(stack.poke_seconds),
        "EPAY_RETRY_DELAY_SECONDS": str(stack.retry_delay_seconds),
        MARKER: str(stack.folder),
    }
    return inherited | settings


def write_env_file(stack: Stack, env: dict[str, str]) -> None:
    lines = [
        f"# The environment of stack {stack.name!r} (secrets inside: mode 0600, never commit or print it).",
        f"# Source it: `. {stack.env_file}`, then the runbook's airflow and epay commands use this stack.",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items()) if _exported(key)]
    lines.append(f'export PATH={shlex.quote(str(BIN))}:"$PATH"')
    _write_private(stack.env_file, "\n".join(lines) + "\n")


def _exported(key: str) -> bool:
    return key.startswith(("AIRFLOW", "EPAY_"))


# -- databases and broker -----------------------------------------------------------------------------
def _created_file(stack: Stack) -> Path:
    return stack.var / f"{stack.name}.created-databases.json"


def ensure_databases(stack: Stack, echo: Echo) -> None:
    """Create the stack's two databases when missing, and note which ones the stack created."""
    import psycopg
    from psycopg import sql

    record = _created_file(stack)
    created: list[str] = json.loads(record.read_text()) if record.exists() else []
    try:
        with psycopg.connect(f"{stack.postgres}/{stack.maintenance_db}", autocommit=True) as connection:
            for database in (stack.airflow_db, stack.ledger_db):
                found = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if found is None:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                    created.append(database)
                    echo(f"  PostgreSQL: created database {database}")
    except psycopg.OperationalError as error:
        raise StackError(f"cannot reach PostgreSQL at {stack.postgres}: {error}".strip()) from None
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(sorted(set(created))) + "\n")


def drop_created_databases(stack: Stack, echo: Echo) -> None:
    """Drop the databases this stack created (never one it found already there)."""
    import psycopg
    from psycopg import sql

    record = _created_file(stack)
    if not record.exists():
        return
    created: list[str] = json.loads(record.read_text())
    with psycopg.connect(f"{stack.postgres}/{stack.maintenance_db}", autocommit=True) as connection:
        for database in created:
            if database in (stack.airflow_db, stack.ledger_db):
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
                )
                echo(f"  PostgreSQL: dropped database {database} (created by this stack)")
    record.unlink()


def flush_broker(stack: Stack) -> None:
    """Empty the stack's own Redis db (left-over Celery messages of a previous stack)."""
    import redis

    client = redis.Redis.from_url(f"{stack.redis}/{stack.redis_db}")
    try:
        client.flushdb()
    finally:
        client.close()


# -- processes ----------------------------------------------------------------------------------------
def components(stack: Stack, env: dict[str, str]) -> list[Component]:
    airflow = str(BIN / "airflow")
    found = [
        Component(
            "poste",
            [
                str(BIN / "epay"),
                "poste",
                "serve",
                "--port",
                str(stack.sftp_port),
                "--end-of-day-every",
                f"{stack.end_of_day_every:g}",
            ],
            stack.folder,
            env,
        ),
        Component("api-server", [airflow, "api-server", "--port", str(stack.api_port)], stack.folder, env),
        Component("scheduler", [airflow, "scheduler"], stack.folder, env),
        Component("dag-processor", [airflow, "dag-processor"], stack.folder, env),
        Component("triggerer", [airflow, "triggerer"], stack.folder, env),
    ]
    for number in stack.worker_numbers():
        folder = stack.worker_folder(number)
        worker_env = env | {
            "TMPDIR": str(folder / "tmp"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(stack.worker_log_port(number)),
        }
        argv = [airflow, "celery", "worker", "-H", f"w{number}@{stack.name}"]
        argv += ["-c", str(stack.worker_concurrency)]
        found.append(Component(f"worker-w{number}", argv, folder, worker_env))
    return found


def start(component: Component, logs: Path) -> subprocess.Popen[bytes]:
    component.cwd.mkdir(parents=True, exist_ok=True)
    if "TMPDIR" in component.env:
        Path(component.env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    with (logs / f"{component.name}.log").open("ab") as log:
        return subprocess.Popen(
            component.argv,
            cwd=component.cwd,
            env=component.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
        )


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    group: int
    session: int
    zombie: bool


def _processes() -> dict[int, _Proc]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        found[pid] = _Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0] == "Z")
    return found


def _marked(pid: int, wanted: bytes) -> bool:
    try:
        return wanted in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def stack_processes(stack: Stack) -> list[int]:
    """Every live process started for this stack: in the session of a component it started (each
    component is started as a session leader), descended from one, or carrying the stack's marker in
    its environment (a process that renames itself may overwrite that, hence the other two)."""
    leaders = set(_read_state(stack).values())
    wanted = f"{MARKER}={stack.folder}".encode()
    table = _processes()
    found = []
    for proc in table.values():
        if proc.zombie or proc.pid == os.getpid():
            continue
        ours = proc.session in leaders or _marked(proc.pid, wanted)
        ancestor, hops = proc.ppid, 0
        while not ours and ancestor > 1 and hops < 64:
            ours = ancestor in leaders
            parent = table.get(ancestor)
            ancestor, hops = (parent.ppid if parent else 0), hops + 1
        if ours:
            found.append(proc.pid)
    return sorted(found)


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    own_group = os.getpgrp()
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    for group in groups - {own_group}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signum)
    for pid in pids:  # a process that left its group (or shares ours) is signalled by its id
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def down(stack: Stack, echo: Echo = print, grace_seconds: float = 30.0) -> None:
    """Stop every process of the stack: SIGTERM to their process groups, SIGKILL what is left."""
    pids = stack_processes(stack)
    if not pids:
        _state_file(stack).unlink(missing_ok=True)
        echo(f"stack {stack.name}: nothing running")
        return
    echo(f"stack {stack.name}: stopping {len(pids)} processes")
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and stack_processes(stack):
        time.sleep(0.5)
    left = stack_processes(stack)
    if left:
        echo(f"stack {stack.name}: {len(left)} processes still there after {grace_seconds:g} s: SIGKILL")
        _signal_all(left, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and stack_processes(stack):
            time.sleep(0.2)
    if not stack_processes(stack):
        _state_file(stack).unlink(missing_ok=True)  # its process ids mean nothing any more
    echo(f"stack {stack.name}: stopped")


def kill_component(stack: Stack, name: str, signum: signal.Signals = signal.SIGKILL) -> list[int]:
    """Signal one component's process group (e.g. SIGKILL a worker, as if its machine died)."""
    pids = _component_pids(stack, name)
    if not pids:
        raise StackError(f"stack {stack.name}: no running component {name!r}")
    _signal_all(pids, signum)
    return pids


def _component_pids(stack: Stack, name: str) -> list[int]:
    """The live processes of one component: its session (it was started as the session leader) and
    whatever descends from it (a task process that started a session of its own)."""
    leader = _read_state(stack).get(name)
    if leader is None:
        return []
    table = _processes()

    def descends(proc: _Proc) -> bool:
        ancestor, hops = proc.ppid, 0
        while ancestor > 1 and hops < 64:
            if ancestor == leader:
                return True
            parent = table.get(ancestor)
            ancestor, hops = (parent.ppid if parent else 0), hops + 1
        return False

    return [
        p.pid
        for p in table.values()
        if not p.zombie and (p.session == leader or p.pid == leader or descends(p))
    ]


def start_component(stack: Stack, name: str) -> None:
    """Start one component again (e.g. the post office after an outage, a worker after a crash)."""
    env = environment(stack, ensure_secrets(stack))
    chosen = [c for c in components(stack, env) if c.name == name]
    if not chosen:
        raise StackError(f"no component {name!r}")
    if _component_pids(stack, name):
        raise StackError(f"stack {stack.name}: {name} is already running")
    process = start(chosen[0], stack.logs)
    _write_state(stack, _read_state(stack) | {name: process.pid})


def _state_file(stack: Stack) -> Path:
    return stack.folder / "processes.json"


def _read_state(stack: Stack) -> dict[str, int]:
    path = _state_file(stack)
    if not path.exists():
        return {}
    state: dict[str, int] = json.loads(path.read_text())
    return state


def _write_state(stack: Stack, state: dict[str, int]) -> None:
    _state_file(stack).write_text(json.dumps(state, indent=1) + "\n")


# -- start --------------------------------------------------------------------------------------------
def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is free
        try:
            probe.bind(("0.0.0.0", port))  # log servers listen on every interface
        except OSError:
            return False
    return True


def _run(argv: list[str], env: dict[str, str], log: Path, what: str, timeout: float = 300.0) -> None:
    with log.open("ab") as output:
        done = subprocess.run(
            argv, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if done.returncode:
        raise StackError(f"{what} failed (exit {done.returncode}); see {log}")


def up(stack: Stack, echo: Echo = print, fresh: bool = False, timeout: float = 300.0) -> float:
    """Start the stack and wait until it is ready; returns the seconds it took."""
    started = time.monotonic()
    running = stack_processes(stack)
    if running:
        raise StackError(
            f"stack {stack.name} is already running ({len(running)} processes): "
            f"`make stack-down STACK={stack.name}` first"
        )
    taken = [f"{what} {port}" for what, port in stack.ports().items() if not _port_free(port)]
    if taken:
        raise StackError(f"ports in use: {', '.join(taken)}; choose another base (PORT_BASE=…)")
    if fresh:
        echo(f"stack {stack.name}: starting from scratch")
        drop_created_databases(stack, echo)
        flush_broker(stack)
        shutil.rmtree(stack.folder, ignore_errors=True)
    for folder in (stack.airflow_home, stack.epay_home, stack.logs / "airflow"):
        folder.mkdir(parents=True, exist_ok=True)
    secret = ensure_secrets(stack)
    env = environment(stack, secret)
    write_env_file(stack, env)
    ensure_databases(stack, echo)
    log = stack.logs / "setup.log"
    echo("  airflow db migrate …")
    _run([str(BIN / "airflow"), "db", "migrate"], env, log, "airflow db migrate")
    epay = str(BIN / "epay")
    if not (stack.epay_home / "clock.json").exists():  # every epay process reads it, the sample too
        _run([epay, "clock", "set", "--at", stack.clock_at, "--speed", "0"], env, log, "epay clock set")
    _run([epay, "db", "upgrade"], env, log, "epay db upgrade")
    if not (stack.epay_home / "epay.toml").exists():
        echo(f"  epay sample --subscribers {stack.sample_subscribers} (a world as of {stack.world_starts})")
        sample = ["sample", "--subscribers", str(stack.sample_subscribers), "--seed", str(stack.sample_seed)]
        _run([epay, *sample, "--as-of", stack.world_starts], env, log, "epay sample")
    state: dict[str, int] = {}
    try:
        for component in components(stack, env):
            state[component.name] = start(component, stack.logs).pid
            _write_state(stack, state)
        echo(f"  started {', '.join(state)}")
        wait_ready(stack, echo, timeout - (time.monotonic() - started))
    except BaseException:
        echo(f"stack {stack.name} did not come up; its logs are in {stack.logs}")
        down(stack, echo)
        raise
    seconds = time.monotonic() - started
    echo(f"stack {stack.name} ready in {seconds:.0f} s")
    for line in describe(stack):
        echo(line)
    return seconds


def describe(stack: Stack) -> list[str]:
    return [
        f"  UI and REST API: {stack.api_url}  (user admin, password in {stack.passwords_file})",
        f"  finance page: {stack.api_url}/epay-finance/  (user finance, same file)",
        *(f"  {what}: {port}" for what, port in stack.ports().items()),
        f"  metadata db {stack.airflow_db}, ledger {stack.ledger_db}, broker {stack.redis}/{stack.redis_db}",
        f"  shared storage (EPAY_HOME): {stack.epay_home}",
        f"  shell: . {stack.env_file}   then airflow …, epay …  (epay clock set --at … moves the world)",
    ]


def _health(stack: Stack) -> dict[str, str]:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{stack.api_url}/api/v2/monitor/health", timeout=5) as response:
            document: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError):
        return {"api-server": "down"}
    return {part: str((value or {}).get("status")) for part, value in document.items()}


def _celery_ping(stack: Stack, env: dict[str, str]) -> set[str]:
    """The workers that answer a Celery ping through Airflow's Celery app."""
    done = subprocess.run(
        [str(BIN / "celery"), "--app", CELERY_APP, "inspect", "ping", "--timeout", "3", "--json"],
        env=env,
        cwd=stack.folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                replies: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            return {name for name, reply in replies.items() if reply.get("ok") == "pong"}
    return set()


def _dags_ready(stack: Stack) -> list[str]:
    """The epay DAGs parsed by the dag-processor; unpauses any that is paused (the stack's own use)."""
    from epay.airflow_rest import AirflowApi, AirflowApiError

    password = json.loads(stack.passwords_file.read_text())["admin"]
    api = AirflowApi(stack.api_url, "admin", password)
    try:
        found = {d["dag_id"]: d for d in api.get("/api/v2/dags", dag_id_pattern="epay_", limit=100)["dags"]}
        for dag_id, dag in found.items():
            if dag.get("is_paused"):
                api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
    except AirflowApiError:
        return []
    return sorted(dag_id for dag_id in found if dag_id in DAG_IDS)


def wait_ready(stack: Stack, echo: Echo, timeout: float) -> None:
    """Wait for /api/v2/monitor/health all healthy, every worker answering a Celery ping and the epay
    DAGs parsed and unpaused; fail at once when a component dies."""
    env = environment(stack, ensure_secrets(stack))
    workers = {f"w{i}@{stack.name}" for i in stack.worker_numbers()}
    deadline = time.monotonic() + timeout
    last = ""
    health: dict[str, str] = {}
    answered: set[str] = set()
    dags: list[str] = []
    while True:
        state = _read_state(stack)
        dead = [name for name in state if not _component_pids(stack, name)]
        if dead:
            tails = "\n".join(f"--- {name}\n{_tail(stack.logs / f'{name}.log')}" for name in dead)
            raise StackError(f"stack {stack.name}: {', '.join(dead)} stopped while starting\n{tails}")
        health = _health(stack)
        healthy = bool(health) and all(status == "healthy" for status in health.values())
        if healthy and answered != workers:
            answered = _celery_ping(stack, env)
        if healthy and answered == workers and len(dags) < len(DAG_IDS):
            dags = _dags_ready(stack)
        progress = (
            "  waiting: "
            + ", ".join(f"{part} {status}" for part, status in sorted(health.items()))
            + f"; celery workers {len(answered)}/{len(workers)}; epay DAGs {len(dags)}/{len(DAG_IDS)}"
        )
        if progress != last:
            echo(progress)
            last = progress
        if healthy and answered == workers and len(dags) == len(DAG_IDS):
            return
        if time.monotonic() > deadline:
            raise StackError(f"stack {stack.name} not ready in time: {progress.strip()}")
        time.sleep(2)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def status(stack: Stack, echo: Echo = print) -> bool:
    """Print each component's state and the health document; True when everything runs."""
    state = _read_state(stack)
    if not state:
        echo(f"stack {stack.name}: never started here ({stack.folder})")
        return False
    alive = True
    for name in state:
        pids = _component_pids(stack, name)
        alive &= bool(pids)
        echo(f"  {name}: {'running, ' + str(len(pids)) + ' processes' if pids else 'stopped'}")
    echo("  health: " + ", ".join(f"{k} {v}" for k, v in sorted(_health(stack).items())))
    for line in describe(stack):
        echo(line)
    return alive


# -- command line -------------------------------------------------------------------------------------
def stack_from_arguments(arguments: argparse.Namespace) -> Stack:
    return Stack(name=arguments.name, port_base=arguments.port_base, redis_db=arguments.redis_db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--name", default=os.environ.get("STACK", "dev"), help="default: $STACK or dev")
    parser.add_argument("--port-base", type=int, default=28080, help="api-server port; the others follow")
    parser.add_argument("--redis-db", type=int, default=7, help="the Redis db number of this stack's broker")
    parser.add_argument("--fresh", action="store_true", help="up: drop what this stack created, start anew")
    arguments = parser.parse_args(argv)
    try:
        stack = stack_from_arguments(arguments)
    except ValueError as error:
        parser.error(str(error))  # exit status 2
    try:
        if arguments.action == "up":
            up(stack, fresh=arguments.fresh)
        elif arguments.action == "down":
            down(stack)
        else:
            return 0 if status(stack) else 1
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
