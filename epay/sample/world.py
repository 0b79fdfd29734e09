"""A realistic, reproducible world as of a business date D: AT's billing extract, the mandates AT learnt
from MNDT files, and AP's CCP accounts.

Pure and vectorised (numpy + pyarrow; no loop over the population), seeded: the same
(subscribers, seed, as_of, calendar) always gives identical frames. Shares of each situation are
exact counts (at least one row as soon as the population allows) placed at random, so even a small
world holds every case: Arabic-only names, revoked and future mandates, ceilings, bad RIP keys, closed,
blocked and deceased accounts, low balances, cancelled invoices, payments made elsewhere.

Frames and their types:

- ``extract``: the columns of the billing-extract contract, in order, Arrow-backed (``pd.ArrowDtype``:
  string, int64, date32; <NA> where a column does not apply), so it writes as the contract's Parquet.
- ``mandates`` and ``accounts``: the input frames of the post office: ``str`` columns, numpy int64 and
  bool, dates as ``datetime.date`` objects (``revoked_from`` None when not revoked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from epay.calendar import MAX_YEAR, MIN_YEAR, BusinessCalendar
from epay.formats.rip import AGENCY_CODE, BANK_CODE, expected_keys
from epay.sample.names import Names, draw_names

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MAX_SUBSCRIBERS: Final = 10_000_000
EPOCH: Final = date(1970, 1, 1)

# -- proportions (exact counts, placed at random) ------------------------------------------------------
ARABIC_ONLY_SHARE: Final = 0.005
MANDATE_SHARE: Final = 0.85  # the others pay at counters
# current mandate of a subscriber: revoked (revoked_from <= D), not yet effective, re-signed (an older
# mandate on an older, now closed, account was revoked when this one was signed); the rest are active
MANDATE_STATES: Final = (0.03, 0.02, 0.01)
REVOKED, FUTURE, RESIGNED = 1, 2, 3
BAD_RIP_SHARE: Final = 0.002  # AP registered the mandate with a wrong RIP key
# the counter typed another account number whose key still checks (1 typo in 97 passes): AP holds the
# mandate, but no such CCP exists, so the first debit comes back AC01 and blocks it on AT's side
MISTYPED_ACCOUNT_SHARE: Final = 0.003
CEILING_SHARE: Final = 0.20
CEILINGS_DZD: Final = (2_000, 3_000, 5_000, 10_000)
CEILING_WEIGHTS: Final = (0.20, 0.20, 0.35, 0.25)
# account of a mandated subscriber: closed, blocked, deceased holder, balance below its smallest bill
ACCOUNT_STATES: Final = (0.005, 0.003, 0.002, 0.05)
CLOSED, BLOCKED, DECEASED, LOW = 1, 2, 3, 4
CURRENT_INVOICE_SHARE: Final = 0.95
OLDER_INVOICE_SHARE: Final = 0.10  # of those with a current invoice: last month's is still unpaid
CANCELLED_INVOICE_SHARE: Final = 0.02
RECHARGE_SHARE: Final = 0.25
RECHARGE_PRICES_DZD: Final = (1_600, 2_100, 2_600, 3_100, 4_100)
RECHARGE_WEIGHTS: Final = (0.30, 0.25, 0.20, 0.15, 0.10)
RECHARGE_STATES: Final = (0.12, 0.03)  # PENDING, CANCELLED; the rest CONFIRMED
PAID_INVOICE_SHARE: Final = 0.03  # of open invoices, paid elsewhere
PAID_RECHARGE_SHARE: Final = 0.01  # of confirmed recharge orders already placed, paid elsewhere
CARD_SHARE: Final = 0.35  # of payments made elsewhere; the rest at a counter

EXTRACT_SCHEMA: Final = pa.schema(
    [
        ("record", pa.string()),
        ("subscriber_number", pa.string()),
        ("subscriber_name", pa.string()),
        ("item_number", pa.string()),
        ("item_kind", pa.string()),
        ("amount", pa.int64()),
        ("issued_on", pa.date32()),
        ("due_date", pa.date32()),
        ("status", pa.string()),
        ("paid_on", pa.date32()),
        ("channel", pa.string()),
    ]
)
MANDATE_COLUMNS: Final = (
    "reference",
    "rip",
    "debtor_name",
    "subscriber_number",
    "ceiling",
    "effective_date",
    "revoked_from",
)
POSTE_MANDATE_COLUMNS: Final = (
    "reference",
    "creditor_id",
    "rip",
    "debtor_name",
    "subscriber_number",
    "ceiling",
    "effective_date",
)
ACCOUNT_COLUMNS: Final = ("rip", "holder", "balance", "status", "deceased")


@dataclass(frozen=True, eq=False)
class World:
    """AT's billing extract, AT's mandates (as learnt from MNDT files) and AP's accounts, as of a day."""

    as_of: date
    extract: pd.DataFrame
    mandates: pd.DataFrame
    accounts: pd.DataFrame

    def poste_mandates(self, creditor_id: str) -> pd.DataFrame:
        """The mandates AP holds for ``creditor_id``, as ``PostOffice.add_mandates`` takes them.

        Revoked mandates are left out, and so are the few with a wrong RIP key: the post office's
        counter refuses to register those, and an instruction on such a RIP is rejected AC01 (unknown
        account, checked before the mandate) whether or not AP holds the mandate.
        """
        keep = self.mandates["revoked_from"].isna().to_numpy() & _keys_ok(self.mandates["rip"])
        frame = self.mandates.loc[keep, list(MANDATE_COLUMNS[:-1])].reset_index(drop=True)
        frame.insert(1, "creditor_id", creditor_id)
        return frame


