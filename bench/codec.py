"""Benchmark of the exchange-file codec (epay.formats) against pandas.read_fwf and a plain f-string loop.

For each file kind, at the spec's maximum of 999,999 details per file by default, it measures:

* ``write``     epay ``write_file`` (encode + the writer's built-in validation + fsync + rename)
* ``read``      epay ``read_file`` (parse + full validation + the details kept as a pyarrow Table)
* ``validate``  epay ``validate_file`` (full validation, no table kept)
* ``read_fwf``  baseline: ``pandas.read_fwf`` of the same file's details (colspecs from the layout)
* ``fstring``   baseline: a plain Python loop writing the same file with one f-string per record
  (generated from the layout objects) and the trailer totals computed in Python, then fsync

Every run of every operation is a fresh ``python bench/codec.py --child OP KIND PATH`` process, so its
peak RSS belongs to that operation alone. Setup (imports, the holiday calendar, generating the input
table) is not timed; the peak-RSS high-water mark is reset (``/proc/self/clear_refs``) right before the
timed call, and the RSS before the call is reported next to the peak.

Run: ``.venv/bin/python bench/codec.py [--rows N] [--repeat N] [--kinds PRLV,RETR] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MAX_DETAILS = 999_999  # spec §3/§5: 1 to 999,999 details per PRLV or RETR file
MB = 1_000_000  # every MB below is 10^6 bytes
EPAY_OPS = ("write", "write_unchecked", "parse", "read", "validate")
OPS = ("write", "write_unchecked", "fstring", "parse", "read", "validate", "read_fwf")
DATES = {"PRLV": (date(2026, 11, 25), date(2026, 11, 26)), "RETR": (date(2026, 11, 26), date(2026, 11, 26))}
RESULT_PREFIX = "BENCH-RESULT "
JSON_OUT = REPO / "bench" / "out" / "codec.json"
CHILD_TIMEOUT = 900
RESET_SLACK_KIB = 8 * 1024


# -- the goals of the issue ------------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    text: str
    target: float
    figure: str  # what is compared with the target, for the printout
    higher_is_better: bool = True

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


GOAL_WRITE = Goal("epay write ≥ 2,000,000 rows/s", 2_000_000, "rows/s")
GOAL_PARSE = Goal("epay parse (parse_file) ≥ 2,000,000 rows/s", 2_000_000, "rows/s")
GOAL_VALIDATE = Goal("epay validate (full validation) ≥ 1,000,000 rows/s", 1_000_000, "rows/s")
GOAL_VS_FWF = Goal("epay parse ≥ 15× faster than pandas.read_fwf", 15, "speed-up")
INFO_READ_VS_FWF = Goal("(info) epay read with full validation vs pandas.read_fwf", 15, "speed-up")
GOAL_VS_LOOP = Goal("epay write ≥ 10× faster than the Python f-string loop", 10, "speed-up")
GOAL_RSS = Goal("peak RSS ≤ 3× file size", 3, "peak/file", higher_is_better=False)


# -- memory ----------------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def _max_rss_bytes() -> int:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(kib) * 1024


def _reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark VmHWM (Linux ≥ 4.0); False when that did not work."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    peak, current = _status_kib("VmHWM"), _status_kib("VmRSS")
    return peak is not None and current is not None and peak <= current + RESET_SLACK_KIB


def _peak_since_reset(reset: bool) -> int:
    """VmHWM when it was reset (ru_maxrss can keep an older peak of exited threads), else ru_maxrss."""
    peak = _status_kib("VmHWM") if reset else None
    return peak * 1024 if peak is not None else _max_rss_bytes()


# -- layout-driven helpers -------------------------------------------------------------------------
def file_name(kind: str) -> str:
    from epay.formats import build_file_name
    from epay.formats.synthetic import CREDITOR_ID

    return build_file_name(kind, CREDITOR_ID, DATES[kind][0], 1)


def header_values(kind: str) -> dict[str, Any]:
    from epay.formats.synthetic import standard_header

    created, settles = DATES[kind]
    return standard_header(kind, created, settles)


def details_table(kind: str, rows: int) -> Any:
    from epay.formats import synthetic

    if kind == "PRLV":
        return synthetic.prlv_details(rows, seed=1)
    if kind == "RETR":
        return synthetic.retr_details(rows, seed=1, day=DATES["RETR"][0])
    raise SystemExit(f"no synthetic details for {kind}")


def _fstring_part(spec: Any, var: str) -> str:
    """The f-string piece that writes one field (constants inline, values with a format spec)."""
    width = spec.length
    if spec.format in ("constant", "reserved"):
        return spec.fixed_bytes.decode("ascii").replace("{", "{{").replace("}", "}}")
    if spec.format == "date":
        return f"{{{var}:%Y%m%d}}"
    if spec.format == "time":
        return f"{{{var}:%H%M%S}}"
    if spec.kind == "N" and spec.format != "rip":
        return f"{{{var}:0{width}d}}"
    return f"{{{var}:<{width}.{width}}}"


def record_writer(
    record: Any,
) -> tuple[Callable[[Callable[[str], Any], Sequence[list[Any]]], None], list[str]]:
    """Compile ``write_rows(write, columns)``: a plain ``for`` loop with ONE f-string built from the layout.

    Returns the function and the value columns it expects (the record number comes from the loop).
    """
    names = [f.name for f in record.value_fields if f.format != "record_number"]
    variables = {name: f"v{i}" for i, name in enumerate(names)}
    parts = [
        _fstring_part(f, "n" if f.format == "record_number" else variables.get(f.name, ""))
        for f in record.fields
    ]
    unpack = "".join(f"{variables[name]}, " for name in names)
    source = (
        "def write_rows(write, columns):\n"
        f"    for n, ({unpack}) in enumerate(zip(*columns), 1):\n"
        f'        write(f"{"".join(parts)}\\n")\n'
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<f-string writer {record.type}>", "exec"), namespace)
    return namespace["write_rows"], names


def python_trailer(layout: Any, columns: dict[str, list[Any]]) -> dict[str, int]:
    """The trailer totals (count, sums, CCP control hash), computed in plain Python from the lists."""
    values: dict[str, int] = {}
    for spec in layout.trailer.value_fields:
        agg = spec.aggregate
        if agg is None:
            raise SystemExit(f"trailer field {spec.name} has no aggregate: the baseline cannot fill it")
        rows: Sequence[int] = range(len(next(iter(columns.values()))))
        if agg.where_column:
            where = columns[agg.where_column]
            rows = [i for i in rows if where[i] == agg.where_value]
        if agg.function == "count":
            values[spec.name] = len(rows)
        elif agg.function == "sum":
            column = columns[agg.column]
            values[spec.name] = sum(column[i] for i in rows)
        else:
            rips = columns[agg.column]
            values[spec.name] = sum(int(rips[i][8:18]) for i in rows) % 10**18
    return values


def fstring_write(path: Path, kind: str, header: dict[str, Any], table: Any) -> int:
    """Baseline: write the whole file with f-strings in a Python loop; returns the file size."""
    from epay.formats import get_layout

    layout = get_layout(kind)
    head_rows, head_names = record_writer(layout.header)
    detail_rows, detail_names = record_writer(layout.detail)
    trailer_rows, trailer_names = record_writer(layout.trailer)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    trailer = python_trailer(layout, columns)
    with path.open("w", encoding="ascii", newline="") as handle:
        head_rows(handle.write, [[header[name]] for name in head_names])
        detail_rows(handle.write, [columns[name] for name in detail_names])
        trailer_rows(handle.write, [[trailer[name]] for name in trailer_names])
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size


def fwf_specs(kind: str) -> tuple[list[tuple[int, int]], list[str]]:
    """read_fwf colspecs and names of the details' value fields, from epay's layout objects."""
    from epay.formats import get_layout

    fields = get_layout(kind).detail.value_fields
    return [(f.offset, f.end) for f in fields], [f.name for f in fields]


# -- child: one operation in a fresh process -------------------------------------------------------
def prepare(op: str, kind: str, path: Path, rows: int) -> Callable[[], dict[str, Any]]:
    """Untimed setup; returns the timed call, which returns a few facts to check the run."""
    from epay.calendar import load_calendar
    from epay.formats import get_layout, parse_file, read_file, validate_file, write_file

    get_layout(kind)
    load_calendar()  # cached per process: a one-off cost, kept out of the timing
    if op in ("write", "write_unchecked", "fstring"):
        header, table = header_values(kind), details_table(kind, rows)
        if op in ("write", "write_unchecked"):
            checked = op == "write"

            def run_write() -> dict[str, Any]:
                result = write_file(path, kind, header, table, validate=checked)
                return {"details": result.detail_count, "bytes": result.size}

            return run_write

        def run_fstring() -> dict[str, Any]:
            return {"details": rows, "bytes": fstring_write(path, kind, header, table)}

        return run_fstring
    if op == "parse":

        def run_parse() -> dict[str, Any]:
            report = parse_file(path)
            table_rows = report.details.num_rows if report.details is not None else None
            return {"details": table_rows, "valid": report.valid}

        return run_parse
    if op == "read":

        def run_read() -> dict[str, Any]:
            report = read_file(path)
            table_rows = report.details.num_rows if report.details is not None else None
            return {"details": table_rows, "valid": report.valid}

        return run_read
    if op == "validate":

        def run_validate() -> dict[str, Any]:
            report = validate_file(path)
            return {"details": report.detail_count, "valid": report.valid, "problems": report.problem_count}

        return run_validate
    if op == "read_fwf":
        import pandas as pd

        colspecs, names = fwf_specs(kind)

        def run_fwf() -> dict[str, Any]:
            frame = pd.read_fwf(path, colspecs=colspecs, names=names, dtype=str, skiprows=1, nrows=rows)
            return {"details": len(frame), "columns": len(frame.columns)}

        return run_fwf
    raise SystemExit(f"unknown operation {op!r}")


def child(op: str, kind: str, path: Path, rows: int) -> None:
    call = prepare(op, kind, path, rows)
    setup_peak = _max_rss_bytes()
    rss_before = (_status_kib("VmRSS") or 0) * 1024
    reset = _reset_peak_rss()
    started = time.perf_counter()
    facts = call()
    seconds = time.perf_counter() - started
    result = {
        "op": op,
        "kind": kind,
        "seconds": seconds,
        "rss_before": rss_before,
        "setup_peak": setup_peak,
        "peak": _peak_since_reset(reset),
        "peak_reset": reset,
        "ru_maxrss_after": _max_rss_bytes(),
        "file_bytes": path.stat().st_size,
        "facts": facts,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# -- parent: run the children, summarise -----------------------------------------------------------
@dataclass
class Summary:
    op: str
    kind: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def _values(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.runs]

    @property
    def ok(self) -> bool:
        return bool(self.runs)

    def median(self, key: str = "seconds") -> float:
        return statistics.median(self._values(key))

    def low(self, key: str = "seconds") -> float:
        return min(self._values(key))

    def high(self, key: str = "seconds") -> float:
        return max(self._values(key))

    @property
    def details(self) -> int:
        return int(self.runs[0]["facts"]["details"])

    @property
    def file_bytes(self) -> int:
        return int(self.runs[0]["file_bytes"])

    def rows_per_s(self) -> float:
        return self.details / self.median()

    def mb_per_s(self) -> float:
        return self.file_bytes / MB / self.median()

    def peak_ratio(self) -> float:
        return self.high("peak") / self.file_bytes

    def growth(self) -> int:
        """The most the timed call added to the resident memory it started with."""
        return max(int(r["peak"]) - int(r["rss_before"]) for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op, "kind": self.kind, "runs": self.runs, "errors": self.errors}
        if self.ok:
            data.update(
                seconds_median=self.median(),
                seconds_min=self.low(),
                seconds_max=self.high(),
                rows_per_s=self.rows_per_s(),
                mb_per_s=self.mb_per_s(),
                rss_before_max=self.high("rss_before"),
                peak_rss_max=self.high("peak"),
                peak_rss_over_file=self.peak_ratio(),
                peak_growth_max=self.growth(),
            )
        return data


def run_child(op: str, kind: str, path: Path, rows: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        op,
        kind,
        str(path),
        "--rows",
        str(rows),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=REPO)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"{op} {kind} exited with {done.returncode}: " + " | ".join(tail))


def paths_for(kind: str, folder: Path) -> dict[str, Path]:
    epay_file = folder / file_name(kind)
    loop_file = folder / "fstring" / epay_file.name
    loop_file.parent.mkdir(exist_ok=True)
    (folder / "unchecked").mkdir(exist_ok=True)
    return {
        "write": epay_file,
        "write_unchecked": folder / "unchecked" / epay_file.name,
        "fstring": loop_file,
        "parse": epay_file,
        "read": epay_file,
        "validate": epay_file,
        "read_fwf": epay_file,
    }


def same_bytes(a: Path, b: Path) -> bool:
    if not (a.exists() and b.exists()) or a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while chunk := fa.read(8 << 20):
            if chunk != fb.read(8 << 20):
                return False
    return True


def run_kind(kind: str, rows: int, repeat: int, folder: Path) -> tuple[dict[str, Summary], bool]:
    """Rounds of write, fstring, read, validate, read_fwf: each round sees the same conditions."""
    paths = paths_for(kind, folder)
    summaries = {op: Summary(op, kind) for op in OPS}
    for round_no in range(1, repeat + 1):
        for op in OPS:
            if op != "write" and not paths["write"].exists():
                summaries[op].errors.append("no epay file to read (write failed)")
                continue
            print(f"  {kind} round {round_no}/{repeat}: {op} ...", end="", flush=True, file=sys.stderr)
            try:
                result = run_child(op, kind, paths[op], rows)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                summaries[op].errors.append(str(exc))
                print(" FAILED", file=sys.stderr)
                continue
            summaries[op].runs.append(result)
            print(f" {result['seconds']:.2f} s", file=sys.stderr)
    return summaries, same_bytes(paths["write"], paths["fstring"])


# -- printing ----------------------------------------------------------------------------------------
def _check_text(summary: Summary, rows: int) -> str:
    facts = [r["facts"] for r in summary.runs]
    bad = [f for f in facts if f.get("details") != rows or f.get("valid") is False]
    return "ok" if not bad else f"UNEXPECTED {bad[0]}"


def results_table(summaries: dict[str, Summary], rows: int) -> list[str]:
    head = (
        f"{'operation':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'rows/s':>11} {'MB/s':>7} "
        f"{'RSS before':>10} {'peak RSS':>9} {'growth':>7} {'peak/file':>9} {'growth/file':>11}  check"
    )
    lines = [head, "-" * len(head)]
    for op in OPS:
        s = summaries[op]
        if not s.ok:
            lines.append(f"{op:<10} FAILED: {s.errors[0] if s.errors else 'no run'}")
            continue
        lines.append(
            f"{op:<10} {s.median():>9.3f} {s.low():>7.3f} {s.high():>7.3f} {s.rows_per_s():>11,.0f} "
            f"{s.mb_per_s():>7.1f} {s.high('rss_before') / MB:>10.0f} {s.high('peak') / MB:>9.0f} "
            f"{s.growth() / MB:>7.0f} {s.peak_ratio():>9.2f} {s.growth() / s.file_bytes:>11.2f}  "
            f"{_check_text(s, rows)}"
        )
        if s.errors:
            lines.append(f"{'':<10} ({len(s.errors)} failed run(s): {s.errors[0]})")
    return lines


def _ratio(summaries: dict[str, Summary], fast: str, slow: str) -> float | None:
    a, b = summaries[fast], summaries[slow]
    return b.median() / a.median() if a.ok and b.ok else None


def _ratio_range(summaries: dict[str, Summary], fast: str, slow: str) -> str:
    a, b = summaries[fast], summaries[slow]
    if not (a.ok and b.ok):
        return ""
    return f"(range {b.low() / a.high():.1f}–{b.high() / a.low():.1f}×)"


def goal_rows(summaries: dict[str, Summary]) -> list[tuple[Goal, float | None, str]]:
    def rate(op: str) -> float | None:
        return summaries[op].rows_per_s() if summaries[op].ok else None

    rows: list[tuple[Goal, float | None, str]] = [
        (GOAL_WRITE, rate("write"), ""),
        (GOAL_PARSE, rate("parse"), ""),
        (GOAL_VALIDATE, rate("validate"), ""),
        (GOAL_VS_FWF, _ratio(summaries, "parse", "read_fwf"), _ratio_range(summaries, "parse", "read_fwf")),
        (
            INFO_READ_VS_FWF,
            _ratio(summaries, "read", "read_fwf"),
            _ratio_range(summaries, "read", "read_fwf"),
        ),
        (GOAL_VS_LOOP, _ratio(summaries, "write", "fstring"), _ratio_range(summaries, "write", "fstring")),
    ]
    for op in EPAY_OPS:
        s = summaries[op]
        rows.append(
            (Goal(f"{GOAL_RSS.text} ({op})", 3, "peak/file", False), s.peak_ratio() if s.ok else None, "")
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "n/a (failed)" if met is None else "MET" if met else "NOT MET"


def goals_table(summaries: dict[str, Summary]) -> list[str]:
    lines = [f"{'goal (judged on the median; peak RSS on the highest run)':<62} {'measured':>14}  verdict"]
    lines.append("-" * len(lines[0]))
    for goal, value, extra in goal_rows(summaries):
        if value is None:
            shown = "-"
        elif goal.figure == "rows/s":
            shown = f"{value:,.0f} rows/s"
        elif goal.figure == "speed-up":
            shown = f"{value:.1f}×"
        else:
            shown = f"{value:.2f}× file"
        lines.append(f"{goal.text:<62} {shown:>14}  {_verdict(goal.met(value))} {extra}".rstrip())
    return lines


def print_kind(kind: str, rows: int, summaries: dict[str, Summary], identical: bool) -> None:
    size = next((s.file_bytes for s in summaries.values() if s.ok), 0)
    note = " (the spec's maximum per file)" if rows == MAX_DETAILS else ""
    print(f"\n=== {kind}: {rows:,} details{note}, file {size:,} bytes ({size / MB:.1f} MB) ===")
    print("\n".join(results_table(summaries, rows)))
    print(f"f-string loop file byte-identical to epay's: {'yes' if identical else 'NO'}")
    resets = {bool(r["peak_reset"]) for s in summaries.values() for r in s.runs}
    if resets != {True}:
        print("peak RSS: high-water mark could NOT be reset; peak includes the setup")
    setups = [r["setup_peak"] for op in ("write", "fstring") for r in summaries[op].runs]
    if setups:
        print(
            f"(input-table generation peak, excluded from the write peaks: up to {max(setups) / MB:.0f} MB)"
        )
    print()
    print("\n".join(goals_table(summaries)))


def print_legend(rows: int, repeat: int) -> None:
    print(
        f"\nepay codec benchmark — {rows:,} details per file, {repeat} run(s) per figure, "
        "each run in a fresh process.\n"
        f"{MAX_DETAILS:,} details is the spec's maximum per PRLV/RETR file (§3, §5). MB = 10^6 bytes.\n"
        "seconds: median, min, max over the runs; rows/s = details / median; MB/s = file bytes / median.\n"
        "RSS before = resident memory when the timed call starts (interpreter, imports, input table);\n"
        "peak RSS = highest resident memory during the timed call (high-water mark reset just before it),\n"
        "highest over the runs; growth = peak RSS − RSS before (highest over the runs), in MB;\n"
        "peak/file = peak RSS / file size (the RSS goal is judged on it); growth/file = growth / file size.\n"
        "write = epay write_file (encode, built-in validation, fsync, rename); write_unchecked = the same\n"
        "with validate=False; fstring = plain Python loop, one f-string per record generated from the\n"
        "layout, trailer totals in Python, fsync. parse = epay parse_file (framing checked, values\n"
        "decoded into a pyarrow Table: for files already validated); read = epay read_file (parse + full\n"
        "validation in one pass, pyarrow Table); validate = epay validate_file (no table kept);\n"
        "read_fwf = pandas.read_fwf of the details' value fields, dtype=str (parsing only, no checks).\n"
        "Reads hit the page cache (the file was just written). Imports and the holiday calendar are setup."
    )


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=MAX_DETAILS, help="details per file (default 999,999)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process runs per figure (default 3)")
    parser.add_argument("--kinds", default="PRLV,RETR", help="comma-separated file kinds (default PRLV,RETR)")
    parser.add_argument("--out-dir", type=Path, help="keep the files here (default: a temp dir, deleted)")
    parser.add_argument("--json", action="store_true", help=f"also write {JSON_OUT.relative_to(REPO)}")
    parser.add_argument("--child", nargs=3, metavar=("OP", "KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or not 1 <= args.rows <= MAX_DETAILS:
        parser.error(f"--repeat must be ≥ 1 and --rows 1 to {MAX_DETAILS:,}")
    args.kinds = [k.strip().upper() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kinds if k not in DATES]
    if unknown:
        parser.error(f"--kinds: only {', '.join(DATES)} are benchmarked, not {', '.join(unknown)}")
    return args


def write_json(rows: int, repeat: int, results: dict[str, tuple[dict[str, Summary], bool]]) -> None:
    data = {
        "rows": rows,
        "repeat": repeat,
        "python": sys.version.split()[0],
        "kinds": {
            kind: {
                "fstring_identical": identical,
                "operations": {op: s.to_dict() for op, s in summaries.items()},
                "goals": [
                    {"goal": g.text, "target": g.target, "measured": v, "met": g.met(v)}
                    for g, v, _ in goal_rows(summaries)
                ],
            }
            for kind, (summaries, identical) in results.items()
        },
    }
    JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
    JSON_OUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {JSON_OUT.relative_to(REPO)}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        op, kind, path = args.child
        child(op, kind, Path(path), args.rows)
        return
    folder = args.out_dir or Path(tempfile.mkdtemp(prefix="epay-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, tuple[dict[str, Summary], bool]] = {}
    started = time.perf_counter()
    try:
        for kind in args.kinds:
            print(f"{kind}: {args.rows:,} details × {args.repeat} round(s) in {folder}", file=sys.stderr)
            results[kind] = run_kind(kind, args.rows, args.repeat, folder)
    finally:
        if args.out_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    print_legend(args.rows, args.repeat)
    for kind, (summaries, identical) in results.items():
        print_kind(kind, args.rows, summaries, identical)
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s")
    if args.json:
        write_json(args.rows, args.repeat, results)


if __name__ == "__main__":
    main()
