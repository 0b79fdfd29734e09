"""Field tables in Markdown, generated from the layouts (``make docs`` writes schemas/LAYOUTS.md)."""

from __future__ import annotations

import sys

from epay.formats.layout import RecordLayout, all_layouts


def _rule(record: RecordLayout, name: str) -> str:
    spec = record.field(name)
    parts: list[str] = []
    if spec.format == "constant":
        parts.append(f"`{spec.value}`")
    elif spec.format == "reserved":
        parts.append("spaces")
    elif spec.codes:
        parts.append(" ".join(f"`{c}`" for c in spec.codes) + (" or spaces" if spec.optional else ""))
    else:
        parts.append(spec.format)
    for flag in ("required", "positive", "unique"):
        if getattr(spec, flag):
            parts.append(
                flag + (f" with `{spec.unique_with}`" if flag == "unique" and spec.unique_with else "")
            )
    if spec.aggregate is not None:
        agg = spec.aggregate
        where = f" where {agg.where_column} = {agg.where_value}" if agg.where_column else ""
        parts.append(f"= {agg.function}({agg.column or ''}){where}")
    if spec.file_name:
        parts.append(f"= file name's {spec.file_name}")
    return ", ".join(parts)


def layouts_markdown(kinds: list[str] | None = None) -> str:
    out: list[str] = []
    for kind, layout in all_layouts().items():
        if kinds and kind not in kinds:
            continue
        out.append(f"## {kind} ({layout.direction}, `{layout.name_pattern}` in `/{layout.folder}/`)\n")
        out.append(f"{layout.min_details} to {layout.max_details} details.\n")
        for record in layout.records:
            out.append(f"\n### {record.role} `{record.type}`\n")
            out.append("| pos | len | kind | field | rule | description |")
            out.append("|---|---|---|---|---|---|")
            for spec in record.fields:
                out.append(
                    f"| {spec.start}–{spec.end} | {spec.length} | {spec.kind} | `{spec.name}` | "
                    f"{_rule(record, spec.name)} | {spec.description} |"
                )
        out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    header = (
        "# Record layouts\n\nGenerated from `schemas/layouts/*.toml` by `make docs`; do not edit by hand.\n\n"
    )
    sys.stdout.write(header + layouts_markdown())
