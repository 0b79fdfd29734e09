"""Which billing items to debit on a business date: pure rules on frames (no database, no files).

An item is selected when it is due (an open invoice due on or before the date, a confirmed recharge
order), its subscriber has a mandate active on the date, and it is not held back by the retry rules.
Everything due but not selected gets exactly one exclusion reason, so finance can see why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from epay.calendar import BusinessCalendar

RETRYABLE = ("AM04", "MS03")

# One reason per excluded item, first match wins, in this order.
NO_MANDATE = "no_mandate"
MANDATE_BLOCKED = "mandate_blocked"  # AC01/MD01: until AP reports a new action for it
MANDATE_SUSPENDED = "mandate_suspended"  # AC04/AC06/MD07
MANDATE_REVOKED = "mandate_revoked"
MANDATE_NOT_YET_EFFECTIVE = "mandate_not_yet_effective"
TRIES_EXHAUSTED = "tries_exhausted"
RETRY_LATER = "retry_later"

ITEM_COLUMNS = (
    "item_id",
    "kind",
    "number",
    "subscriber_number",
    "subscriber_name",
    "amount",
    "due_date",
    "tries",
    "last_reason",
    "last_reason_on",
)
MANDATE_COLUMNS = (
    "reference",
    "subscriber_number",
    "rip",
    "ceiling",
    "effective_date",
    "revoked_from",
    "status",
)


@dataclass(frozen=True)
class RetryPolicy:
    """AM04/MS03 rejects come back after ``after_business_days``, up to ``max_tries`` presentations."""

    after_business_days: int = 2
    max_tries: int = 3

    def __post_init__(self) -> None:
        if self.after_business_days < 1 or self.max_tries < 1:
            raise ValueError(f"retry policy needs positive values, got {self}")


@dataclass(frozen=True)
class Selection:
    selected: pd.DataFrame  # item columns + mandate_reference, rip, ceiling; ordered by (kind, number)
    excluded: pd.DataFrame  # item_id, reason, detail
    exhausted: npt.NDArray[np.int64]  # item ids whose tries are used up: they stop for good


def _dates(values: pd.Series) -> npt.NDArray[np.datetime64]:
    return pd.to_datetime(values).to_numpy(dtype="datetime64[D]")


def mandate_on(mandates: pd.DataFrame, day: date, settles: date | None = None) -> pd.DataFrame:
    """Per subscriber, the mandate that decides: one active from ``day`` through ``settles`` if any
    (latest effective date, then reference), else the one that explains why there is none.

    Active on the build date (the rule) and still on the settlement date, when Algérie Poste checks it:
    a mandate revoked from the settlement date would come back MD01 and get blocked."""
    if mandates.empty:
        return pd.DataFrame(columns=[*MANDATE_COLUMNS, "usable", "reason"])
    day64 = np.datetime64(day, "D")
    settles64 = np.datetime64(settles or day, "D")
    effective = _dates(mandates["effective_date"])
    revoked = _dates(mandates["revoked_from"])
    status = mandates["status"].to_numpy(dtype=object)
    reason = np.full(len(mandates), "", dtype=object)
    reason[effective > day64] = MANDATE_NOT_YET_EFFECTIVE
    reason[~np.isnat(revoked) & (revoked <= settles64)] = MANDATE_REVOKED
    reason[status == "suspended"] = MANDATE_SUSPENDED
    reason[status == "blocked"] = MANDATE_BLOCKED
    # usable first, then the latest effective date, then the reference: deterministic. Sorted on the
    # key columns alone, then one take of the winning rows (a million mandates are not copied 4 times).
    keys = pd.DataFrame(
        {
            "subscriber_number": mandates["subscriber_number"].array,
            "usable": reason == "",
            "effective": effective,
            "reference": mandates["reference"].array,
        }
    )
    keys = keys.sort_values(
        ["subscriber_number", "usable", "effective", "reference"], ascending=[True, False, False, False]
    )
    first = keys.drop_duplicates("subscriber_number", keep="first").index.to_numpy()
    chosen = mandates.iloc[first].reset_index(drop=True)
    chosen["usable"] = reason[first] == ""
    chosen["reason"] = reason[first]
    return chosen


def select_due(
    items: pd.DataFrame,
    mandates: pd.DataFrame,
    day: date,
    calendar: BusinessCalendar,
    policy: RetryPolicy,
    settles: date | None = None,
) -> Selection:
    """Apply the selection rules to the items that are due on ``day`` and not in a live instruction.

    ``items`` must already be limited to state ``due`` with a due date on or before ``day`` (the
    database does that cheaply); this function decides mandates and retries.
    """
    chosen = mandate_on(mandates, day, settles)[
        ["subscriber_number", "reference", "rip", "ceiling", "reason"]
    ]
    del mandates
    merged = items.merge(chosen, on="subscriber_number", how="left")
    del items, chosen
    reason = merged["reason"].to_numpy(dtype=object).copy()
    reason[merged["reference"].isna().to_numpy()] = NO_MANDATE
    detail = np.full(len(merged), None, dtype=object)

    retrying = merged["last_reason"].isin(RETRYABLE).to_numpy()
    tries = merged["tries"].to_numpy(dtype=np.int64)
    exhausted = tries >= policy.max_tries  # whatever brought the item back to due
    waited = _business_days_since(merged["last_reason_on"], day, calendar)
    too_soon = retrying & ~exhausted & (waited < policy.after_business_days)
    open_ = reason == ""
    reason[open_ & exhausted] = TRIES_EXHAUSTED
    detail[open_ & exhausted] = [f"{t} tries" for t in tries[open_ & exhausted]]
    reason[open_ & too_soon] = RETRY_LATER
    detail[open_ & too_soon] = [
        f"{w} of {policy.after_business_days} business days since {r}"
        for w, r in zip(
            waited[open_ & too_soon], merged["last_reason"].to_numpy()[open_ & too_soon], strict=True
        )
    ]
    # a subscriber without a usable mandate also stops a retry that ran out: exhaustion is final
    exhausted_ids = merged["item_id"].to_numpy(dtype=np.int64)[exhausted]

    go = reason == ""
    excluded = pd.DataFrame(
        {
            "item_id": merged["item_id"].to_numpy(dtype=np.int64)[~go],
            "reason": reason[~go],
            "detail": detail[~go],
        }
    )
    keep = [c for c in merged.columns if c != "reason"]
    selected = merged.loc[go, keep].rename(columns={"reference": "mandate_reference"})
    del merged
    selected = selected.sort_values(["kind", "number"], kind="stable", ignore_index=True)
    selected["ceiling"] = selected["ceiling"].astype("int64")
    return Selection(selected=selected, excluded=excluded, exhausted=exhausted_ids)


def _business_days_since(days: pd.Series, day: date, calendar: BusinessCalendar) -> npt.NDArray[np.int64]:
    """Business days in (d, day] for each d; 0 where d is missing."""
    values = _dates(days)
    out = np.zeros(len(values), dtype=np.int64)
    known = ~np.isnat(values)
    for distinct in np.unique(values[known]):  # few distinct reject dates: one count each
        out[values == distinct] = calendar.business_days_between(distinct.astype(object), day)
    return out
