"""The finance page inside Airflow's web UI, in a real browser (issue #7).

A small ledger is made through the real jobs against the simulated post office (a few business days,
settled and rejected payments), then ``airflow api-server`` is started in a subprocess with a throw-away
AIRFLOW_HOME and SimpleAuthManager (a user ``finance`` with a known password, written where the auth
manager keeps its passwords). Airflow is never imported in this process (it rewires logging).

Checked: without signing in the page is refused; a user signed in through the UI's login form sees the
summary and the charts (inline SVG), in the UI's menu too; the XLSX downloaded with the page's button
reads back with the ledger's totals; a screenshot of the day's page is kept (``finance-page.png`` in the
test's folder and beside the data folder, its path printed).

Chromium is Debian's ``/usr/bin/chromium`` (CI installs it); without it this test fails, never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import text

from epay import jobs
from epay.calendar import load_calendar
from epay.sample.install import install_sample
from epay.settings import Settings
from tests.airflow_helpers import PYTHON, airflow_env, run
from tests.cycle_helpers import post_office_online

CHROMIUM = Path("/usr/bin/chromium")
START = date(2026, 11, 25)  # a Wednesday; Friday and Saturday are the weekend
BUSINESS_DAYS = 3
USER, PASSWORD = "finance", "finance-Test-0fb3c7"
PLUGIN_ENTRY_POINT = "epay.finance_web.plugin:EpayFinancePlugin"
SCENARIO = """seed = 7
ms03_rate = 0.02
delayed_share = 0.0
revoke_rate = 0.01
ceiling_change_rate = 0.02
new_ceiling = 100000
"""


@dataclass(frozen=True)
class Ledger:
    home: Path
    day: date  # a settlement date with settled and rejected payments
    settled_count: int
    settled_amount: int
    rejected_count: int
    rejected_amount: int
    presented_count: int
    presented_amount: int
    rips: frozenset[str]  # every RIP the ledger knows: none may appear on a page or in a download


def make_ledger(home: Path) -> Ledger:
    """A few business days through build → send → ACK → returns, with the simulated post office."""
    scenario = home.parent / "scenario.toml"
    home.mkdir(parents=True)
    scenario.write_text(SCENARIO, encoding="utf-8")
    settings = Settings(home=home, poste_scenario_file=scenario)
    calendar = load_calendar(settings.holidays_file)
    install_sample(settings, 160, 11, START, calendar)
    with post_office_online(settings, calendar) as poste:
        day, ran = START, 0
        while ran < BUSINESS_DAYS:
            if calendar.is_business_day(day):
                poste.business_day(day)
                ran += 1
            poste.end_of_day(day)
            day = date.fromordinal(day.toordinal() + 1)
        for _ in range(2):  # the last presentations come back
            day = calendar.next_business_day(day)
            poste.end_of_day(day)

    engine = jobs.ledger(settings)
    try:
        with engine.connect() as connection:
            by_day = connection.execute(
                text(
                    "SELECT settlement_date, "
                    "sum(CASE WHEN state = 'settled' THEN 1 ELSE 0 END), "
                    "sum(CASE WHEN state = 'settled' THEN amount ELSE 0 END), "
                    "sum(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END), "
                    "sum(CASE WHEN state = 'rejected' THEN amount ELSE 0 END), "
                    "count(*), sum(amount) "
                    "FROM instruction WHERE state IN ('sent', 'presented', 'settled', 'rejected') "
                    "GROUP BY settlement_date ORDER BY 5 DESC, 1"
                )
            ).all()
            rips = {str(r) for (r,) in connection.execute(text("SELECT rip FROM mandate")).all()}
    finally:
        engine.dispose()
    first = by_day[0]
    assert first[1] > 0 and first[3] > 0, f"no day with both settled and rejected payments: {by_day}"
    return Ledger(
        home=home,
        day=date.fromisoformat(str(first[0])[:10]),
        settled_count=int(first[1]),
        settled_amount=int(first[2]),
        rejected_count=int(first[3]),
        rejected_amount=int(first[4]),
        presented_count=int(first[5]),
        presented_amount=int(first[6]),
        rips=frozenset(rips),
    )


def dzd(centimes: int) -> str:
    """How the page writes an amount (non-breaking spaces between thousands)."""
    dinars, cents = divmod(abs(centimes), 100)
    return ("-" if centimes < 0 else "") + f"{dinars:,}.{cents:02d}".replace(",", "\u00a0") + "\u00a0DZD"


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


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return make_ledger(tmp_path_factory.mktemp("finance-web") / "epay-home")


@pytest.fixture(scope="module")
def server(ledger: Ledger, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    registered = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert registered.get("epay_finance") == PLUGIN_ENTRY_POINT, (
        "the finance plugin is not registered: pyproject.toml needs\n"
        '[project.entry-points."airflow.plugins"]\n'
        f'epay_finance = "{PLUGIN_ENTRY_POINT}"\nthen `uv sync` (found: {registered})'
    )
    airflow_home = tmp_path_factory.mktemp("airflow-home")
    # SimpleAuthManager reads its users from [core] and their passwords from this file, creating a
    # random password only for a user missing from it.
    (airflow_home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({USER: PASSWORD}) + "\n", encoding="utf-8"
    )
    env = airflow_env(
        airflow_home,
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__API_AUTH__JWT_SECRET=os.urandom(32).hex(),
        EPAY_HOME=ledger.home,
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
        yield Server(url=url, log=log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: uvicorn and its worker
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def status_of(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


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


# --- the tests ---------------------------------------------------------------------------------------
def test_refused_without_signing_in(server: Server, ledger: Ledger) -> None:
    day = ledger.day.isoformat()
    for path in ("/epay-finance/", f"/epay-finance/day/{day}", f"/epay-finance/day/{day}/download.xlsx"):
        assert status_of(server.url + path) in (401, 403), path
    assert token_for(server, USER, "wrong password") is None
    assert status_of(f"{server.url}/epay-finance/", token="not-a-token") in (401, 403)
    token = token_for(server, USER, PASSWORD)
    assert token
    assert status_of(f"{server.url}/epay-finance/", token) == 200
    # the plugin is loaded from its entry point and puts the page in the UI's menu
    request = urllib.request.Request(f"{server.url}/api/v2/plugins")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        plugins = {p["name"]: p for p in json.load(response)["plugins"]}
    assert "EntryPoint" in plugins["epay_finance"]["source"]
    views = plugins["epay_finance"]["external_views"]
    assert [(v["href"], v["url_route"], v["destination"]) for v in views] == [
        ("epay-finance/", "epay-finance", "nav")
    ]
    # the date in the path is checked strictly; nothing else reaches the ledger
    for bad in ("2026-13-01", "2026-1-01", "20261126", "..%2F..%2Fetc%2Fpasswd", "2026-11-26%00"):
        assert status_of(f"{server.url}/epay-finance/day/{bad}", token) == 404, bad
    assert status_of(f"{server.url}/epay-finance/day/{day}/download.exe", token) == 404
    assert status_of(f"{server.url}/epay-finance/day/{day}/download.csv?sep=%27", token) == 422


def test_finance_page_in_a_browser(server: Server, ledger: Ledger, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (this test never skips)")
    from playwright.sync_api import sync_playwright

    day = ledger.day.isoformat()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()

            refused = page.goto(f"{server.url}/epay-finance/day/{day}")
            assert refused is not None and refused.status in (401, 403)

            # sign in through the UI's own login form, then back to the finance page
            page.goto(f"{server.url}/auth/login?next=/epay-finance/")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{server.url}/epay-finance/", timeout=30_000)
            assert "_token" in {cookie["name"] for cookie in context.cookies()}
            assert page.locator("svg#collected-vs-rejected").count() == 1
            assert page.locator("#settlement-days").get_by_text(day).count() == 1

            page.click(f"#settlement-days a:text-is('{day}')")
            page.wait_for_url(f"{server.url}/epay-finance/day/{day}")
            summary = page.locator("#summary").inner_text()
            assert dzd(ledger.settled_amount) in summary
            assert dzd(ledger.rejected_amount) in summary
            assert page.locator("svg#rejects-by-reason rect.bar").count() >= 1
            content = page.content()
            assert not any(rip in content for rip in ledger.rips)

            with page.expect_download() as download_info:
                page.click("#download-xlsx")
            download = download_info.value
            xlsx = tmp_path / download.suggested_filename
            download.save_as(xlsx)

            screenshot = tmp_path / "finance-page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            kept = ledger.home.parent / "finance-page.png"
            shutil.copyfile(screenshot, kept)
            print(f"\nfinance page screenshot: {kept}")

            # the same page in Airflow's UI, through its menu entry (an iframe carrying the cookie)
            page.goto(f"{server.url}/plugin/epay-finance")
            frame = page.frame_locator("iframe")
            frame.locator("svg#collected-vs-rejected").wait_for(timeout=30_000)
            in_ui = ledger.home.parent / "finance-in-airflow-ui.png"
            page.screenshot(path=str(in_ui))
            print(f"inside Airflow's UI: {in_ui}")
        finally:
            browser.close()

    assert xlsx.name == f"epay-finance-{day}.xlsx"
    check_workbook(xlsx, ledger)


def check_workbook(path: Path, ledger: Ledger) -> None:
    """The downloaded workbook: the expected sheets, and totals equal to the ledger's."""
    workbook = openpyxl.load_workbook(path, read_only=True)
    sheets: dict[str, list[list[Any]]] = {
        name: [list(row) for row in workbook[name].iter_rows(values_only=True)]
        for name in workbook.sheetnames
    }
    workbook.close()
    expected = {"report", "presented", "settled", "rejected_by_reason", "pending", "overdue", "exclusions"}
    assert expected | {"reconciliation", "breaks"} <= set(sheets), list(sheets)
    for name, rows in sheets.items():
        assert not any(str(value) in ledger.rips for row in rows for value in row), f"a RIP in {name}"
    assert {row[0]: row[1] for row in sheets["report"][1:]}["day"] == ledger.day.isoformat()

    def total_row(sheet: str) -> dict[str, Any]:
        header, *rows = sheets[sheet]
        found = [row for row in rows if row[0] == "total"]
        assert len(found) == 1, f"{sheet}: {rows}"
        return {str(column): value for column, value in zip(header, found[0], strict=True)}

    def centimes(value: object) -> int:
        return int(Decimal(str(value)).scaleb(2))  # DZD with 2 decimals back to exact centimes

    presented, settled = total_row("presented"), total_row("settled")
    rejected = total_row("rejected_by_reason")
    assert (presented["count"], centimes(presented["amount_dzd"])) == (
        ledger.presented_count,
        ledger.presented_amount,
    )
    assert (settled["count"], centimes(settled["amount_dzd"])) == (
        ledger.settled_count,
        ledger.settled_amount,
    )
    assert (rejected["count"], centimes(rejected["amount_dzd"])) == (
        ledger.rejected_count,
        ledger.rejected_amount,
    )


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


def test_charts_are_inline_svg_with_escaped_labels() -> None:
    from epay.finance_web.charts import Series, bar_chart

    svg = bar_chart("t<i>", ["<script>", "B"], [Series("s&", "#000", [100, 250_000])], chart_id="c")
    assert svg.startswith('<svg id="c"') and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "s&amp;" in svg
    assert svg.count('class="bar"') == 2
    assert "no data" in bar_chart("empty", [], [])
    with pytest.raises(ValueError):
        bar_chart("t", ["a", "b"], [Series("s", "#000", [1])])


def test_rip_columns_are_never_rendered() -> None:
    import pandas as pd

    from epay.finance_web.app import table

    frame = pd.DataFrame(
        {"code": ["AM04"], "debtor_rip": ["00799999000012345687"], "other": ["00799999000012345687"]}
    )
    html = table(frame)
    assert "AM04" in html and "00799999000012345687" not in html and "debtor_rip" not in html
