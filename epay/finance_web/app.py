"""The finance page inside Airflow's web UI: a FastAPI app mounted by the plugin (``plugin.py``).

Every route sits behind Airflow's auth manager: the dependency on the whole app asks it whether the
signed-in user may see the "Plugins" view (Airflow mounts plugin apps *without* authentication
otherwise). Unauthenticated → 401, not allowed → 403.

Pages are HTML built here (every value escaped), charts are inline SVG drawn on the server: no
JavaScript, nothing loaded from elsewhere. Amounts are integer centimes from the ledger, summed as ints
and shown in DZD with two decimals. No column holding a RIP is ever shown.

Data comes from ``epay.finance`` (``settlement_days``, ``day_report``, ``write_report``), on the ledger
and calendar of ``Settings()`` (the api-server's ``EPAY_*`` environment)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from html import escape
from typing import Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.finance.downloads import DayReport, day_report, write_report
from epay.finance.reconciliation import settlement_days
from epay.finance_web.charts import Series, bar_chart
from epay.finance_web.money import dzd, total
from epay.settings import Settings

CHART_WEEKS = 8
LIST_LIMIT = 120  # settlement dates listed on the front page, newest first
TABLE_ROWS = 50  # rows of a detail table shown on the page (the download has them all)
DAY_PATTERN = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
}
SEPARATORS = {",", ";"}  # ';' also writes decimal commas (French-locale spreadsheets)
STATUS_LABELS = {"reconciled": "reconciled", "breaks": "breaks", "pending": "pending"}
COLLECTED, REJECTED = "#2e7d32", "#c62828"
INDEX_AMOUNTS = (  # settlement_days' amount columns shown on the front page, with their headings
    ("presented_amount", "presented"),
    ("settled_amount", "collected"),
    ("rejected_amount", "rejected"),
    ("pending_amount", "pending"),
    ("credited_amount", "credited (RELV)"),
    ("difference", "credited − collected"),
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
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
    lowered = name.lower()
    return lowered in {"amount", "difference"} or lowered.endswith("_amount")


def _detail_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows to add up: a frame by operation carries its own 'total' row, which is taken alone."""
    if "operation" in frame.columns and (frame["operation"] == "total").any():
        return frame[frame["operation"] == "total"]
    return frame


def _frame_total(frame: pd.DataFrame, column: str = "amount") -> int:
    rows = _detail_rows(frame)
    return total(rows[column].tolist()) if column in rows.columns else 0


def _frame_count(frame: pd.DataFrame) -> int:
    rows = _detail_rows(frame)
    if "count" in rows.columns:
        return sum(int(v) for v in rows["count"].tolist())
    return len(rows)


