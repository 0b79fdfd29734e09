"""The e2e tier's stack: started once per session through the same code as ``make stack`` (its own name,
ports, PostgreSQL databases and Redis db), stopped at the end whatever happened (process groups)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from deploy.stack import Stack, StackError, down, drop_created_databases, up
from epay.airflow_rest import AirflowApi
from tests.e2e.helpers import Background, Runbook, api_of, end_state, reference_world

SUBSCRIBERS = 300
SEED = 1
FIRST, LAST = date(2026, 11, 25), date(2026, 11, 30)

# A name of its own per session: its databases are created by this session and dropped at its end, never
# one left on the server by an earlier run or another checkout (CI runs where the session ran).
E2E_STACK = Stack(
    name=f"e2e_{secrets.token_hex(3)}",
    port_base=int(os.environ.get("EPAY_E2E_PORT_BASE", "28180")),
    redis_db=int(os.environ.get("EPAY_E2E_REDIS_DB", "8")),
    poke_seconds=3,  # the sensors look again every 3 s (production: 30)
    retry_delay_seconds=10,  # a failed task's retry comes after 10 s (production: 2 min)
    heartbeat_timeout=30,  # a killed worker's task is noticed after 30 s (production: 300)
    end_of_day_every=1.0,
    sample_subscribers=SUBSCRIBERS,
    sample_seed=SEED,
    world_starts=FIRST.isoformat(),
)


def _services_missing(stack: Stack) -> str | None:
    import psycopg
    import redis

    try:
        psycopg.connect(f"{stack.postgres}/{stack.maintenance_db}", connect_timeout=3).close()
        client = redis.Redis.from_url(f"{stack.redis}/{stack.redis_db}", socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (psycopg.OperationalError, redis.exceptions.RedisError) as error:
        return f"the e2e stack needs PostgreSQL ({stack.postgres}) and Redis ({stack.redis}): {error}"
    return None


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """The end state of the same nights run with ``airflow dags test`` (SQLite ledger, same world),
    computed in the background from the start of the session."""
    folder: Path = tmp_path_factory.mktemp("reference")

    def work() -> dict[str, object]:
        ledger_url, home, _ = reference_world(folder, SUBSCRIBERS, SEED, FIRST, LAST)
        return end_state(ledger_url, home)

    job = Background(work)
    yield job
    job.thread.join()  # never leave its `airflow dags test` running after the session


@pytest.fixture(scope="session")
def stack(reference: Background) -> Iterator[Stack]:
    missing = _services_missing(E2E_STACK)
    if missing:
        if os.environ.get("EPAY_REQUIRE_POSTGRES"):
            pytest.fail(missing)
        pytest.skip(missing)
    progress: list[str] = []
    down(E2E_STACK, echo=progress.append)  # what an interrupted session of this tier may have left
    try:
        up(E2E_STACK, echo=progress.append, fresh=True)
    except StackError as error:
        pytest.fail(f"the e2e stack did not start: {error}\n" + "\n".join(progress))
    try:
        yield E2E_STACK
    finally:
        down(E2E_STACK, echo=progress.append)
        drop_created_databases(E2E_STACK, progress.append)  # only the two this session created


@pytest.fixture(scope="session")
def api(stack: Stack) -> AirflowApi:
    return api_of(stack)


@pytest.fixture(scope="session")
def runbook(stack: Stack) -> Runbook:
    return Runbook(stack)
