"""Small vectorised helpers over pandas' Arrow-backed columns."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def isin(values: pd.Series, candidates: Iterable[object] | pd.Series) -> npt.NDArray[np.bool_]:
    """``values.isin(candidates)`` computed by Arrow: pandas 3 converts every candidate of an Arrow
    string column to a Python scalar first (seconds for a million candidates)."""
    if isinstance(candidates, pd.Series):
        pool = pa.array(candidates, from_pandas=True)
    else:
        pool = pa.array(list(candidates), from_pandas=True)
    column = pa.array(values, from_pandas=True)
    if len(pool) == 0:
        return np.zeros(len(values), dtype=bool)
    if pool.type != column.type:
        pool = pool.cast(column.type)
    found = pc.is_in(column, value_set=pool)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
