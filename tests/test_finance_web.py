"""The finance page in a real browser (issue #15), with figures read off the page and compared with the
independent count from the exchanged files (``tests/finance_count.py``).

The ledger is the finance world (``tests/finance_world.py``: late returns, two nights rejected DT01 and
re-filed, a weekend, a holiday, a missing and a hand-edited RELV). ``airflow api-server`` runs in a
subprocess with a throw-away AIRFLOW_HOME and epay's auth manager (``epay.finance_web.auth``:
SimpleAuthManager plus a ``finance`` role), users ``finance`` (role finance), ``admin`` and ``viewer``.
Airflow is never imported in this process (it rewires logging).

Checked in Debian's chromium through Playwright: signed out, the page sends the browser to Airflow's login
page and back; the finance user reads both views (index and a date's page) and downloads the XLSX, and
Airflow's own API refuses them everything else; the admin sees the page inside Airflow's UI; a viewer is
refused the page. The empty, one-day and only-late-debits states are rendered by the same app and read in
the same browser. Screenshots of the index and of a date's page are written to the test artifacts folder
(``$EPAY_TEST_ARTIFACTS``, default ``var/test-artifacts/finance-web/``), listed in the output and in the
test's report properties.

Chromium is ``/usr/bin/chromium`` (CI installs it); without it these tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from epay.ledger.db import open_ledger
from tests.airflow_helpers import PYTHON, REPO, airflow_env, run
from tests.finance_count import Files, cash_count, read_files, settlement_count
from tests.finance_world import (
    AS_OF,
    BROKEN_DAY,
    MISSING_RELV_DAY,
    ONLY_LATE_DAYS,
    PENDING_DAY,
    RECONCILED_DAY,
    World,
    world_for,
)

CHROMIUM = Path("/usr/bin/chromium")
PASSWORDS = {"finance": "finance-Test-0fb3c7", "admin": "admin-Test-9d1e22", "viewer": "viewer-Test-41aa07"}
ROLES = {"finance": "finance", "admin": "admin", "viewer": "viewer"}
AUTH_MANAGER = "epay.finance_web.auth.FinanceAuthManager"
PLUGIN_ENTRY_POINT = "epay.finance_web.plugin:EpayFinancePlugin"
DAY_SHOWN = MISSING_RELV_DAY  # nothing presented (DT01), only late debits, no statement: the hard case


def artifacts() -> Path:
    folder = Path(os.environ.get("EPAY_TEST_ARTIFACTS", REPO / "var" / "test-artifacts")) / "finance-web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep(request: pytest.FixtureRequest, path: Path, what: str) -> None:
    """A screenshot attached to the test run: its path printed and in the report's properties."""
    print(f"\n{what}: {path}")
    request.node.user_properties.append((what, str(path)))


def centimes(text: str) -> int:
    """An amount as the page shows it ('1\u00a0234.56\u00a0DZD') back to integer centimes."""
    cleaned = text.replace("\u00a0", "").replace(" ", "").removesuffix("DZD")
    assert re.fullmatch(r"-?\d+\.\d\d", cleaned), text
    return int(Decimal(cleaned).scaleb(2))


# --- the api-server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    world: World
    files: Files


@pytest.fixture(scope="module")
def finance_world(request: pytest.FixtureRequest) -> World:
    return world_for(request, "sqlite")


