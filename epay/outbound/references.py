"""End-to-end references: unique for the creditor forever, and saying nothing about anyone.

``E`` + business date (8) + batch number in the day (2) + position in the batch (13) = 24 characters,
A–Z 0–9 only (spec §3). A batch is built once per (date, number), so no two instructions ever get the
same reference; the position follows the batch's sort order, so a re-run derives the same references.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_BATCHES_PER_DAY = 99
MAX_POSITION = 10**13 - 1


def references(business_date: date, batch_number: int, count: int) -> pa.Array:
    if not 1 <= batch_number <= MAX_BATCHES_PER_DAY:
        raise ValueError(f"batch number {batch_number} outside 1..{MAX_BATCHES_PER_DAY}")
    if count > MAX_POSITION:
        raise ValueError(f"{count} instructions do not fit in one batch")
    prefix = f"E{business_date:%Y%m%d}{batch_number:02d}"
    positions = pa.array(np.arange(1, count + 1, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(positions, 13, "0"), "")
