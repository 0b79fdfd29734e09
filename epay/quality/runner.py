"""Run a Great Expectations suite, kept as data in ``schemas/expectations/<name>.json``, on a DataFrame.

The suite files are GX 1.x ``ExpectationSuite`` JSON, so GX's own classes load them; every expectation
carries ``meta.rule``, a short sentence the reports show instead of GX's type names.

``import great_expectations`` costs seconds and hundreds of MB, so it happens lazily, once per process,
inside :func:`validate_frame`. The ephemeral context, the pandas data source and each suite are cached
per process; a run only pays for the checks themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "SUITES_DIR",
    "ExpectationOutcome",
    "SuiteError",
    "SuiteResult",
    "jsonable",
    "load_suite_spec",
    "validate_frame",
]

SUITES_DIR: Final = Path(__file__).resolve().parents[2] / "schemas" / "expectations"
VALUES_KEPT: Final = 20  # failing values kept per expectation (all failing rows are kept)

# GX logs hundreds of INFO/DEBUG lines while importing and building a context; one of its modules
# forces its own logger to INFO at import, hence the second name.
_QUIET_LOGGERS: Final = ("great_expectations", "great_expectations.data_context.types.base")
_RESULT_FORMAT: Final = {"result_format": "COMPLETE", "partial_unexpected_count": VALUES_KEPT}
_LOCK = threading.Lock()


class SuiteError(ValueError):
    """A suite file is malformed, or a suite cannot run on a frame (missing column, an expectation raised)."""


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str  # GX type, e.g. "expect_column_values_to_match_regex"
    column: str | None  # "a,b" for column pairs and lists, None for table-level expectations
    rule: str  # meta.rule from the suite
    success: bool
    unexpected_count: int
    unexpected_rows: tuple[int, ...]  # 0-based positions of all failing rows, ascending
    unexpected_values: tuple[object, ...]  # the first VALUES_KEPT failing values

    def to_dict(self, rows_kept: int = VALUES_KEPT) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "rule": self.rule,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "unexpected_rows": list(self.unexpected_rows[:rows_kept]),
            "unexpected_values": [jsonable(v) for v in self.unexpected_values],
        }


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    row_count: int
    outcomes: tuple[ExpectationOutcome, ...]  # in the suite file's order

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def failed_rows(self) -> npt.NDArray[np.int64]:
        """Sorted distinct positions of the rows flagged by at least one failed expectation.

        (A row flagged by an expectation that still succeeds thanks to ``mostly`` is not counted.)
        """
        parts = [np.asarray(o.unexpected_rows, dtype=np.int64) for o in self.failures()]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: every outcome, the first rows and values of each failure."""
        return {
            "suite": self.suite,
            "success": self.success,
            "row_count": self.row_count,
            "failed_expectations": len(self.failures()),
            "failed_rows": int(self.failed_rows().size),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }


def jsonable(value: object) -> object:
    """A JSON-serialisable form of a value GX reports (numpy scalars, dates, NaN, tuples of pairs)."""
    value = _plain(value)
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


# --- suite files -----------------------------------------------------------------------------------


def load_suite_spec(name: str, suites_dir: Path | None = None) -> dict[str, Any]:
    """The suite ``<suites_dir>/<name>.json`` as a dict, after checking its shape.

    Raises SuiteError naming the file if it is not a suite of expectations each with a ``meta.rule``.
    """
    path = (suites_dir or SUITES_DIR) / f"{name}.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"no expectation suite {name!r}: {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path}: not valid JSON: {exc}") from exc
    _check_spec(path, name, spec)
    return dict(spec)


def _check_spec(path: Path, name: str, spec: object) -> None:
    def fail(problem: str) -> SuiteError:
        return SuiteError(f"expectation suite {path}: {problem}")

    if not isinstance(spec, dict):
        raise fail("the top level must be a JSON object")
    if spec.get("name") != name:
        raise fail(f"'name' must be {name!r}, the file's name, got {spec.get('name')!r}")
    expectations = spec.get("expectations")
    if not isinstance(expectations, list):
        raise fail("'expectations' must be a list")
    for i, exp in enumerate(expectations, start=1):
        if not isinstance(exp, dict) or not str(exp.get("type", "")).startswith("expect_"):
            raise fail(f"expectation #{i} needs a 'type' starting with expect_")
        if not isinstance(exp.get("kwargs"), dict):
            raise fail(f"expectation #{i} ({exp['type']}) needs a 'kwargs' object")
        rule = exp.get("meta", {}).get("rule") if isinstance(exp.get("meta"), dict) else None
        if not isinstance(rule, str) or not rule.strip():
            raise fail(f"expectation #{i} ({exp['type']}) needs a non-empty 'meta.rule' sentence")


def _columns_of(kwargs: Mapping[str, Any]) -> list[str]:
    """The frame columns an expectation reads, from its kwargs."""
    if "column" in kwargs:
        return [str(kwargs["column"])]
    if "column_A" in kwargs:
        return [str(kwargs["column_A"]), str(kwargs["column_B"])]
    return [str(c) for c in kwargs.get("column_list", ())]