@pytest.fixture(scope="module")
def server(finance_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    registered = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert registered.get("epay_finance") == PLUGIN_ENTRY_POINT, (
        "the finance plugin is not registered: pyproject.toml needs\n"
        '[project.entry-points."airflow.plugins"]\n'
        f'epay_finance = "{PLUGIN_ENTRY_POINT}"\nthen `uv sync` (found: {registered})'
    )
    airflow_home = tmp_path_factory.mktemp("airflow-home")
    (airflow_home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps(PASSWORDS) + "\n", encoding="utf-8"
    )
    settings = finance_world.settings
    env = airflow_env(
        airflow_home,
        AIRFLOW__CORE__AUTH_MANAGER=AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{r}" for u, r in ROLES.items()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__API_AUTH__JWT_SECRET=os.urandom(32).hex(),
        EPAY_HOME=settings.home,
        EPAY_DATABASE_URL=settings.ledger_url,
        EPAY_HOLIDAYS_FILE=settings.holidays_file,
        EPAY_CLOCK=f"{AS_OF.isoformat()}T23:00:00+01:00",  # "today" for the page: the world's last day
    )
    run(["airflow", "db", "migrate"], env)
    port = free_port()
    log = airflow_home / "api-server.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [PYTHON, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port), "-w", "1"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (
                f"api-server exited {process.returncode}:\n{log.read_text()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"api-server not up in 90 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield Server(url=url, log=log, world=finance_world, files=read_files(settings.home))
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: uvicorn and its worker
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def fetch(url: str, token: str | None = None, accept: str | None = None) -> tuple[int, str]:
    """(status, Location header) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if accept:
        request.add_header("Accept", accept)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as error:
        return error.code, str(error.headers.get("Location", ""))


def token_for(server: Server, user: str, password: str) -> str | None:
    request = urllib.request.Request(
        f"{server.url}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            token: str = json.load(response)["access_token"]
            return token
    except urllib.error.HTTPError:
        return None


# --- access ------------------------------------------------------------------------------------------
AIRFLOW_ELSEWHERE = (
    "/api/v2/dags",
    "/api/v2/dags/epay_debit_outbound/dagRuns",
    "/api/v2/connections",
    "/api/v2/variables",
    "/api/v2/pools",
    "/api/v2/plugins",
    "/api/v2/importErrors",
    "/api/v2/eventLogs",
)


def test_access_through_the_auth_manager(server: Server) -> None:
    day = DAY_SHOWN.isoformat()
    pages = ("/epay-finance/", f"/epay-finance/day/{day}", f"/epay-finance/day/{day}/download.xlsx")
    for path in pages:
        status, location = fetch(server.url + path, accept="text/html,application/xhtml+xml")
        assert status == 303 and location.startswith("/auth/login?next="), (path, status, location)
        assert fetch(server.url + path)[0] == 401, path  # an API client: no redirect, 401
    assert token_for(server, "finance", "wrong password") is None
    assert fetch(f"{server.url}/epay-finance/", token="not-a-token")[0] in (401, 403)
    tokens = {user: token_for(server, user, password) for user, password in PASSWORDS.items()}
    assert all(tokens.values())
    finance, admin, viewer = tokens["finance"], tokens["admin"], tokens["viewer"]
    for path in (
        *pages,
        f"/epay-finance/day/{day}/download.csv.zip",
        f"/epay-finance/day/{day}/download.parquet.zip",
    ):
        assert fetch(server.url + path, finance)[0] == 200, path
        assert fetch(server.url + path, admin)[0] == 200, path
        assert fetch(server.url + path, viewer)[0] == 403, path  # signed in, not allowed
    for path in AIRFLOW_ELSEWHERE:  # the finance role sees nothing else of Airflow
        assert fetch(server.url + path, finance)[0] == 403, path
        assert fetch(server.url + path, admin)[0] in (200, 404), path
    # the date in the path is checked strictly; nothing else reaches the ledger
    for bad in ("2026-13-01", "2026-1-01", "20261126", "..%2F..%2Fetc%2Fpasswd", "2026-11-26%00"):
        assert fetch(f"{server.url}/epay-finance/day/{bad}", finance)[0] == 404, bad
    assert fetch(f"{server.url}/epay-finance/day/{day}/download.exe", finance)[0] == 404
    assert fetch(f"{server.url}/epay-finance/day/{day}/download.csv.zip?sep=%27", finance)[0] == 422


# --- reading the page ----------------------------------------------------------------------------------
def figure(page: Any, selector: str) -> int:
    return centimes(page.locator(selector).inner_text())


def check_index(page: Any, files: Files, settlement_dates: list[date], debit_dates: list[date]) -> None:
    """Every row of both tables and their totals, read off the page, against the files."""
    rows = page.locator("#settlement-days tbody tr[data-day]")
    assert [date.fromisoformat(d) for d in rows.evaluate_all("rs => rs.map(r => r.dataset.day)")] == sorted(
        settlement_dates, reverse=True
    )
    totals = {k: 0 for k in ("presented", "settled", "rejected", "pending")}
    for day in settlement_dates:
        count = settlement_count(files, day, day)
        row = f'#settlement-days tr[data-day="{day.isoformat()}"]'
        for name in totals:
            expected = count_of(getattr(count, name))
            assert figure(page, f'{row} td[data-figure="{name}_amount"]') == expected, (day, name)
            totals[name] += expected
        not_presented = sum(a for _, _, a in count.not_presented.values())
        assert figure(page, f'{row} td[data-figure="not_presented_amount"]') == not_presented
    for name, value in totals.items():
        if settlement_dates:
            assert figure(page, f'#settlement-days td[data-figure="total_{name}_amount"]') == value
    rows = page.locator("#debit-days tbody tr[data-day]")
    assert [date.fromisoformat(d) for d in rows.evaluate_all("rs => rs.map(r => r.dataset.day)")] == sorted(
        debit_dates, reverse=True
    )
    debited = credited = 0
    for day in debit_dates:
        cash = cash_count(files, day)
        row = f'#debit-days tr[data-day="{day.isoformat()}"]'
        assert figure(page, f'{row} td[data-figure="debited_amount"]') == cash.debited[1]
        assert figure(page, f'{row} td[data-figure="late_amount"]') == cash.late[1]
        assert figure(page, f'{row} td[data-figure="credited_amount"]') == cash.credited[1]
        assert (
            figure(page, f'{row} td[data-figure="difference_amount"]') == cash.credited[1] - cash.debited[1]
        )
        statement = page.locator(f'{row} td[data-figure="statement"]').inner_text()
        assert statement == ("in" if cash.statement_in else "not in")
        reconciled = page.locator(f'{row} [data-status="cash"]').inner_text() == "reconciled"
        assert reconciled == (cash.statement_in and cash.credited == cash.debited), day
        debited += cash.debited[1]
        credited += cash.credited[1]
    if debit_dates:
        assert figure(page, '#debit-days td[data-figure="total_debited_amount"]') == debited
        assert figure(page, '#debit-days td[data-figure="total_credited_amount"]') == credited


def count_of(table: dict[str, list[int]]) -> int:
    return table.get("total", [0, 0])[1]


def check_day(page: Any, files: Files, day: date) -> None:
    """A date's page: its settlement view and its cash view, read off the page, against the files."""
    count = settlement_count(files, day, day)
    for name in ("presented", "settled", "rejected", "pending"):
        n, amount = getattr(count, name).get("total", [0, 0])
        assert int(page.locator(f'#settlement-summary [data-figure="{name}_count"]').inner_text()) == n
        assert figure(page, f'#settlement-summary [data-figure="{name}_amount"]') == amount
    assert figure(page, '#settlement-summary [data-figure="not_presented_amount"]') == sum(
        a for _, _, a in count.not_presented.values()
    )
    for file, (reason, n, amount) in count.not_presented.items():
        row = page.locator("#not-presented tbody tr", has_text=file)
        assert row.locator('td[data-col="reason"]').inner_text() == reason
        assert row.locator('td[data-col="reason_meaning"]').inner_text() != ""  # the meaning beside it
        assert centimes(row.locator('td[data-col="amount"]').inner_text()) == amount
        assert int(row.locator('td[data-col="count"]').inner_text()) == n
    cash = cash_count(files, day)
    assert int(page.locator('#cash-summary [data-figure="debited_count"]').inner_text()) == cash.debited[0]
    assert figure(page, '#cash-summary [data-figure="debited_amount"]') == cash.debited[1]
    assert figure(page, '#cash-summary [data-figure="late_amount"]') == cash.late[1]
    assert figure(page, '#cash-summary [data-figure="credited_amount"]') == cash.credited[1]
    assert page.locator('#cash-summary [data-figure="statement"]').inner_text() == (
        "in" if cash.statement_in else "not in"
    )
    for due_on in cash.late_from:  # late debits link to the settlement date they belong to
        assert page.locator(f'#debited a:text-is("{due_on.isoformat()}")').count() == 1


def browser(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (this test never skips)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])


