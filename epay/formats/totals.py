"""Trailer totals from details, as the layouts' ``aggregate`` expressions say: one code for the writer
(which computes the trailer) and the reader (which checks it, AM10)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from epay.formats.fields import exact_sum
from epay.formats.layout import FileLayout

CCP_HASH_MODULUS = 10**18


def accumulate(
    layout: FileLayout,
    rows: int,
    columns: Mapping[str, pa.Array | pa.ChunkedArray],
    accounts: Mapping[str, npt.NDArray[np.int64]],
    sums: dict[str, int],
) -> None:
    """Add one chunk's contribution to ``sums`` (by trailer field name).

    ``accounts`` maps a RIP column to its CCP account numbers (the decoder computes them).
    """
    masks: dict[tuple[str, str], npt.NDArray[np.bool_]] = {}
    for spec in layout.trailer.fields:
        agg = spec.aggregate
        if agg is None:
            continue
        mask = None
        if agg.where_column and agg.where_value:
            key = (agg.where_column, agg.where_value)
            if key not in masks:
                equal = pc.equal(columns[agg.where_column], agg.where_value).fill_null(False)
                masks[key] = np.asarray(equal.to_numpy(zero_copy_only=False), dtype=np.bool_)
            mask = masks[key]
        if agg.function == "count":
            add = rows if mask is None else int(mask.sum())
        elif agg.function == "sum":
            assert agg.column is not None
            values = np.asarray(columns[agg.column].to_numpy(), dtype=np.int64)
            add = exact_sum(values if mask is None else values[mask])
        else:  # ccp_hash
            assert agg.column is not None
            add = int(accounts[agg.column].sum())
        sums[spec.name] = sums.get(spec.name, 0) + add


def finish(layout: FileLayout, sums: Mapping[str, int]) -> dict[str, int]:
    """The trailer values: sums as accumulated, the control hash modulo 10^18."""
    totals: dict[str, int] = {}
    for spec in layout.trailer.fields:
        if spec.aggregate is None:
            continue
        total = sums.get(spec.name, 0)
        totals[spec.name] = total % CCP_HASH_MODULUS if spec.aggregate.function == "ccp_hash" else total
    return totals