# --- HTML -----------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#1a1a1a}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;margin:4px 0 12px;font-size:13px}
th,td{border-bottom:1px solid #e0e0e0;padding:4px 10px;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.status{padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.status-reconciled{background:#2e7d32}.status-breaks{background:#c62828}.status-pending{background:#9e9e9e}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card .label{font-size:12px;color:#555}.card .value{font-size:16px;font-weight:600}
.button{display:inline-block;padding:6px 14px;margin-right:8px;border:1px solid #1565c0;border-radius:4px;
color:#1565c0;text-decoration:none}.button:hover{background:#e3f2fd}
.muted{color:#666;font-size:12px} .chart{max-width:900px}
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


def status_badge(status: str) -> str:
    label = STATUS_LABELS.get(status, status)
    return f'<span class="status status-{escape(label)}">{escape(label)}</span>'


def card(label: str, value: str) -> str:
    return f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{value}</div></div>'


def table(frame: pd.DataFrame, *, limit: int = TABLE_ROWS, drop: Iterable[str] = ()) -> str:
    """A DataFrame as an HTML table: RIP columns dropped, amounts in DZD, at most ``limit`` rows."""
    dropped = set(drop)
    columns = [c for c in frame.columns if c not in dropped and not is_rip_column(str(c), frame[c])]
    if frame.empty:
        return '<p class="muted">none</p>'
    head = "".join(
        f'<th class="num">{escape(str(c))}</th>'
        if is_amount_column(str(c)) or str(c) == "count"
        else f"<th>{escape(str(c))}</th>"
        for c in columns
    )
    rows = []
    for record in frame[columns].head(limit).itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, record, strict=True):
            if is_amount_column(str(column)) and not pd.isna(value):
                cells.append(f'<td class="num">{escape(dzd(value))}</td>')
            elif str(column) == "count":
                cells.append(f'<td class="num">{escape(str(value))}</td>')
            else:
                cells.append(f"<td>{'' if pd.isna(value) else escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="muted">{len(frame) - limit} more rows in the download.</p>' if len(frame) > limit else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _as_date(value: Any) -> date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# --- pages ----------------------------------------------------------------------------------------------
def index_page(request: Request, days: pd.DataFrame) -> HTMLResponse:
    frame = days.copy()
    frame["settlement_date"] = [_as_date(v) for v in frame["settlement_date"]]
    frame = frame.sort_values("settlement_date")
    if frame.empty:
        recent = frame
    else:
        last = frame["settlement_date"].iloc[-1]
        since = date.fromordinal(last.toordinal() - 7 * CHART_WEEKS)
        recent = frame[frame["settlement_date"] > since]
    chart = bar_chart(
        f"Collected vs rejected per settlement date (last {CHART_WEEKS} weeks)",
        [d.isoformat() for d in recent["settlement_date"]],
        [
            Series("collected", COLLECTED, [int(v) for v in recent["settled_amount"].tolist()]),
            Series("rejected", REJECTED, [int(v) for v in recent["rejected_amount"].tolist()]),
        ],
        chart_id="collected-vs-rejected",
    )
    rows = []
    for record in frame.iloc[::-1].head(LIST_LIMIT).to_dict("records"):
        day = record["settlement_date"]
        href = link(request, "day_page", day=day.isoformat())
        amounts = "".join(
            f'<td class="num">{escape(dzd(record[column]))}</td>'
            for column, _ in INDEX_AMOUNTS
            if column in record
        )
        breaks = int(record.get("break_count", 0))
        rows.append(
            f'<tr><td><a href="{escape(href)}">{escape(day.isoformat())}</a></td>'
            f"<td>{status_badge(str(record['status']))}</td>{amounts}"
            f'<td class="num">{breaks or ""}</td></tr>'
        )
    totals = (
        card("presented", escape(dzd(_frame_total(frame, "presented_amount"))))
        + card("collected", escape(dzd(_frame_total(frame, "settled_amount"))))
        + card("rejected", escape(dzd(_frame_total(frame, "rejected_amount"))))
        + card("settlement dates", str(len(frame)))
    )
    listing = (
        '<table id="settlement-days"><thead><tr><th>settlement date</th><th>status</th>'
        + "".join(f'<th class="num">{label}</th>' for column, label in INDEX_AMOUNTS if column in frame)
        + f'<th class="num">breaks</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        if rows
        else '<p class="muted">No settlement date in the ledger yet.</p>'
    )
    body = (
        "<h1>Direct debit — settlement dates</h1>"
        '<p class="muted">Algérie Télécom ↔ Algérie Poste. Amounts in DZD.</p>'
        f'<div class="cards">{totals}</div>{chart}<h2>Settlement dates</h2>{listing}'
    )
    return page("epay finance", body)


def day_body(request: Request, day: date, report: DayReport) -> str:
    summary = report.summary
    reconciliation = report.reconciliation
    rejected = summary.rejected_by_reason
    reasons = rejected[rejected["code"] != "total"] if "code" in rejected.columns else rejected
    sections: list[tuple[str, str, pd.DataFrame]] = [
        ("presented", "Presented", getattr(summary, "presented", pd.DataFrame())),
        ("settled", "Settled", getattr(summary, "settled", pd.DataFrame())),
        ("rejected", "Rejected by reason", rejected),
        ("pending", "Pending (no final status yet)", getattr(summary, "pending", pd.DataFrame())),
        ("overdue", "Overdue returns", getattr(summary, "overdue", pd.DataFrame())),
        ("exclusions", "Due but not presented (exclusions)", getattr(summary, "exclusions", pd.DataFrame())),
        ("breaks", "Reconciliation breaks", getattr(reconciliation, "breaks", pd.DataFrame())),
    ]
    cards = "".join(
        card(title.split(" (")[0], f"{_frame_count(frame)} · {escape(dzd(_frame_total(frame)))}")
        for key, title, frame in sections
        if key in {"presented", "settled", "rejected", "pending"}
    )
    if not reasons.empty and {"code", "amount"} <= set(reasons.columns):
        meanings = reasons["meaning"].tolist() if "meaning" in reasons.columns else [""] * len(reasons)
        chart = bar_chart(
            "Rejects by reason (amount; the codes are explained in the table below)",
            [str(code) for code in reasons["code"].tolist()],
            [Series("rejected", REJECTED, [int(v) for v in reasons["amount"].tolist()])],
            hints=[str(m or "") for m in meanings],
            chart_id="rejects-by-reason",
        )
    else:
        chart = bar_chart("Rejects by reason", [], [], chart_id="rejects-by-reason")
    downloads = "".join(
        f'<a class="button" id="download-{fmt}" download '
        f'href="{escape(link(request, "download", day=day.isoformat(), fmt=fmt))}">'
        f"{label}</a>"
        for fmt, label in (("xlsx", "Excel (.xlsx)"), ("csv", "CSV"), ("parquet", "Parquet"))
    )
    csv_semicolon = link(request, "download", day=day.isoformat(), fmt="csv") + "?sep=%3B"
    downloads += (
        f'<a class="button" id="download-csv-semicolon" download href="{escape(csv_semicolon)}">CSV (;)</a>'
    )
    back = link(request, "index")
    details = "".join(
        f'<h2 id="section-{key}">{escape(title)}</h2>{table(frame)}' for key, title, frame in sections
    )
    status = str(getattr(reconciliation, "status", "pending"))
    return (
        f'<p><a href="{escape(back)}">← all settlement dates</a></p>'
        f"<h1>Settlement date {escape(day.isoformat())} {status_badge(status)}</h1>"
        f'<div class="cards" id="summary">{cards}</div>'
        f'<p id="downloads">{downloads}</p>{chart}{details}'
    )


# --- the app -----------------------------------------------------------------------------------------------
def create_app(*, authorize: bool = True) -> FastAPI:
    """The plugin's app; ``authorize=False`` only for unit tests of the pages without an Airflow."""
    dependencies: list[Any] = []
    if authorize:
        from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
        from airflow.api_fastapi.core_api.security import requires_access_view

        dependencies.append(Depends(requires_access_view(AccessView.PLUGINS)))
    app = FastAPI(
        title="epay finance",
        description="Settlement dates, rejects and reconciliation of the direct-debit ledger.",
        dependencies=dependencies,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/", response_class=HTMLResponse, name="index")
    def index(request: Request) -> HTMLResponse:
        settings, engine, calendar = ledger_and_calendar()
        return index_page(request, settlement_days(engine, calendar, home=settings.home))

    @app.get("/day/{day}", response_class=HTMLResponse, name="day_page")
    def day_page(request: Request, day: str) -> HTMLResponse:
        settlement = parse_day(day)
        settings, engine, calendar = ledger_and_calendar()
        report = day_report(engine, settlement, calendar, home=settings.home)
        return page(f"epay finance {settlement.isoformat()}", day_body(request, settlement, report))

    @app.get("/day/{day}/download.{fmt}", name="download")
    def download(day: str, fmt: str, sep: str = Query(default=",", max_length=1)) -> Response:
        settlement = parse_day(day)
        if fmt not in FORMATS:
            raise HTTPException(status_code=404, detail="format: csv, xlsx or parquet")
        if sep not in SEPARATORS:
            raise HTTPException(status_code=422, detail="sep: ',' or ';'")
        settings, engine, calendar = ledger_and_calendar()
        report = day_report(engine, settlement, calendar, home=settings.home)
        name = f"epay-finance-{settlement.isoformat()}.{fmt}"
        out = io.BytesIO()
        write_report(report, fmt, out, sep=sep)
        content = out.getvalue()
        headers = {
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        return Response(content, media_type=FORMATS[fmt], headers=headers)

    return app