def sign_in(page: Any, server: Server, user: str, path: str) -> None:
    """Open ``path`` signed out: Airflow's login page, then back to ``path``."""
    page.goto(server.url + path)
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=30_000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(server.url + path, timeout=30_000)


def test_finance_user_reads_both_views(
    server: Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    files = server.files
    settlement_dates = sorted({s for s, _ in files.prlv.values()})
    debit_dates = sorted(
        {d for s, _, d, _ in files.retr.values() if s == "ACSC"} | {d for _, d, _, _ in files.relv}
    )
    with sync_playwright() as playwright:
        chromium = browser(playwright)
        try:
            context = chromium.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            sign_in(page, server, "finance", "/epay-finance/")
            assert "_token" in {cookie["name"] for cookie in context.cookies()}
            check_index(page, files, settlement_dates, debit_dates)
            cross = page.locator("#cross-check").inner_text()
            assert "equal" in cross and "NOT" not in cross
            shot = artifacts() / "finance-index.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(request, shot, "screenshot of the finance index")
            assert not any(rip in page.content() for rip in rips(server.world))

            page.click(f'#settlement-days a:text-is("{DAY_SHOWN.isoformat()}")')
            page.wait_for_url(f"{server.url}/epay-finance/day/{DAY_SHOWN.isoformat()}")
            check_day(page, files, DAY_SHOWN)
            assert page.locator('[data-status="settlement"]').inner_text() == "not presented"
            assert page.locator('[data-status="cash"]').inner_text() == "breaks"
            assert page.locator("#breaks td", has_text="missing_relv").count() == 1
            shot = artifacts() / f"finance-day-{DAY_SHOWN.isoformat()}.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(request, shot, "screenshot of a date's page")
            assert not any(rip in page.content() for rip in rips(server.world))

            for day in (RECONCILED_DAY, BROKEN_DAY, PENDING_DAY, AS_OF):
                page.goto(f"{server.url}/epay-finance/day/{day.isoformat()}")
                check_day(page, files, day)

            page.goto(f"{server.url}/epay-finance/day/{PENDING_DAY.isoformat()}")
            with page.expect_download() as download_info:
                page.click("#download-xlsx")
            download = download_info.value
            xlsx = tmp_path / download.suggested_filename
            download.save_as(xlsx)
            # and nothing else of Airflow, with the same session
            for path in AIRFLOW_ELSEWHERE:
                assert page.request.get(server.url + path).status == 403, path
        finally:
            chromium.close()
    assert xlsx.name == f"epay-finance-{PENDING_DAY.isoformat()}.xlsx"
    check_workbook(xlsx, files, PENDING_DAY)


def rips(world: World) -> set[str]:
    from sqlalchemy import text

    with world.engine.connect() as connection:
        return {str(r) for (r,) in connection.execute(text("SELECT rip FROM mandate")).all()}


def check_workbook(path: Path, files: Files, day: date) -> None:
    """The downloaded workbook: a sheet per section, and the settlement totals of the files."""
    book = openpyxl.load_workbook(path, read_only=True)
    sheets = {name: [list(r) for r in book[name].iter_rows(values_only=True)] for name in book.sheetnames}
    book.close()
    assert {"about", "guide", "settlement_by_operation", "cash_overview", "cash_breaks"} <= set(sheets)
    header, *rows = sheets["settlement_by_operation"]
    total = dict(zip(header, next(r for r in rows if r[0] == "total"), strict=True))
    count = settlement_count(files, day, day)
    for name in ("presented", "settled", "rejected", "pending"):
        assert (total[f"{name}_count"], int(Decimal(str(total[f"{name}_amount_dzd"])).scaleb(2))) == tuple(
            getattr(count, name).get("total", [0, 0])
        )
    cell: Any = sheets["about"][1][0]
    assert isinstance(cell, datetime) and cell.date() == day  # a date cell, not text


def test_admin_sees_it_inside_airflow_and_a_viewer_does_not(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = browser(playwright)
        try:
            page = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            sign_in(page, server, "admin", "/epay-finance/")
            assert page.locator("#settlement-days").count() == 1
            assert page.request.get(f"{server.url}/api/v2/dags").status == 200
            page.goto(f"{server.url}/plugin/epay-finance")  # the menu entry: an iframe with the cookie
            page.frame_locator("iframe").locator("#settlement-days").wait_for(timeout=30_000)

            viewer = chromium.new_context().new_page()
            sign_in_refused = viewer.goto(f"{server.url}/epay-finance/")
            assert sign_in_refused is not None
            viewer.wait_for_url(re.compile(r".*/auth/login.*"), timeout=30_000)
            viewer.fill("input[name=username]", "viewer")
            viewer.fill("input[name=password]", PASSWORDS["viewer"])
            viewer.click("button[type=submit]")
            viewer.wait_for_url(f"{server.url}/epay-finance/", timeout=30_000)
            assert viewer.locator("h1").inner_text() == "Not allowed"
            assert viewer.locator("#settlement-days").count() == 0
        finally:
            chromium.close()


# --- empty and small states, by the same app in the same browser ------------------------------------------
@pytest.fixture(scope="module")
def empty_world(tmp_path_factory: pytest.TempPathFactory, finance_world: World) -> World:
    folder = tmp_path_factory.mktemp("finance-empty")
    ledger = folder / "ledger.sqlite3"
    url = f"sqlite:///{ledger}"
    open_ledger(url).dispose()
    settings = finance_world.settings.model_copy(update={"home": folder / "home", "database_url": url})
    (folder / "home").mkdir()
    return World(settings, open_ledger(url), finance_world.calendar, ())


def rendered(
    world: World, path: str, monkeypatch: pytest.MonkeyPatch, keep_days: set[date] | None = None
) -> str:
    """A page of the finance app on ``world``; ``keep_days``: the index limited to these dates (the
    ledger of one day, of late debits only)."""
    from fastapi.testclient import TestClient

    from epay.finance.reconciliation import cash_days
    from epay.finance.summary import settlement_days
    from epay.finance_web import app as web

    monkeypatch.setattr(web, "ledger_and_calendar", lambda: (world.settings, world.engine, world.calendar))
    monkeypatch.setattr(web, "business_today", lambda: AS_OF)
    if keep_days is not None:

        def only(function: Any, column: str) -> Any:
            def limited(*args: Any, **kwargs: Any) -> pd.DataFrame:
                frame: pd.DataFrame = function(*args, **kwargs)
                keep = pd.Series([d in keep_days for d in frame[column]], index=frame.index, dtype=bool)
                kept: pd.DataFrame = frame[keep].reset_index(drop=True)
                return kept

            return limited

        monkeypatch.setattr(web, "settlement_days", only(settlement_days, "settlement_date"))
        monkeypatch.setattr(web, "cash_days", only(cash_days, "debit_date"))
    response = TestClient(web.create_app(authorize=False)).get(path)
    assert response.status_code == 200, response.text
    html: str = response.text
    return html


def test_empty_and_small_states(
    empty_world: World, finance_world: World, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import sync_playwright

    files = read_files(finance_world.settings.home)
    with sync_playwright() as playwright:
        chromium = browser(playwright)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            # no data at all: says so, draws no axis of zeros
            page.set_content(rendered(empty_world, "/", monkeypatch))
            assert "No settlement date in the ledger yet." in page.inner_text("#settlement-days")
            assert "No debit date yet" in page.inner_text("#debit-days")
            chart = page.locator("svg#settled-vs-rejected")
            assert (
                chart.locator("text.empty").text_content() == "no data"
                and chart.locator("rect.bar").count() == 0
            )
            assert "DZD" not in (chart.text_content() or "")  # never "1 DZD, 0 DZD, 0 DZD, 0 DZD, 0 DZD"
            assert page.locator("#cross-check").count() == 0
            shot = artifacts() / "finance-index-empty.png"
            page.screenshot(path=str(shot), full_page=True)
            keep(request, shot, "screenshot of the empty index")
            page.set_content(rendered(empty_world, "/day/2026-11-26", monkeypatch))
            assert page.locator('[data-status="settlement"]').inner_text() == "empty"
            assert page.locator('[data-status="cash"]').inner_text() == "pending"
            assert page.locator("svg#rejects-by-reason").count() == 0
            assert figure(page, '#cash-summary [data-figure="debited_amount"]') == 0

            # one day: the index of a ledger with a single date, both views
            page.set_content(rendered(finance_world, "/", monkeypatch, {RECONCILED_DAY}))
            check_index(page, files, [RECONCILED_DAY], [RECONCILED_DAY])
            assert page.locator("svg#settled-vs-rejected rect.bar").count() == 2

            # a day with only late debits: no settlement date, a debit date whose cash is all late
            late_day = ONLY_LATE_DAYS[-1]
            page.set_content(rendered(finance_world, "/", monkeypatch, {late_day}))
            check_index(page, files, [], [late_day])
            assert "No settlement date in the ledger yet." in page.inner_text("#settlement-days")
            page.set_content(rendered(finance_world, f"/day/{late_day.isoformat()}", monkeypatch))
            check_day(page, files, late_day)
            assert page.locator('[data-status="settlement"]').inner_text() == "empty"
            assert (
                figure(page, '#cash-summary [data-figure="late_amount"]')
                == figure(page, '#cash-summary [data-figure="debited_amount"]')
                > 0
            )
        finally:
            chromium.close()


# --- the pieces, without Airflow or a browser ----------------------------------------------------------
def test_amounts_are_exact_dzd_from_integer_centimes() -> None:
    from epay.finance_web.money import dzd as page_dzd
    from epay.finance_web.money import total

    assert page_dzd(0) == "0.00\u00a0DZD"
    assert page_dzd(5) == "0.05\u00a0DZD"
    assert page_dzd(123_456_789) == "1\u00a0234\u00a0567.89\u00a0DZD"
    assert page_dzd(-1050) == "-10.50\u00a0DZD"
    assert total([10**17, 1, 2]) == 10**17 + 3  # beyond a float's exact integers
    with pytest.raises(TypeError):
        page_dzd(10.5)


def test_charts_are_inline_svg_with_escaped_labels_and_honest_axes() -> None:
    from epay.finance_web.charts import Series, bar_chart

    svg = bar_chart("t<i>", ["<script>", "B"], [Series("s&", "#000", [100, 250_000])], chart_id="c")
    assert svg.startswith('<svg id="c"') and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "s&amp;" in svg
    assert svg.count('class="bar"') == 2
    assert "no data" in bar_chart("empty", [], []) and "DZD" not in bar_chart("empty", [], [])
    zeros = bar_chart("zeros", ["a", "b"], [Series("s", "#000", [0, 0])])
    assert "every amount is 0.00 DZD" in zeros and 'class="bar"' not in zeros
    small = bar_chart("small", ["a"], [Series("s", "#000", [37])])  # 0.37 DZD: distinct, exact ticks
    ticks = re.findall(r'text-anchor="end">([^<]*) DZD<', small)
    assert len(ticks) == len(set(ticks)) == 5, ticks
    with pytest.raises(ValueError):
        bar_chart("t", ["a", "b"], [Series("s", "#000", [1])])


def test_rip_columns_are_never_rendered() -> None:
    from epay.finance_web.app import table

    frame = pd.DataFrame(
        {"code": ["AM04"], "debtor_rip": ["00799999000012345687"], "other": ["00799999000012345687"]}
    )
    html = table(frame, table_id="t")
    assert "AM04" in html and "00799999000012345687" not in html and "debtor_rip" not in html
