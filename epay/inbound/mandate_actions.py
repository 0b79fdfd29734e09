"""Judging an MNDT file's actions before they change the ledger (pure: frames in, decisions out), the way
``epay.inbound.returns`` judges a RETR's statuses. An action that cannot be right is held as an exception
for investigation, never applied; the file's other actions apply.

- ``mandate_conflict``: an ``N`` (new) for a mandate reference the ledger already holds for another
  subscriber — AP assigns each reference once; applying it would move a subscriber's mandate to another;
- ``unknown_mandate``: an ``M`` or ``R`` for a reference neither the ledger nor an earlier ``N`` of the same
  file knows — it would create a mandate nobody signed;
- ``far_effective_date``: an effective date more than ``EFFECTIVE_WINDOW_DAYS`` from the file's
  processing date — AP reports an action in the next MNDT (contract §6), so a date years away is a typo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

MANDATE_CONFLICT = "mandate_conflict"
UNKNOWN_MANDATE = "unknown_mandate"
IMPLAUSIBLE_EFFECTIVE_DATE = "far_effective_date"  # (return_exception.kind holds 24 characters)
EFFECTIVE_WINDOW_DAYS = 366


@dataclass(frozen=True)
class MandatePlan:
    apply: pd.DataFrame  # the actions to apply, in file order
    exceptions: pd.DataFrame  # line, reference, kind, detail


def judge_mandate_actions(actions: pd.DataFrame, known: pd.DataFrame, processing_date: date) -> MandatePlan:
    """``actions``: the file's ACTION_COLUMNS in file order; ``known``: the ledger's ``reference`` and
    ``subscriber_number`` of the mandates the file names."""
    frame = actions.reset_index(drop=True)
    lines = np.arange(2, len(frame) + 2)
    kind = np.full(len(frame), "", dtype=object)
    detail = np.full(len(frame), "", dtype=object)
    owner = dict(zip(known["reference"], known["subscriber_number"].astype(str).str.strip(), strict=True))
    introduced: set[str] = set()
    effective = pd.to_datetime(frame["effective_date"]).dt.date
    window = timedelta(days=EFFECTIVE_WINDOW_DAYS)
    for i, (reference, action, subscriber, day) in enumerate(
        zip(
            frame["mandate_reference"].astype(str).str.strip(),
            frame["action"],
            frame["subscriber_number"].astype(str).str.strip(),
            effective,
            strict=True,
        )
    ):
        if abs(day - processing_date) > window:
            kind[i], detail[i] = (
                IMPLAUSIBLE_EFFECTIVE_DATE,
                f"{action} effective {day}, more than {EFFECTIVE_WINDOW_DAYS} days from the file's date "
                f"{processing_date}",
            )
        elif action == "N" and reference in owner and owner[reference] != subscriber:
            kind[i], detail[i] = (
                MANDATE_CONFLICT,
                f"N for mandate {reference}, which the ledger holds for subscriber {owner[reference]}, "
                f"not {subscriber}",
            )
        elif action in ("M", "R") and reference not in owner and reference not in introduced:
            kind[i], detail[i] = (UNKNOWN_MANDATE, f"{action} for mandate {reference}, which nobody signed")
        elif action == "N":
            introduced.add(reference)
    held = kind != ""
    return MandatePlan(
        apply=frame.loc[~held].reset_index(drop=True),
        exceptions=pd.DataFrame(
            {
                "line": lines[held],
                "reference": frame["mandate_reference"].astype(str).str.strip().to_numpy()[held],
                "kind": kind[held],
                "detail": detail[held],
            }
        ),
    )