# --- GX, imported lazily ---------------------------------------------------------------------------


class _Engine:
    """The process-wide ephemeral GX context, its whole-DataFrame batch definition, the suites seen."""

    def __init__(self) -> None:
        for logger_name in _QUIET_LOGGERS:
            logging.getLogger(logger_name).setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every frame under 1 GB (md5 of pandas' row hashes) for batch metadata nobody
        # here reads; at 1M rows that costs more than all the checks of a suite together.
        pandas_execution_engine.HASH_THRESHOLD = 0
        for logger_name in _QUIET_LOGGERS:  # again: importing GX resets one of them to INFO
            logging.getLogger(logger_name).setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = self.context.data_sources.add_pandas("epay").add_dataframe_asset("frame")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole frame")
        self.suites: dict[str, Any] = {}

    def suite(self, spec: dict[str, Any]) -> Any:
        """The registered ExpectationSuite of ``spec`` (a changed suite file gets a new one)."""
        from great_expectations.core.expectation_suite import ExpectationSuite

        spec_json = json.dumps(spec, sort_keys=True)
        found = self.suites.get(spec_json)
        if found is None:
            unique = f"{spec['name']}-{hashlib.sha256(spec_json.encode()).hexdigest()[:12]}"
            suite = ExpectationSuite(name=unique, expectations=spec["expectations"], meta=spec.get("meta"))
            found = self.suites[spec_json] = self.context.suites.add(suite)  # gives expectations ids
        return found

    def run(self, spec: dict[str, Any], frame: pd.DataFrame) -> list[Any]:
        """GX's per-expectation results, in the suite file's order.

        ``Batch.validate(suite)``, not ``ValidationDefinition.run``: the latter also serialises every
        result to JSON into the context's in-memory store, which costs seconds when a million rows
        fail (all their values and indexes) and grows a long-lived worker with each run.
        """
        suite = self.suite(spec)
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=_RESULT_FORMAT)
        order = {exp.id: i for i, exp in enumerate(suite.expectations)}
        return sorted(result.results, key=lambda r: order[r.expectation_config.id])


_engine: _Engine | None = None


def _run(spec: dict[str, Any], frame: pd.DataFrame) -> list[Any]:
    global _engine
    with _LOCK:
        if _engine is None:
            _engine = _Engine()
        return _engine.run(spec, frame)


def _raised(exception_info: object) -> str | None:
    """The message of an exception GX caught while computing an expectation, if any."""
    infos: Iterable[object] = [exception_info]
    if isinstance(exception_info, dict) and "raised_exception" not in exception_info:
        infos = exception_info.values()  # one entry per metric
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _outcome(spec_entry: Mapping[str, Any], gx_result: Any) -> ExpectationOutcome:
    kwargs = spec_entry["kwargs"]
    columns = _columns_of(kwargs)
    error = _raised(gx_result.exception_info or {})
    if error is not None:
        raise SuiteError(f"{spec_entry['type']} on {','.join(columns) or 'the table'} raised: {error}")
    result = gx_result.result or {}
    rows = np.sort(np.asarray(result.get("unexpected_index_list") or (), dtype=np.int64))
    values = result.get("unexpected_list") or result.get("partial_unexpected_list") or ()
    return ExpectationOutcome(
        expectation=str(spec_entry["type"]),
        column=",".join(columns) or None,
        rule=str(spec_entry["meta"]["rule"]),
        success=bool(gx_result.success),
        unexpected_count=int(result.get("unexpected_count") or 0),
        unexpected_rows=tuple(rows.tolist()),
        unexpected_values=tuple(_plain(v) for v in itertools.islice(values, VALUES_KEPT)),
    )


def _plain(value: object) -> object:
    """Numpy scalars as Python values (datetime64 as Timestamp: ``.item()`` would give nanoseconds)."""
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def validate_frame(frame: pd.DataFrame, suite_name: str, *, suites_dir: Path | None = None) -> SuiteResult:
    """Validate ``frame`` against the suite ``suite_name`` in one GX run.

    Rows are reported by position (0-based), whatever the frame's index. Raises SuiteError if the suite
    file is malformed, names a column the frame lacks, or an expectation cannot be computed.
    """
    spec = load_suite_spec(suite_name, suites_dir)
    needed = {c for exp in spec["expectations"] for c in _columns_of(exp["kwargs"])}
    missing = sorted(needed - set(map(str, frame.columns)))
    if missing:
        raise SuiteError(f"suite {suite_name!r} needs column(s) the frame lacks: {', '.join(missing)}")
    if not spec["expectations"]:
        return SuiteResult(suite_name, True, len(frame), ())
    data = frame.reset_index(drop=True)  # GX reports index labels: make them positions
    results = _run(spec, data)
    outcomes = tuple(_outcome(e, r) for e, r in zip(spec["expectations"], results, strict=True))
    return SuiteResult(
        suite=suite_name,
        success=all(o.success for o in outcomes),
        row_count=len(data),
        outcomes=outcomes,
    )
