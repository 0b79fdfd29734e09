"""Fast bulk reads and writes for the post office's database: the DBAPI with plain tuples.

The ORM's bulk paths cost several microseconds of Python per row; a million instructions must be
registered and updated in seconds. Values written must already be in the database's own form: dates
through ``db_value`` (ISO text on SQLite, as SQLAlchemy's Date type stores them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import Connection


def _placeholder(connection: Connection, name: str) -> str:
    """Positional placeholders only: SQLite's ``?``, psycopg's ``%s``."""
    style = connection.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"bulk SQL needs a positional DBAPI paramstyle, not {style!r}")


def placeholder(connection: Connection) -> str:
    """The DBAPI's positional placeholder (``?`` for SQLite, ``%s`` for psycopg)."""
    return _placeholder(connection, "p")


def db_value(connection: Connection, value: Any) -> Any:
    """SQLite keeps dates as ISO text (as SQLAlchemy's Date type writes them); others take dates."""
    if isinstance(value, date) and connection.dialect.name == "sqlite":
        return value.isoformat()
    return value


def insert_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    placeholders = ", ".join(_placeholder(connection, c) for c in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    batch = rows if isinstance(rows, list) else list(rows)
    if batch:
        connection.exec_driver_sql(sql, batch)


def update_rows(
    connection: Connection, table: str, columns: Sequence[str], key: str, rows: Iterable[Sequence[Any]]
) -> None:
    """UPDATE table SET columns... WHERE key = ? for each row (the key is the row's last value)."""
    assignments = ", ".join(f"{c} = {_placeholder(connection, c)}" for c in columns)
    sql = f"UPDATE {table} SET {assignments} WHERE {key} = {_placeholder(connection, key)}"
    batch = rows if isinstance(rows, list) else list(rows)
    if batch:
        connection.exec_driver_sql(sql, batch)


def fetch_frame(
    connection: Connection, sql: str, params: Sequence[Any], columns: Sequence[str]
) -> pd.DataFrame:
    """Run ``sql`` (``?`` placeholders) on the raw DBAPI cursor: a million rows without per-row objects."""
    marker = _placeholder(connection, "p")
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql.replace("?", marker), tuple(db_value(connection, p) for p in params))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return pd.DataFrame.from_records(rows, columns=list(columns))


def run_sql(connection: Connection, sql: str, params: Sequence[Any] = ()) -> None:
    """Execute one statement written with ``?`` placeholders, whatever the DBAPI's own style."""
    connection.exec_driver_sql(sql.replace("?", placeholder(connection)), tuple(params))