def generate_world(subscribers: int, *, seed: int, as_of: date, calendar: BusinessCalendar) -> World:
    """A world of ``subscribers`` AT customers as of ``as_of``, drawn from ``seed``."""
    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValueError(f"subscribers must be 1 to {MAX_SUBSCRIBERS:,}, got {subscribers}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    today = _day_number(as_of)
    workdays = _business_days(calendar, today)
    numbers = _digits("", _increasing(rngs[0], subscribers, 1_000_000_000, 10**10, 1_000), 10)
    names = draw_names(rngs[0], subscribers, _exact(rngs[0], subscribers, ARABIC_ONLY_SHARE))
    invoices = _invoices(rngs[1], subscribers, today, workdays)
    recharges = _recharges(rngs[2], subscribers, today)
    payments, paid_rows = _payments(rngs[3], invoices, recharges, today)
    owners, amounts = _owed((invoices, recharges), paid_rows)
    mandates, accounts = _poste(rngs[4], numbers, names, owners, amounts, today, workdays)
    mandates = _mistype_accounts(rngs[5], mandates, accounts)
    extract = _extract(numbers, names, [invoices, recharges], payments)
    return World(
        as_of=as_of,
        extract=extract.to_pandas(types_mapper=pd.ArrowDtype),
        mandates=mandates.to_pandas(),
        accounts=accounts.to_pandas(),
    )


# -- random helpers ----------------------------------------------------------------------------------


def _count(n: int, share: float) -> int:
    """Rows a share of n stands for: rounded, at least one when the share is not zero."""
    return 0 if share <= 0 or n == 0 else min(n, max(1, round(share * n)))


def _exact(rng: np.random.Generator, n: int, share: float) -> BoolArray:
    """A mask of exactly ``_count(n, share)`` rows placed at random."""
    mask = np.zeros(n, dtype=np.bool_)
    mask[rng.permutation(n)[: _count(n, share)]] = True
    return mask


def _categories(rng: np.random.Generator, n: int, shares: Sequence[float]) -> npt.NDArray[np.int8]:
    """Exclusive labels 1..len(shares) with exact shares, placed at random; 0 for the rest."""
    labels = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    start = 0
    for label, share in enumerate(shares, start=1):
        size = min(_count(n, share), n - start)
        labels[order[start : start + size]] = label
        start += size
    return labels


def _increasing(rng: np.random.Generator, n: int, start: int, stop: int, max_gap: int) -> IntArray:
    """n strictly increasing numbers in (start, stop] with random gaps (unique by construction)."""
    gap = max(1, min(max_gap, (stop - start) // max(n, 1)))
    return start + np.cumsum(rng.integers(1, gap + 1, n, dtype=np.int64))


def _pick(rng: np.random.Generator, values: Sequence[int], weights: Sequence[float], n: int) -> IntArray:
    return np.asarray(values, dtype=np.int64)[rng.choice(len(values), n, p=weights)]


def _spread(rng: np.random.Generator, low: IntArray, high: IntArray) -> IntArray:
    """A uniform integer in [low, high] per row."""
    return low + np.floor(rng.random(low.size) * (high - low + 1)).astype(np.int64)


# -- days ------------------------------------------------------------------------------------------------


def _day_number(d: date) -> int:
    return (d - EPOCH).days


def _business_days(calendar: BusinessCalendar, today: int) -> IntArray:
    """The business days (as day numbers) of the window every generated date falls in."""
    first = max(today - 1_800, _day_number(date(MIN_YEAR, 1, 1)))
    last = min(today + 120, _day_number(date(MAX_YEAR, 12, 31)))
    days = np.arange(first, last + 1, dtype=np.int64)
    return days[calendar.is_business_day_array(days.astype("datetime64[D]"))]


def _roll_back(workdays: IntArray, days: IntArray) -> IntArray:
    """The last business day on or before each day."""
    index = np.searchsorted(workdays, days, side="right") - 1
    return workdays[np.clip(index, 0, workdays.size - 1)]


def _roll_forward(workdays: IntArray, days: IntArray) -> IntArray:
    """The first business day on or after each day."""
    index = np.searchsorted(workdays, days, side="left")
    return workdays[np.clip(index, 0, workdays.size - 1)]


def _dates(days: IntArray, mask: BoolArray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _year_months(days: IntArray) -> IntArray:
    """YYMM of each day number."""
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return np.asarray(((months // 12 + 1970) % 100) * 100 + months % 12 + 1, dtype=np.int64)


# -- text --------------------------------------------------------------------------------------------


def _digits(prefix: str, values: IntArray, width: int) -> pa.Array:
    """``prefix`` + each value zero-padded to ``width`` digits."""
    text = pc.utf8_lpad(pa.array(values).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, text, "") if prefix else text


def _rips(bodies: IntArray, keys: IntArray) -> pa.Array:
    """RIPs from agency code + account (15 digits) and a key."""
    return pc.binary_join_element_wise(BANK_CODE, _digits("", bodies, 15), _digits("", keys, 2), "")


def _keys_ok(rips: pd.Series) -> BoolArray:
    """Whether each 20-digit RIP carries the right key (vectorised)."""
    text = pa.array(rips, type=pa.string())
    bodies = pc.utf8_slice_codeunits(text, 3, 18).cast(pa.int64()).to_numpy()
    keys = pc.utf8_slice_codeunits(text, 18, 20).cast(pa.int64()).to_numpy()
    return np.asarray(expected_keys(bodies) == keys, dtype=np.bool_)


def _strings(values: npt.NDArray[np.str_], picks: npt.ArrayLike) -> pa.Array:
    """Label strings by index, through a small dictionary (no per-row Python string)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(picks, dtype=np.int32)), pa.array(values.tolist(), pa.string())
    ).cast(pa.string())


# -- billing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Items:
    """INVOICE or RECHARGE rows, in item-number order."""

    record: str
    kind: str  # FA or RA, as a payment names it
    owner: IntArray  # subscriber index
    number: pa.Array
    amount: IntArray
    issued: IntArray  # day numbers
    due: IntArray
    status: pa.Array
    open: BoolArray  # OPEN invoice / CONFIRMED recharge order
    collectable: BoolArray  # not cancelled (still to pay unless paid elsewhere)


@dataclass(frozen=True)
class _Payments:
    owner: IntArray
    kind: pa.Array
    number: pa.Array
    amount: IntArray
    paid: IntArray
    channel: pa.Array


def _bill_amounts(rng: np.random.Generator, n: int) -> IntArray:
    """Fixed-line bills: mostly 500–6 000 DZD, a long tail up to 30 000; some with centimes."""
    dinars = np.minimum(30_000, 400 + np.round(rng.lognormal(np.log(1_500), 0.85, n)))
    centimes = np.where(rng.random(n) < 0.15, rng.integers(1, 100, n), 0)
    return dinars.astype(np.int64) * 100 + centimes


def _invoices(rng: np.random.Generator, n: int, today: int, workdays: IntArray) -> _Items:
    current = np.flatnonzero(_exact(rng, n, CURRENT_INVOICE_SHARE))
    current_due = today + rng.integers(-20, 11, current.size)
    older = _exact(rng, current.size, OLDER_INVOICE_SHARE)
    owner = np.concatenate([current, current[older]])
    due = np.concatenate([current_due, current_due[older] - rng.integers(28, 34, int(older.sum()))])
    issued = _roll_back(workdays, due - rng.integers(15, 31, due.size))  # billing runs on business days
    order = np.lexsort((rng.random(due.size), issued))  # numbered in the order they were issued
    owner, due, issued = owner[order], due[order], issued[order]
    sequence = _increasing(rng, owner.size, 0, 10**8 - 1, 1)
    cancelled = _exact(rng, owner.size, CANCELLED_INVOICE_SHARE)
    status = _strings(np.array(["OPEN", "CANCELLED"]), cancelled)
    return _Items(
        record="INVOICE",
        kind="FA",
        owner=owner,
        number=_digits("F", _year_months(issued) * 10**8 + sequence, 12),
        amount=_bill_amounts(rng, owner.size),
        issued=issued,
        due=due,
        status=status,
        open=~cancelled,
        collectable=~cancelled,
    )


def _recharges(rng: np.random.Generator, n: int, today: int) -> _Items:
    owner = np.flatnonzero(_exact(rng, n, RECHARGE_SHARE))
    issued = today - rng.integers(0, 8, owner.size)  # ordered in the last week
    due = issued + rng.integers(0, 7, owner.size)  # may be debited from then on: around D
    order = np.lexsort((rng.random(owner.size), issued))
    owner, due, issued = owner[order], due[order], issued[order]
    state = _categories(rng, owner.size, RECHARGE_STATES)
    return _Items(
        record="RECHARGE",
        kind="RA",
        owner=owner,
        number=_digits("R", _increasing(rng, owner.size, 10**9, 10**11 - 1, 50), 11),
        amount=_pick(rng, RECHARGE_PRICES_DZD, RECHARGE_WEIGHTS, owner.size) * 100,
        issued=issued,
        due=due,
        status=_strings(np.array(["CONFIRMED", "PENDING", "CANCELLED"]), state),
        open=state == 0,
        collectable=state != 2,
    )


def _paid_elsewhere(rng: np.random.Generator, items: _Items, share: float, today: int) -> IntArray:
    """Indexes (sorted) of open items, already issued, that were paid elsewhere."""
    candidates = np.flatnonzero(items.open & (items.issued <= today))
    return np.sort(candidates[_exact(rng, candidates.size, share)])


def _payments(
    rng: np.random.Generator, invoices: _Items, recharges: _Items, today: int
) -> tuple[_Payments, list[IntArray]]:
    """PAYMENT rows (in payment-date order) and, per item block, the indexes of the items they pay."""
    blocks = (invoices, recharges)
    paid_rows = [
        _paid_elsewhere(rng, invoices, PAID_INVOICE_SHARE, today),
        _paid_elsewhere(rng, recharges, PAID_RECHARGE_SHARE, today),
    ]
    issued = np.concatenate([b.issued[rows] for b, rows in zip(blocks, paid_rows, strict=True)])
    paid = _spread(rng, issued, np.full(issued.size, today, dtype=np.int64))
    order = np.argsort(paid, kind="stable")
    kind = np.repeat(np.arange(len(blocks)), [rows.size for rows in paid_rows])
    card = rng.random(paid.size) < CARD_SHARE
    numbers = pa.concat_arrays([b.number.take(rows) for b, rows in zip(blocks, paid_rows, strict=True)])
    payments = _Payments(
        owner=np.concatenate([b.owner[rows] for b, rows in zip(blocks, paid_rows, strict=True)])[order],
        kind=_strings(np.array([b.kind for b in blocks]), kind[order]),
        number=numbers.take(order),
        amount=np.concatenate([b.amount[rows] for b, rows in zip(blocks, paid_rows, strict=True)])[order],
        paid=paid[order],
        channel=_strings(np.array(["COUNTER", "CARD"]), card[order]),
    )
    return payments, paid_rows


def _owed(blocks: Sequence[_Items], paid_rows: Sequence[IntArray]) -> tuple[IntArray, IntArray]:
    """(subscriber index, amount) of every item that could still be debited."""
    owners, amounts = [], []
    for block, rows in zip(blocks, paid_rows, strict=True):
        keep = block.collectable.copy()
        keep[rows] = False
        owners.append(block.owner[keep])
        amounts.append(block.amount[keep])
    return np.concatenate(owners), np.concatenate(amounts)


def _rows(record: str, n: int, columns: dict[str, pa.Array]) -> pa.Table:
    """One record type's rows with every extract column, nulls where the column does not apply."""
    full = {"record": pa.repeat(pa.scalar(record, pa.string()), n)}
    for field in EXTRACT_SCHEMA:
        if field.name != "record":
            full[field.name] = columns.get(field.name, pa.nulls(n, field.type))
    return pa.table(full, schema=EXTRACT_SCHEMA)


def _extract(numbers: pa.Array, names: Names, items: list[_Items], payments: _Payments) -> pa.Table:
    parts = [
        _rows("SUBSCRIBER", len(numbers), {"subscriber_number": numbers, "subscriber_name": names.billing})
    ]
    for block in items:
        parts.append(
            _rows(
                block.record,
                block.owner.size,
                {
                    "subscriber_number": numbers.take(block.owner),
                    "item_number": block.number,
                    "amount": pa.array(block.amount, pa.int64()),
                    "issued_on": _dates(block.issued),
                    "due_date": _dates(block.due),
                    "status": block.status,
                },
            )
        )
    parts.append(
        _rows(
            "PAYMENT",
            payments.owner.size,
            {
                "subscriber_number": numbers.take(payments.owner),
                "item_number": payments.number,
                "item_kind": payments.kind,
                "amount": pa.array(payments.amount, pa.int64()),
                "paid_on": _dates(payments.paid),
                "channel": payments.channel,
            },
        )
    )
    return pa.concat_tables(parts).combine_chunks()


# -- the post office -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MandateDates:
    effective: IntArray
    revoked: IntArray  # meaningful where revoked
    is_revoked: BoolArray


def _current_dates(
    rng: np.random.Generator, state: npt.NDArray[np.int8], today: int, workdays: IntArray
) -> _MandateDates:
    """Effective and revocation dates of each subscriber's current mandate (business days)."""
    n = state.size
    back = np.where(state == RESIGNED, rng.integers(7, 380, n), rng.integers(7, 1_500, n))
    back = np.where(state == REVOKED, rng.integers(60, 1_500, n), back)
    effective = _roll_back(workdays, today - back)
    future = _roll_forward(workdays, today + rng.integers(1, 21, n))
    effective = np.where(state == FUTURE, future, effective)
    revoked = _roll_back(workdays, today - rng.integers(0, 46, n))
    return _MandateDates(effective, revoked, state == REVOKED)


def _older_dates(rng: np.random.Generator, newer: IntArray, today: int, workdays: IntArray) -> _MandateDates:
    """Older mandates of re-signed subscribers: revoked on or just before the newer one took effect."""
    n = newer.size
    effective = _roll_back(workdays, today - rng.integers(420, 1_500, n))
    revoked = _roll_back(workdays, newer - rng.integers(0, 11, n))
    return _MandateDates(effective, revoked, np.ones(n, dtype=np.bool_))


def _balances(
    rng: np.random.Generator, state: npt.NDArray[np.int8], owed: IntArray, smallest: IntArray
) -> IntArray:
    """Comfortable balances (what is owed plus a cushion), a few below the smallest bill, 0 if closed."""
    n = state.size
    cushion = np.minimum(np.round(rng.lognormal(np.log(20_000), 1.0, n)), 5_000_000).astype(np.int64)
    comfortable = owed + cushion * 100 + rng.integers(0, 100, n)
    low = np.where(smallest > 0, np.floor(rng.random(n) * smallest), rng.integers(0, 50_000, n))
    balance = np.where(state == LOW, low.astype(np.int64), comfortable)
    return np.asarray(np.where(state == CLOSED, 0, balance), dtype=np.int64)


def _poste(
    rng: np.random.Generator,
    numbers: pa.Array,
    names: Names,
    owners: IntArray,
    amounts: IntArray,
    today: int,
    workdays: IntArray,
) -> tuple[pa.Table, pa.Table]:
    """AT's mandates (as MNDT reported them) and AP's accounts of the mandated subscribers."""
    n = len(numbers)
    mandated = np.flatnonzero(_exact(rng, n, MANDATE_SHARE))
    m = mandated.size
    state = _categories(rng, m, MANDATE_STATES)
    resigned = np.flatnonzero(state == RESIGNED)
    account_numbers = rng.permutation(_increasing(rng, m + resigned.size, 100_000, 10**10 - 1, 5_000))
    bodies = int(AGENCY_CODE) * 10**10 + account_numbers
    keys = expected_keys(bodies)
    wrong = (keys - 1 + rng.integers(1, 97, keys.size)) % 97 + 1  # never the right key, still 01..97
    bad = np.concatenate([_exact(rng, m, BAD_RIP_SHARE), np.zeros(resigned.size, dtype=np.bool_)])
    who = np.concatenate([mandated, mandated[resigned]])  # subscriber of each account / mandate
    current = _current_dates(rng, state, today, workdays)
    older = _older_dates(rng, current.effective[resigned], today, workdays)
    ceiling = np.where(_exact(rng, m, CEILING_SHARE), _pick(rng, CEILINGS_DZD, CEILING_WEIGHTS, m) * 100, 0)
    holder = names.poste.take(who)
    mandates = _mandate_table(
        rng,
        who=who,
        numbers=numbers,
        rips=_rips(bodies, np.where(bad, wrong, keys)),
        debtor=pc.utf8_rtrim_whitespace(pc.utf8_slice_codeunits(holder, 0, 30)),
        ceiling=np.concatenate([ceiling, np.zeros(resigned.size, dtype=np.int64)]),
        dates=_MandateDates(
            np.concatenate([current.effective, older.effective]),
            np.concatenate([current.revoked, older.revoked]),
            np.concatenate([current.is_revoked, older.is_revoked]),
        ),
    )
    owed, smallest = _debts(owners, amounts, n)
    account_state = np.concatenate(
        [_categories(rng, m, ACCOUNT_STATES), np.full(resigned.size, CLOSED, dtype=np.int8)]
    )
    balance = _balances(rng, account_state, owed[who], smallest[who])
    return mandates, _account_table(account_numbers, _rips(bodies, keys), holder, balance, account_state)


def _debts(owners: IntArray, amounts: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Per subscriber: the total still to debit, and the smallest item (0 when nothing is owed)."""
    owed = np.bincount(owners, weights=amounts, minlength=n).round().astype(np.int64)  # exact below 2**53
    none = np.iinfo(np.int64).max
    smallest = np.full(n, none, dtype=np.int64)
    np.minimum.at(smallest, owners, amounts)
    return owed, np.where(smallest == none, 0, smallest)


def _account_table(
    numbers: IntArray, rips: pa.Array, holder: pa.Array, balance: IntArray, state: npt.NDArray[np.int8]
) -> pa.Table:
    """AP's accounts, in account-number order."""
    order = np.argsort(numbers)
    return pa.table(
        {
            "rip": rips.take(order),
            "holder": holder.take(order),
            "balance": pa.array(balance[order], pa.int64()),
            "status": _strings(np.array(["open", "closed", "blocked"]), _status_index(state)[order]),
            "deceased": pa.array((state == DECEASED)[order]),
        }
    )


def _status_index(state: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    return np.asarray(np.where(state == CLOSED, 1, np.where(state == BLOCKED, 2, 0)), dtype=np.int8)


def _mistype_accounts(rng: np.random.Generator, mandates: pa.Table, accounts: pa.Table) -> pa.Table:
    """A few live mandates registered on an account number that does not exist, with a valid key."""
    rips = mandates["rip"].to_numpy(zero_copy_only=False).astype(object)
    live = mandates["revoked_from"].is_null().to_numpy(zero_copy_only=False) & _keys_ok(pd.Series(rips))
    eligible = np.flatnonzero(live)
    picked = eligible[_exact(rng, eligible.size, MISTYPED_ACCOUNT_SHARE)]
    if not picked.size:
        return mandates
    known = np.array([int(r[3:18]) for r in accounts["rip"].to_pylist()], dtype=np.int64)
    bodies = np.array([int(r[3:18]) for r in rips[picked]], dtype=np.int64) + 1
    while (taken := np.isin(bodies, known)).any():  # the next free number: no account there
        bodies[taken] += 1
    rips[picked] = _rips(bodies, expected_keys(bodies)).to_pylist()
    index = mandates.schema.get_field_index("rip")
    return mandates.set_column(index, "rip", pa.array(rips.tolist(), pa.string()))


def _mandate_table(
    rng: np.random.Generator,
    *,
    who: IntArray,
    numbers: pa.Array,
    rips: pa.Array,
    debtor: pa.Array,
    ceiling: IntArray,
    dates: _MandateDates,
) -> pa.Table:
    """Mandates in the order AP numbered them (signing order): reference ``M`` + 11 digits."""
    order = np.lexsort((rng.random(who.size), dates.effective))
    references = _digits("M", _increasing(rng, who.size, 10**8, 10**11 - 1, 40), 11)
    return pa.table(
        {
            "reference": references,
            "rip": rips.take(order),
            "debtor_name": debtor.take(order),
            "subscriber_number": numbers.take(who[order]),
            "ceiling": pa.array(ceiling[order], pa.int64()),
            "effective_date": _dates(dates.effective[order]),
            "revoked_from": _dates(dates.revoked[order], mask=~dates.is_revoked[order]),
        }
    )
