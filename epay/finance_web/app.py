"""The finance page inside Airflow's web UI: a FastAPI app mounted by the plugin (``plugin.py``).

Two views, never mixed (``epay.finance.vocabulary``, docs/finance.md): the *settlement view* (by
settlement date: what was due and what became of it) and the *cash view* (by debit date: what was debited
and credited, per RELV). The index lists each in its own table with totals; a date's page shows both
views of that date, each with its own status.

Every route sits behind Airflow's auth manager: the dependency on the whole app asks it whether the
signed-in user may read the custom view ``"Epay Finance"`` (``auth.RESOURCE``). Signed out, a browser is
sent to Airflow's login page (which comes back here); a client that does not ask for HTML gets 401; a
signed-in user without the permission gets 403.

Pages are HTML built here (every value escaped), charts are inline SVG drawn on the server: no
JavaScript, nothing loaded from elsewhere. Amounts are integer centimes from the ledger, summed as ints
and shown in DZD with two decimals. No column holding a RIP is ever shown.

Data comes from ``epay.finance``, on the ledger and calendar of ``Settings()`` (the api-server's
``EPAY_*`` environment)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from datetime import date
from functools import lru_cache
from html import escape
from typing import Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from epay.calendar import BusinessCalendar
from epay.finance.downloads import EXTENSIONS, MEDIA_TYPES, DayReport, day_report, write_report
from epay.finance.reconciliation import cash_days
from epay.finance.summary import settlement_days
from epay.finance.vocabulary import CASH_STATUSES, FIGURES, SETTLEMENT_STATUSES, meaning
from epay.finance_web.charts import Series, bar_chart
from epay.finance_web.money import dzd, total
from epay.settings import Settings

NOT_SUMMED = frozenset({"try_number", "builds"})  # a total of these would mean nothing
RESOURCE = "Epay Finance"  # the auth manager's custom view (epay.finance_web.auth.RESOURCE)
CHART_WEEKS = 8
LIST_LIMIT = 120  # dates listed per view on the front page, newest first (totals are over all)
TABLE_ROWS = 50  # rows of a detail table shown on the page (the download has them all)
DAY_PATTERN = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
DOWNLOADS = (  # route suffix, format, label
    ("xlsx", "xlsx", "Excel (.xlsx, a sheet per section)"),
    ("csv.zip", "csv", "CSV (.zip, a file per section)"),
    ("parquet.zip", "parquet", "Parquet (.zip, a file per section)"),
)
SEPARATORS = {",", ";"}  # ';' also writes decimal commas (French-locale spreadsheets)
SETTLED, REJECTED = "#2e7d32", "#c62828"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}
LABELS = {  # column headings on the page
    "amount": "amount",
    "count": "count",
    "code": "code",
    "meaning": "meaning",
    "items": "distinct items",
    "builds": "builds that held them",
    "item_builds": "item × build",
    "due_by": "due by",
    "try_number": "try",
    "now_in_file": "now in file",
    "now_settlement_date": "for settlement date",
    "now_state": "state now",
    "statement_date": "statement of",
    "paid_elsewhere_on": "paid elsewhere on",
    "debited_on": "debited on",
}


# --- data ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _ledger(url: str) -> Engine:
    from epay import jobs

    return jobs.ledger(Settings())


def ledger_and_calendar() -> tuple[Settings, Engine, BusinessCalendar]:
    """The settings, ledger and calendar of the api-server (read on each request, engine kept)."""
    from epay import jobs

    settings = Settings()
    return settings, _ledger(settings.ledger_url), jobs.calendar_of(settings)


def parse_day(text: str) -> date:
    """A path's YYYY-MM-DD, strictly: anything else is a 404, never passed on."""
    if not DAY_PATTERN.match(text):
        raise HTTPException(status_code=404, detail="not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(status_code=404, detail="not a date (YYYY-MM-DD)") from None


def is_rip_column(name: str, values: pd.Series) -> bool:
    """A column that holds RIPs (by name, or by 20-digit values): never shown."""
    lowered = name.lower()
    if "rip" in lowered or "account" in lowered or "iban" in lowered:
        return True
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        sample = values.dropna().astype(str).head(20)
        return bool(len(sample)) and bool(sample.str.fullmatch(r"\d{20}").any())
    return False


def is_amount_column(name: str) -> bool:
    return name.lower().endswith("amount")


def is_count_column(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith("count") or lowered in {"items", "builds", "item_builds", "try_number"}


# --- HTML -----------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1a1a1a}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 6px;padding-top:8px;border-top:2px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:4px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e0e0e0;padding:4px 10px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:600;border-top:2px solid #999}
.status{padding:1px 8px;border-radius:10px;font-size:12px;color:#fff;white-space:nowrap}
.status-reconciled,.status-complete{background:#2e7d32}.status-breaks,.status-overdue{background:#c62828}
.status-pending{background:#757575}.status-empty{background:#9e9e9e}.status-not_presented{background:#ef6c00}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card .label{font-size:12px;color:#555}.card .value{font-size:16px;font-weight:600}
.button{display:inline-block;padding:6px 14px;margin:0 8px 6px 0;border:1px solid #1565c0;border-radius:4px;
color:#1565c0;text-decoration:none}.button:hover{background:#e3f2fd}
.muted{color:#666;font-size:12px} .chart{max-width:900px} .view{font-size:12px;color:#555;margin:0 0 8px}
.check-ok{color:#2e7d32}.check-bad{color:#c62828;font-weight:600}
"""


def link(request: Request, name: str, **params: str) -> str:
    """The path of one of this app's routes, under the prefix it is mounted at (``request.url_for``
    would look in the api-server's router, which does not know these names)."""
    path = str(request.app.url_path_for(name, **params))
    return str(request.scope.get("root_path", "")).rstrip("/") + path


def page(title: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


def status_badge(status: str, meanings: dict[str, str], view: str) -> str:
    return (
        f'<span class="status status-{escape(status)}" data-status="{escape(view)}" '
        f'title="{escape(meaning(meanings, status))}">{escape(status.replace("_", " "))}</span>'
    )


def card(label: str, value: str, figure: str = "") -> str:
    data = f' data-figure="{escape(figure)}"' if figure else ""
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value"{data}>{value}</div></div>'
    )


def count_and_amount(count: int, amount: int, figure: str) -> str:
    return (
        f'<span data-figure="{escape(figure)}_count">{count}</span> · '
        f'<span data-figure="{escape(figure)}_amount">{escape(dzd(amount))}</span>'
    )


def _day_link(request: Request, day: date) -> str:
    return f'<a href="{escape(link(request, "day_page", day=day.isoformat()))}">{escape(day.isoformat())}</a>'


def _as_date(value: Any) -> date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def table(
    frame: pd.DataFrame,
    *,
    table_id: str,
    limit: int = TABLE_ROWS,
    drop: Iterable[str] = (),
    request: Request | None = None,
    links: Sequence[str] = (),
    totals: bool = False,
    drop_zero: bool = False,
) -> str:
    """A DataFrame as an HTML table: RIP columns dropped, amounts in DZD, at most ``limit`` rows; the
    ``links`` date columns link to their day's page; ``totals`` adds a row summing counts and amounts."""
    if frame.empty:
        return f'<p class="muted" id="{escape(table_id)}">none</p>'
    dropped = set(drop)
    columns = [str(c) for c in frame.columns if c not in dropped and not is_rip_column(str(c), frame[c])]
    numeric = {c for c in columns if is_amount_column(c) or is_count_column(c)}
    if drop_zero:  # a column of zeros only says nothing here (the download keeps it)
        columns = [c for c in columns if c not in numeric or any(int(v) for v in frame[c].tolist())]
    head = "".join(
        f'<th class="{"num" if c in numeric else ""}">'
        f"{escape(LABELS.get(c, c.replace('_', ' ')))}{' (DZD)' if is_amount_column(c) else ''}</th>"
        for c in columns
    )
    rows = []
    for record in frame[columns].head(limit).to_dict("records"):
        cells = []
        for column in columns:
            value = record[column]
            attr = f' data-col="{escape(column)}"'
            if value is None or (not isinstance(value, (str, date)) and pd.isna(value)):
                cells.append(f"<td{attr}></td>")
            elif is_amount_column(column):
                cells.append(f'<td class="num"{attr}>{escape(dzd(value))}</td>')
            elif column in numeric:
                cells.append(f'<td class="num"{attr}>{int(value)}</td>')
            elif column in links and request is not None and isinstance(value, date):
                cells.append(f"<td{attr}>{_day_link(request, value)}</td>")
            elif isinstance(value, bool):
                cells.append(f"<td{attr}>{'yes' if value else 'no'}</td>")
            else:
                cells.append(f"<td{attr}>{escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if totals and len(frame) > 1:
        cells = []
        for i, column in enumerate(columns):
            if column in numeric and column not in NOT_SUMMED:
                value = (
                    total(frame[column].tolist()) if is_amount_column(column) else int(frame[column].sum())
                )
                shown = dzd(value) if is_amount_column(column) else str(value)
                cells.append(f'<td class="num" data-col="{escape(column)}">{escape(shown)}</td>')
            else:
                cells.append("<td>total</td>" if i == 0 else "<td></td>")
        rows.append('<tr class="total">' + "".join(cells) + "</tr>")
    more = (
        f'<p class="muted">{len(frame) - limit} more rows in the download.</p>' if len(frame) > limit else ""
    )
    return (
        f'<table id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f"</table>{more}"
    )


def sentence(text: str) -> str:
    """'some text' -> 'Some text.'"""
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def definitions(*terms: str) -> str:
    items = "".join(f"<li><b>{escape(t.replace('_', ' '))}</b>: {escape(FIGURES[t])}</li>" for t in terms)
    return f'<ul class="muted">{items}</ul>'


# --- the index ------------------------------------------------------------------------------------------
def _sum(frame: pd.DataFrame, column: str) -> int:
    return total(frame[column].tolist()) if len(frame) else 0


def settlement_table(request: Request, frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="muted" id="settlement-days">No settlement date in the ledger yet.</p>'
    columns = (
        ("presented", "presented"),
        ("settled", "settled"),
        ("rejected", "rejected"),
        ("pending", "pending"),
        ("not_presented", "not presented (ACK, expired, held)"),
    )
    head = "".join(f'<th class="num">{escape(label)}</th>' for _, label in columns)
    rows = []
    for r in frame.iloc[::-1].head(LIST_LIMIT).to_dict("records"):
        day = _as_date(r["settlement_date"])
        cells = "".join(
            f'<td class="num" data-figure="{key}_amount" title="{int(r[f"{key}_count"])} instructions">'
            f"{escape(dzd(r[f'{key}_amount']))}</td>"
            for key, _ in columns
        )
        rows.append(
            f'<tr data-day="{day.isoformat()}"><td>{_day_link(request, day)}</td>'
            f"<td>{status_badge(str(r['status']), SETTLEMENT_STATUSES, 'settlement')}</td>{cells}"
            f'<td class="num" data-figure="excluded_items">{int(r["excluded_items"])}</td></tr>'
        )
    totals = "".join(
        f'<td class="num" data-figure="total_{key}_amount">{escape(dzd(_sum(frame, f"{key}_amount")))}</td>'
        for key, _ in columns
    )
    rows.append(f'<tr class="total"><td>total, {len(frame)} dates</td><td></td>{totals}<td></td></tr>')
    return (
        '<table id="settlement-days"><thead><tr><th>settlement date</th><th>status</th>'
        f'{head}<th class="num">excluded items</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def cash_table(request: Request, frame: pd.DataFrame) -> str:
    if frame.empty:
        return '<p class="muted" id="debit-days">No debit date yet: nothing was debited or credited.</p>'
    rows = []
    for r in frame.iloc[::-1].head(LIST_LIMIT).to_dict("records"):
        day = _as_date(r["debit_date"])
        late_from = [date.fromisoformat(d) for d in str(r["late_from"]).split(", ") if d]
        due_on = ", ".join(_day_link(request, d) for d in late_from)
        rows.append(
            f'<tr data-day="{day.isoformat()}"><td>{_day_link(request, day)}</td>'
            f"<td>{status_badge(str(r['status']), CASH_STATUSES, 'cash')}</td>"
            f'<td data-figure="statement">{"in" if r["statement_present"] else "not in"}</td>'
            f'<td class="num" data-figure="debited_amount">{escape(dzd(r["debited_amount"]))}</td>'
            f'<td class="num" data-figure="late_amount">{escape(dzd(r["late_amount"]))}</td>'
            f"<td>{due_on}</td>"
            f'<td class="num" data-figure="credited_amount">{escape(dzd(r["credited_amount"]))}</td>'
            f'<td class="num" data-figure="difference_amount">{escape(dzd(r["difference_amount"]))}</td>'
            f'<td class="num" data-figure="break_count">{int(r["break_count"]) or ""}</td></tr>'
        )

    def total_cell(key: str) -> str:
        return f'<td class="num" data-figure="total_{key}">{escape(dzd(_sum(frame, key)))}</td>'

    rows.append(
        f'<tr class="total"><td>total, {len(frame)} dates</td><td></td><td></td>'
        + total_cell("debited_amount")
        + total_cell("late_amount")
        + "<td></td>"
        + total_cell("credited_amount")
        + total_cell("difference_amount")
        + "<td></td></tr>"
    )
    return (
        '<table id="debit-days"><thead><tr><th>debit date</th><th>status</th><th>statement (RELV)</th>'
        '<th class="num">debited (ACSC)</th><th class="num">of which late</th><th>late: due on</th>'
        '<th class="num">credited (RELV)</th><th class="num">difference (credited − debited)</th>'
        f'<th class="num">breaks</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _ints(frame: pd.DataFrame, column: str) -> list[int]:
    return [int(v) for v in frame[column].tolist()] if len(frame) else []


def index_page(request: Request, settlement: pd.DataFrame, cash: pd.DataFrame) -> HTMLResponse:
    settlement = settlement.copy()
    if len(settlement):
        settlement["settlement_date"] = [_as_date(v) for v in settlement["settlement_date"]]
        settlement = settlement.sort_values("settlement_date")
        since = date.fromordinal(settlement["settlement_date"].iloc[-1].toordinal() - 7 * CHART_WEEKS)
        recent = settlement[[d > since for d in settlement["settlement_date"]]]
    else:
        recent = settlement
    chart = bar_chart(
        f"Settlement view: settled vs rejected per settlement date (last {CHART_WEEKS} weeks)",
        [d.isoformat() for d in recent["settlement_date"]] if len(recent) else [],
        [
            Series(
                "settled", SETTLED, [int(v) for v in recent["settled_amount"].tolist()] if len(recent) else []
            ),
            Series(
                "rejected",
                REJECTED,
                [int(v) for v in recent["rejected_amount"].tolist()] if len(recent) else [],
            ),
        ],
        chart_id="settled-vs-rejected",
    )
    settled = _sum(settlement, "settled_amount")
    debited = _sum(cash, "debited_amount")
    check = (
        f'<p id="cross-check" class="{"check-ok" if settled == debited else "check-bad"}">'
        f"Settled, all settlement dates: {escape(dzd(settled))} · debited, all debit dates: "
        f"{escape(dzd(debited))} — "
        + ("equal, as they must be." if settled == debited else "NOT equal: tell a data engineer.")
        + "</p>"
        if len(settlement) or len(cash)
        else ""
    )
    cards_settlement = (
        card("settlement dates", str(len(settlement)), "settlement_dates")
        + card("presented", escape(dzd(_sum(settlement, "presented_amount"))), "presented_amount")
        + card("settled", escape(dzd(settled)), "settled_amount")
        + card("rejected", escape(dzd(_sum(settlement, "rejected_amount"))), "rejected_amount")
        + card("pending", escape(dzd(_sum(settlement, "pending_amount"))), "pending_amount")
    )
    cards_cash = (
        card("debit dates", str(len(cash)), "debit_dates")
        + card("debited (ACSC)", escape(dzd(debited)), "debited_amount")
        + card("credited (RELV)", escape(dzd(_sum(cash, "credited_amount"))), "credited_amount")
        + card("difference", escape(dzd(_sum(cash, "difference_amount"))), "difference_amount")
    )
    body = (
        "<h1>Direct debit — finance</h1>"
        '<p class="muted">Algérie Télécom ↔ Algérie Poste. Amounts in DZD. Two views, never mixed: '
        "what was <b>due</b> on a settlement date, and what cash <b>moved</b> on a debit date.</p>"
        f"{check}"
        '<h2 id="settlement-view">Settlement view — by settlement date (what was due, what became of it)</h2>'
        + definitions("presented", "settled", "rejected", "pending", "not_presented", "excluded")
        + f'<div class="cards" id="settlement-cards">{cards_settlement}</div>{chart}'
        + settlement_table(request, settlement)
        + '<h2 id="cash-view">Cash view — by debit date (what was debited and credited, per RELV)</h2>'
        + definitions("debited", "late", "credited", "difference")
        + f'<div class="cards" id="cash-cards">{cards_cash}</div>'
        + cash_table(request, cash)
    )
    return page("epay finance", body)


# --- a date's page -------------------------------------------------------------------------------------
def settlement_section(request: Request, day: date, report: DayReport) -> str:
    s = report.summary
    status = status_badge(s.status, SETTLEMENT_STATUSES, "settlement")
    cards = "".join(
        card(name.replace("_", " "), count_and_amount(s.figure(name, "count"), s.figure(name), name))
        for name in ("presented", "settled", "rejected", "pending")
    )
    cards += card(
        "not presented",
        count_and_amount(
            int(s.not_presented["count"].sum()), total(s.not_presented["amount"].tolist()), "not_presented"
        ),
    )
    cards += card(
        "excluded (distinct items)",
        count_and_amount(len(s.excluded_items), total(s.excluded_items["amount"].tolist()), "excluded"),
    )
    reasons = s.rejected_by_reason
    chart = (
        bar_chart(
            "Rejected by reason (amount; each code's meaning is in the table below)",
            [str(c) for c in reasons["code"].tolist()],
            [Series("rejected", REJECTED, [int(v) for v in reasons["amount"].tolist()])],
            hints=[str(m) for m in reasons["meaning"].tolist()],
            chart_id="rejects-by-reason",
        )
        if len(reasons)
        else ""
    )
    return (
        f'<h2 id="settlement-view">Settlement view — settlement date {escape(day.isoformat())} {status}</h2>'
        f'<p class="view">What was due on {escape(day.isoformat())} and what became of it. '
        f"{escape(sentence(meaning(SETTLEMENT_STATUSES, s.status)))}</p>"
        f'<div class="cards" id="settlement-summary">{cards}</div>'
        + definitions("presented", "settled", "rejected", "pending", "not_presented", "excluded")
        + "<h3>By operation</h3>"
        + table(s.by_operation, table_id="by-operation")
        + f"<h3>Rejected by reason</h3>{chart}"
        + table(s.rejected_by_reason, table_id="rejects", totals=True)
        + "<h3>Overdue (no final status past AP's deadline)</h3>"
        + table(s.overdue, table_id="overdue", request=request, links=("settlement_date",), totals=True)
        + "<h3>Retries (by try number)</h3>"
        + table(s.retries, table_id="retries", totals=True)
        + "<h3>Not presented: files AP never processed, and where their instructions went</h3>"
        + table(
            s.not_presented, table_id="not-presented", drop=("settlement_date",), totals=True, drop_zero=True
        )
        + table(s.re_filed, table_id="re-filed", request=request, links=("now_settlement_date",), totals=True)
        + "<h3>Due but not presented (exclusions of the builds for this date)</h3>"
        + table(s.exclusions, table_id="exclusions", totals=True)
    )


def cash_section(request: Request, day: date, report: DayReport) -> str:
    c = report.reconciliation
    f = c.figures
    status = status_badge(c.status, CASH_STATUSES, "cash")
    cards = (
        card("debited (ACSC)", count_and_amount(f.acsc_count, f.acsc_amount, "debited"))
        + card("of which late", count_and_amount(f.late_count, f.late_amount, "late"))
        + card("credited (RELV)", count_and_amount(f.credited_count, f.credited_amount, "credited"))
        + card("difference (credited − debited)", escape(dzd(c.difference)), "difference_amount")
        + card("statement (RELV)", "in" if f.statement_present else "not in", "statement")
    )
    return (
        f'<h2 id="cash-view">Cash view — debit date {escape(day.isoformat())} {status}</h2>'
        f'<p class="view">What Algérie Poste debited and credited to AT on {escape(day.isoformat())}. '
        f"{escape(sentence(meaning(CASH_STATUSES, c.status)))}</p>"
        f'<div class="cards" id="cash-summary">{cards}</div>'
        + definitions("debited", "late", "credited", "difference")
        + "<h3>Debited, by the settlement date it was due on</h3>"
        + table(c.debited, table_id="debited", request=request, links=("settlement_date",), totals=True)
        + "<h3>Credited (RELV statement lines for this debit date)</h3>"
        + table(c.credits, table_id="credits", totals=True)
        + "<h3>Reconciliation breaks</h3>"
        + table(c.breaks, table_id="breaks", drop=("debit_date",))
        + "<h3>Refunds owed (paid elsewhere and debited this day)</h3>"
        + table(c.refunds, table_id="refunds", totals=True)
    )


def day_body(request: Request, day: date, report: DayReport) -> str:
    downloads = "".join(
        f'<a class="button" id="download-{fmt}" download '
        f'href="{escape(link(request, "download", day=day.isoformat(), fmt=suffix))}">{escape(label)}</a>'
        for suffix, fmt, label in DOWNLOADS
    )
    semicolon = link(request, "download", day=day.isoformat(), fmt="csv.zip") + "?sep=%3B"
    downloads += (
        f'<a class="button" id="download-csv-semicolon" download href="{escape(semicolon)}">'
        "CSV with ; and decimal comma (.zip)</a>"
    )
    back = link(request, "index")
    return (
        f'<p><a href="{escape(back)}">← all dates</a></p>'
        f"<h1>{escape(day.strftime('%A'))} {escape(day.isoformat())}</h1>"
        '<p class="muted">Amounts in DZD. The settlement view and the cash view of this date are separate: '
        "statuses reported late are debited, and counted, on the day they are reported.</p>"
        f'<p id="downloads">{downloads}</p>'
        + settlement_section(request, day, report)
        + cash_section(request, day, report)
    )


# --- access ---------------------------------------------------------------------------------------------
class SignInFirstError(Exception):
    """No session: a browser is sent to the login page."""

    def __init__(self, login: str) -> None:
        super().__init__(login)
        self.login = login


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def finance_access(request: Request) -> None:
    """Airflow's auth manager decides: the signed-in user must be allowed to read ``RESOURCE``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        user = await get_user(request, None, await bearer_scheme(request))
    except HTTPException as refused:
        if _wants_html(request):  # signed out, or a session that expired or is not valid any more
            raise SignInFirstError(get_auth_manager().get_url_login(next_url=str(request.url))) from None
        raise refused
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE, user=user):
        raise HTTPException(status_code=403, detail=f"Forbidden: no read access to {RESOURCE!r}")


# --- the app -----------------------------------------------------------------------------------------------
def create_app(*, authorize: bool = True) -> FastAPI:
    """The plugin's app; ``authorize=False`` only for tests of the pages without an Airflow."""
    app = FastAPI(
        title="epay finance",
        description="Settlement view and cash view of the direct-debit ledger.",
        dependencies=[Depends(finance_access)] if authorize else [],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(SignInFirstError)
    async def sign_in_first(request: Request, exc: SignInFirstError) -> Response:
        return RedirectResponse(exc.login, status_code=303, headers={"Cache-Control": "no-store"})

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 403 and _wants_html(request):  # signed in, without the permission
            response = page(
                "epay finance: not allowed",
                "<h1>Not allowed</h1><p>You are signed in, but your role may not read the finance page "
                f"(the auth manager's view <b>{escape(RESOURCE)}</b>). Ask an Airflow admin for the "
                "finance role.</p>",
            )
            response.status_code = 403
            return response
        return await http_exception_handler(request, exc)

    @app.get("/", response_class=HTMLResponse, name="index")
    def index(request: Request) -> HTMLResponse:
        settings, engine, calendar = ledger_and_calendar()
        as_of = business_today()
        return index_page(
            request,
            settlement_days(
                engine,
                calendar,
                overdue_after_business_days=settings.returns_overdue_business_days,
                as_of=as_of,
            ),
            cash_days(engine, calendar, home=settings.home, as_of=as_of),
        )

    @app.get("/day/{day}", response_class=HTMLResponse, name="day_page")
    def day_page(request: Request, day: str) -> HTMLResponse:
        chosen = parse_day(day)
        report = _report(chosen)
        return page(f"epay finance {chosen.isoformat()}", day_body(request, chosen, report))

    @app.get("/day/{day}/download.{fmt}", name="download")
    def download(day: str, fmt: str, sep: str = Query(default=",", max_length=1)) -> Response:
        chosen = parse_day(day)
        formats = {suffix: name for suffix, name, _ in DOWNLOADS}
        if fmt not in formats:
            raise HTTPException(status_code=404, detail="format: xlsx, csv.zip or parquet.zip")
        if sep not in SEPARATORS:
            raise HTTPException(status_code=422, detail="sep: ',' or ';'")
        report = _report(chosen)
        name = f"epay-finance-{chosen.isoformat()}.{EXTENSIONS[formats[fmt]]}"
        out = io.BytesIO()
        write_report(report, formats[fmt], out, sep=sep)
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(out.getvalue(), media_type=MEDIA_TYPES[formats[fmt]], headers=headers)

    return app


def business_today() -> date:
    from epay.settings import business_today as today

    return today()


def _report(day: date) -> DayReport:
    settings, engine, calendar = ledger_and_calendar()
    return day_report(
        engine,
        day,
        calendar,
        home=settings.home,
        overdue_after_business_days=settings.returns_overdue_business_days,
        as_of=business_today(),
    )
