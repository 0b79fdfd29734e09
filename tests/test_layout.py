"""The layouts in schemas/ are the single source of truth; they must be complete and consistent."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from epay.formats.docs import layouts_markdown
from epay.formats.layout import KINDS, SCHEMA_DIR, LayoutError, all_layouts, load_layout
from tests.conftest import REPO


def test_every_record_covers_160_positions_without_gap() -> None:
    for kind, layout in all_layouts().items():
        for record in layout.records:
            assert sum(f.length for f in record.fields) == 160, (kind, record.type)
            assert record.fields[0].name == "record_type"


def test_all_five_kinds_are_described() -> None:
    assert set(all_layouts()) == set(KINDS) == {"PRLV", "ACK", "RETR", "MNDT", "RELV"}


def test_spec_positions_spot_checks() -> None:
    prlv = all_layouts()["PRLV"]
    assert (
        prlv.detail.field("end_to_end_reference").start,
        prlv.detail.field("end_to_end_reference").length,
    ) == (75, 24)
    assert prlv.trailer.field("control_hash").start == 27
    retr = all_layouts()["RETR"]
    assert (
        retr.detail.field("prlv_file_name").start == 103 and retr.detail.field("prlv_file_name").length == 40
    )
    assert all_layouts()["MNDT"].detail.field("action").start == 93
    assert all_layouts()["ACK"].header.field("file_kind").fixed_bytes == b"ACK "
    assert all_layouts()["RETR"].header.field("file_kind").value == "RETR"


def test_documentation_is_generated_from_the_layouts() -> None:
    committed = (REPO / "schemas" / "LAYOUTS.md").read_text(encoding="utf-8")
    assert layouts_markdown() in committed, "schemas/LAYOUTS.md is stale: run `make docs`"


def _broken(tmp_path: Path, change: str, replacement: str) -> Path:
    text = (SCHEMA_DIR / "PRLV.toml").read_text(encoding="utf-8")
    assert change in text
    path = tmp_path / "PRLV.toml"
    path.write_text(text.replace(change, replacement, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "replacement", "message"),
    [
        ("start = 61,  length = 14", "start = 61,  length = 13", "starts at"),
        ('format = "amount", positive', 'format = "text", positive', "not allowed for kind N"),
        ('aggregate = "sum(amount)"', 'aggregate = "sum()"', "bad aggregate"),
        ('codes = ["FA", "RA"]', "codes = []", "lists no codes"),
        ('value = "06"', 'value = "07"', "record_type"),
    ],
)
def test_a_broken_layout_is_refused(tmp_path: Path, change: str, replacement: str, message: str) -> None:
    common = tomllib.loads((SCHEMA_DIR / "common.toml").read_text(encoding="utf-8"))
    with pytest.raises(LayoutError, match=message):
        load_layout(_broken(tmp_path, change, replacement), common)
