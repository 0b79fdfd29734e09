"""Million-row reads and writes for the ledger, below the ORM.

The ORM costs microseconds of Python per row; a busy night registers a million instructions. Writes go
through PostgreSQL's COPY (rows serialised to CSV by Arrow, in C) or SQLite's executemany; reads through
the raw DBAPI cursor. SQL here is written with ``?`` placeholders whatever the driver's own style.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection

StatementObserver = Callable[[str, str, tuple[Any, ...], Any], None]
# Called with (dialect name, SQL as sent, parameters, the driver's connection) before each statement this
# module sends, e.g. the tests' query-plan guard; empty in production.
OBSERVERS: list[StatementObserver] = []

COPY_CHUNK_ROWS = 200_000
FETCH_CHUNK_ROWS = 100_000
INSERT_CHUNK_ROWS = 50_000


def now_utc() -> datetime:
    """When a row is written, by the process's clock (``EPAY_CLOCK``; the machine's in production)."""
    from epay.clock import process_clock

    return process_clock().now().astimezone(UTC)


def stored_utc(value: datetime) -> datetime:
    """A timestamp read back from the ledger as aware UTC (SQLite gives it back naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _observe(connection: Connection, sql: str, params: tuple[Any, ...]) -> None:
    for observer in OBSERVERS:
        observer(connection.dialect.name, sql, params, connection.connection.driver_connection)


def _sql(connection: Connection, sql: str) -> str:
    return sql if connection.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def _param(connection: Connection, value: Any) -> Any:
    if connection.dialect.name == "sqlite":
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, date):
            return value.isoformat()
    return value


def execute(connection: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement; return the number of rows it changed."""
    cursor = connection.connection.cursor()
    try:
        statement, values = _sql(connection, sql), tuple(_param(connection, p) for p in params)
        _observe(connection, statement, values)
        cursor.execute(statement, values)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def fetch_frame(
    connection: Connection,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[str],
    *,
    dates: Sequence[str] = (),
    types: Mapping[str, pa.DataType] | None = None,
) -> pd.DataFrame:
    """Rows of ``sql`` as a DataFrame; ``dates`` columns become datetime64 (NaT for NULL).

    Fetched in chunks, each turned into Arrow columns at once: a million rows never exist as a million
    Python tuples at the same time, and the frame's columns are compact (Arrow-backed strings). With
    ``types`` (every column's Arrow type), PostgreSQL streams the rows out with COPY and Arrow parses
    them in C: no Python object per value at all."""
    if types is not None and connection.dialect.name == "postgresql":
        return _copy_out(connection, sql, params, columns, dates, types)
    cursor = connection.connection.cursor()
    chunks: list[pa.Table] = []
    try:
        statement, bound = _sql(connection, sql), tuple(_param(connection, p) for p in params)
        _observe(connection, statement, bound)
        cursor.execute(statement, bound)
        while rows := cursor.fetchmany(FETCH_CHUNK_ROWS):
            values = list(zip(*rows, strict=True))
            chunks.append(
                pa.table({c: pa.array(v, from_pandas=True) for c, v in zip(columns, values, strict=True)})
            )
            del rows, values
    finally:
        cursor.close()
    if not chunks:
        frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    else:
        table = pa.concat_tables(chunks, promote_options="permissive") if len(chunks) > 1 else chunks[0]
        del chunks
        frame = table.to_pandas(self_destruct=True, split_blocks=True)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column], format="ISO8601")
    return frame


def _copy_out(
    connection: Connection,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[str],
    dates: Sequence[str],
    types: Mapping[str, pa.DataType],
) -> pd.DataFrame:
    import psycopg

    raw: Any = connection.connection.driver_connection
    _observe(connection, _sql(connection, sql), tuple(params))
    query = psycopg.ClientCursor(raw).mogrify(_sql(connection, sql), tuple(params))  # literals, quoted
    buffer = io.BytesIO()
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
    finally:
        cursor.close()
    if buffer.tell() == 0:  # no rows: Arrow refuses an empty CSV
        table = pa.table({c: pa.array([], type=types[c]) for c in columns})
    else:
        buffer.seek(0)
        table = _read_copied_csv(buffer, columns, types)
    del buffer
    frame: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _read_copied_csv(
    buffer: io.BytesIO, columns: Sequence[str], types: Mapping[str, pa.DataType]
) -> pa.Table:
    return pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=list(columns), block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={c: types[c] for c in columns},
            null_values=[""],  # NULL is an empty unquoted field (never "NA", "N/A", "nan"...) ...
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # ... and an empty string is ""
        ),
    )


def scalar(connection: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    cursor = connection.connection.cursor()
    try:
        statement, values = _sql(connection, sql), tuple(_param(connection, p) for p in params)
        _observe(connection, statement, values)
        cursor.execute(statement, values)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else row[0]


def insert_frame(connection: Connection, table: str, frame: pd.DataFrame) -> int:
    """Insert every row of ``frame`` (columns named as the table's) into ``table``."""
    if frame.empty:
        return 0
    if connection.dialect.name == "postgresql":
        _copy_in(connection, table, frame)
    else:
        _executemany(connection, table, frame)
    return len(frame)


def _sqlite_column(values: pd.Series) -> list[Any]:
    """A column as SQLite stores it (what SQLAlchemy's types read back), converted by Arrow in C:
    dates as ISO text, UTC timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0/1."""
    array: Any
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        array = pc.cast(pa.array(values.dt.tz_convert("UTC").dt.tz_localize(None)), pa.string())
    else:
        array = pa.array(values, from_pandas=True)
        if pa.types.is_timestamp(array.type):  # a date column read back as datetime64
            array = pc.cast(array, pa.date32())
        if pa.types.is_date(array.type):
            array = pc.cast(array, pa.string())
        elif pa.types.is_boolean(array.type):
            array = pc.cast(array, pa.int64())
    column: list[Any] = array.to_pylist()
    return column


def _executemany(connection: Connection, table: str, frame: pd.DataFrame) -> None:
    """In chunks: only one chunk's rows exist as Python objects at a time."""
    columns = list(frame.columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    cursor = connection.connection.cursor()
    try:
        for start in range(0, len(frame), INSERT_CHUNK_ROWS):
            chunk = frame.iloc[start : start + INSERT_CHUNK_ROWS]
            values = [_sqlite_column(chunk[c]) for c in columns]
            cursor.executemany(sql, list(zip(*values, strict=True)))
    finally:
        cursor.close()


def _copy_in(connection: Connection, table: str, frame: pd.DataFrame) -> None:
    columns = list(frame.columns)
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, HEADER false)"
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for start in range(0, len(frame), COPY_CHUNK_ROWS):
                chunk = pa.Table.from_pandas(
                    frame.iloc[start : start + COPY_CHUNK_ROWS], preserve_index=False
                )
                buffer = io.BytesIO()
                pacsv.write_csv(chunk, buffer, pacsv.WriteOptions(include_header=False))
                copy.write(buffer.getvalue())
    finally:
        cursor.close()
