"""File layouts, loaded from ``schemas/layouts/*.toml`` — the single source of truth for positions.

Nothing else in epay knows where a field starts or how wide it is: the encoder, the decoder, the
validator and the documentation all walk these objects.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

RECORD_LENGTH = 160
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "layouts"
KINDS = ("PRLV", "ACK", "RETR", "MNDT", "RELV")

FieldKind = Literal["N", "A", "F"]
FORMATS_BY_KIND: dict[str, frozenset[str]] = {
    "N": frozenset({"constant", "record_number", "number", "count", "amount", "date", "time", "rip"}),
    "A": frozenset({"constant", "reserved", "text", "identifier", "reference", "code"}),
    "F": frozenset({"filename"}),
}
# Formats whose values appear as columns of decoded tables (constants and padding do not).
VALUE_FORMATS = frozenset(
    {
        "record_number",
        "number",
        "count",
        "amount",
        "date",
        "time",
        "rip",
        "text",
        "identifier",
        "reference",
        "code",
        "filename",
    }
)
_AGGREGATE = re.compile(r"^(?P<fn>count|sum|ccp_hash)\((?P<args>[^()]*)\)$")
_CONDITION = re.compile(r"^(?P<col>[a-z_]+)=(?P<eq>[A-Z0-9]+)$")
_COLUMN = re.compile(r"^[a-z_]+$")


class LayoutError(ValueError):
    """A layout file in schemas/ is inconsistent (overlapping fields, gaps, unknown format...)."""


@dataclass(frozen=True)
class Aggregate:
    """How a trailer field is derived from the details: ``count()``, ``sum(amount, status=ACSC)``..."""

    function: Literal["count", "sum", "ccp_hash"]
    column: str | None
    where_column: str | None
    where_value: str | None

    @classmethod
    def parse(cls, text: str) -> Aggregate:
        m = _AGGREGATE.match(text.replace(" ", ""))
        if not m:
            raise LayoutError(f"bad aggregate expression {text!r}")
        args = [a for a in m["args"].split(",") if a]
        column = args.pop(0) if args and _COLUMN.match(args[0]) else None
        condition = _CONDITION.match(args.pop(0)) if args else None
        if (
            args
            or (m["fn"] == "count") == (column is not None)
            or (condition is None and m["args"].count("="))
        ):
            raise LayoutError(f"bad aggregate expression {text!r}")
        return cls(
            function=m["fn"],  # type: ignore[arg-type]
            column=column,
            where_column=condition["col"] if condition else None,
            where_value=condition["eq"] if condition else None,
        )


@dataclass(frozen=True)
class FieldSpec:
    name: str
    start: int  # 1-based, as in the spec
    length: int
    kind: FieldKind
    format: str
    value: str | None = None
    codes: tuple[str, ...] = ()
    optional: bool = False
    required: bool = False
    positive: bool = False
    unique: bool = False
    unique_with: str | None = None  # unique together with this other field of the record
    aggregate: Aggregate | None = None
    file_name: str | None = None
    file_kind: str | None = None
    description: str = ""

    @property
    def offset(self) -> int:
        """0-based first byte."""
        return self.start - 1

    @property
    def end(self) -> int:
        """0-based, exclusive."""
        return self.start - 1 + self.length

    @property
    def fixed_bytes(self) -> bytes:
        """The exact bytes of a constant (value padded per kind) or reserved (spaces) field."""
        if self.format == "reserved":
            return b" " * self.length
        assert self.value is not None
        return self.value.ljust(self.length).encode("ascii")

    @property
    def has_value(self) -> bool:
        return self.format in VALUE_FORMATS


@dataclass(frozen=True)
class RecordLayout:
    type: str
    role: Literal["header", "detail", "trailer"]
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"record {self.type} has no field {name!r}")

    @property
    def value_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.has_value)

    def field_at(self, position: int) -> FieldSpec:
        """The field holding 0-based byte ``position``."""
        for f in self.fields:
            if f.offset <= position < f.end:
                return f
        raise IndexError(position)


@dataclass(frozen=True)
class FileLayout:
    kind: str
    direction: str
    folder: str
    name_pattern: str
    min_details: int
    max_details: int
    header: RecordLayout
    detail: RecordLayout
    trailer: RecordLayout
    settlement_rule: bool = False
    equal_header_dates: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> tuple[RecordLayout, RecordLayout, RecordLayout]:
        return (self.header, self.detail, self.trailer)

    def record_for_type(self, record_type: str) -> RecordLayout | None:
        for r in self.records:
            if r.type == record_type:
                return r
        return None


def _field(raw: dict[str, Any], kind: str) -> FieldSpec:
    unknown = set(raw) - {
        "name",
        "start",
        "length",
        "kind",
        "format",
        "value",
        "codes",
        "optional",
        "required",
        "positive",
        "unique",
        "unique_with",
        "aggregate",
        "file_name",
        "file_kind",
        "description",
    }
    if unknown:
        raise LayoutError(f"field {raw.get('name')!r}: unknown attributes {sorted(unknown)}")
    value = raw.get("value")
    if isinstance(value, str):
        value = value.replace("{kind}", kind)
    agg = raw.get("aggregate")
    return FieldSpec(
        name=raw["name"],
        start=int(raw["start"]),
        length=int(raw["length"]),
        kind=raw["kind"],
        format=raw["format"],
        value=value,
        codes=tuple(raw.get("codes", ())),
        optional=bool(raw.get("optional", False)),
        required=bool(raw.get("required", False)),
        positive=bool(raw.get("positive", False)),
        unique=bool(raw.get("unique", False)),
        unique_with=raw.get("unique_with"),
        aggregate=Aggregate.parse(agg) if agg else None,
        file_name=raw.get("file_name"),
        file_kind=raw.get("file_kind"),
        description=raw.get("description", ""),
    )


def _record(raw: dict[str, Any], kind: str, where: str) -> RecordLayout:
    fields = tuple(_field(f, kind) for f in raw["fields"])
    record = RecordLayout(type=raw["type"], role=raw["role"], fields=fields)
    _check_record(record, f"{where} record {record.type}")
    return record


def _check_record(record: RecordLayout, where: str) -> None:
    position = 1
    names: set[str] = set()
    for f in record.fields:
        if f.start != position:
            raise LayoutError(f"{where}: field {f.name} starts at {f.start}, expected {position}")
        if f.length <= 0:
            raise LayoutError(f"{where}: field {f.name} has length {f.length}")
        if f.name in names:
            raise LayoutError(f"{where}: field {f.name} twice")
        names.add(f.name)
        if f.format not in FORMATS_BY_KIND.get(f.kind, frozenset()):
            raise LayoutError(f"{where}: field {f.name}: format {f.format} is not allowed for kind {f.kind}")
        if f.format == "constant" and (f.value is None or len(f.value) > f.length):
            raise LayoutError(f"{where}: constant field {f.name} needs a value of at most {f.length} chars")
        if f.format == "code" and not f.codes:
            raise LayoutError(f"{where}: code field {f.name} lists no codes")
        if f.kind == "N" and f.format not in ("rip", "constant") and f.length > 18:
            raise LayoutError(f"{where}: numeric field {f.name} wider than 18 digits does not fit int64")
        position += f.length
    if position - 1 != RECORD_LENGTH:
        raise LayoutError(f"{where}: fields cover {position - 1} positions, not {RECORD_LENGTH}")
    first = record.fields[0]
    if first.name != "record_type" or first.value != record.type:
        raise LayoutError(f"{where}: first field must be record_type = {record.type}")


def load_layout(path: Path, common: dict[str, Any]) -> FileLayout:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    kind = raw["kind"]
    records = {}
    for role in ("header", "detail", "trailer"):
        section = raw[role]
        if "use" in section:
            section = common[section["use"]]
        records[role] = _record(section, kind, f"{path.name}")
    known = {
        "kind",
        "direction",
        "folder",
        "name_pattern",
        "min_details",
        "max_details",
        "header",
        "detail",
        "trailer",
        "settlement_rule",
        "equal_header_dates",
    }
    return FileLayout(
        kind=kind,
        direction=raw["direction"],
        folder=raw["folder"],
        name_pattern=raw["name_pattern"],
        min_details=int(raw["min_details"]),
        max_details=int(raw["max_details"]),
        header=records["header"],
        detail=records["detail"],
        trailer=records["trailer"],
        settlement_rule=bool(raw.get("settlement_rule", False)),
        equal_header_dates=bool(raw.get("equal_header_dates", False)),
        extra={k: v for k, v in raw.items() if k not in known},
    )


@cache
def all_layouts(schema_dir: Path = SCHEMA_DIR) -> dict[str, FileLayout]:
    common = tomllib.loads((schema_dir / "common.toml").read_text(encoding="utf-8"))
    layouts = {kind: load_layout(schema_dir / f"{kind}.toml", common) for kind in KINDS}
    for kind, layout in layouts.items():
        if layout.kind != kind:
            raise LayoutError(f"{kind}.toml declares kind {layout.kind}")
    return layouts


def get_layout(kind: str) -> FileLayout:
    try:
        return all_layouts()[kind]
    except KeyError:
        raise KeyError(f"unknown file kind {kind!r}; known: {', '.join(KINDS)}") from None
