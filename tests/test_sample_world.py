"""The sample world: billing extract contract, spec-valid RIPs and mandates, realistic proportions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from epay.calendar import BusinessCalendar
from epay.formats.rip import account_of, rip_from_account, rip_problem
from epay.formats.text import A_CHARACTERS, normalize_text
from epay.poste.office import PostOffice, mandate_problem
from epay.sample import World, generate_world

AS_OF = date(2026, 11, 25)
N = 2_000
CREDITOR = "100237"
EXTRACT_COLUMNS = [
    "record",
    "subscriber_number",
    "subscriber_name",
    "item_number",
    "item_kind",
    "amount",
    "issued_on",
    "due_date",
    "status",
    "paid_on",
    "channel",
]
# the contract's table: the columns each record type requires; every other column is null
REQUIRED = {
    "SUBSCRIBER": {"record", "subscriber_number", "subscriber_name"},
    "INVOICE": {"record", "subscriber_number", "item_number", "amount", "issued_on", "due_date", "status"},
    "RECHARGE": {"record", "subscriber_number", "item_number", "amount", "issued_on", "due_date", "status"},
    "PAYMENT": {"record", "subscriber_number", "item_number", "item_kind", "amount", "paid_on", "channel"},
}
STATUSES = {"INVOICE": {"OPEN", "CANCELLED"}, "RECHARGE": {"PENDING", "CONFIRMED", "CANCELLED"}}


@pytest.fixture(scope="module")
def world(calendar: BusinessCalendar) -> World:
    return generate_world(N, seed=11, as_of=AS_OF, calendar=calendar)


def rows(world: World, record: str) -> pd.DataFrame:
    return world.extract[world.extract["record"] == record]


def bad_rip(rip: str) -> bool:
    return rip_problem(rip) is not None


def share(mask: pd.Series | np.ndarray) -> float:
    return float(np.asarray(mask, dtype=bool).mean())


# -- the extract contract -----------------------------------------------------------------------------


def test_extract_has_the_contract_columns_and_arrow_types(world: World) -> None:
    assert list(world.extract.columns) == EXTRACT_COLUMNS
    schema = pa.Table.from_pandas(world.extract, preserve_index=False).schema
    for name in EXTRACT_COLUMNS:
        expected = {"amount": pa.int64(), "issued_on": pa.date32(), "due_date": pa.date32()}.get(
            name, pa.date32() if name == "paid_on" else pa.string()
        )
        assert schema.field(name).type == expected, name
    assert set(world.extract["record"]) == set(REQUIRED)


@pytest.mark.parametrize("record", sorted(REQUIRED))
def test_each_record_fills_exactly_its_columns(world: World, record: str) -> None:
    part = rows(world, record)
    assert len(part) > 0
    for column in EXTRACT_COLUMNS:
        nulls = part[column].isna()
        assert (not nulls.any()) if column in REQUIRED[record] else nulls.all(), (record, column)


def test_extract_values_follow_the_contract(world: World) -> None:
    extract = world.extract
    assert extract["subscriber_number"].str.fullmatch(r"[0-9]{10}").all()
    items = extract[extract["record"] != "SUBSCRIBER"]
    assert items["item_number"].str.fullmatch(r"[A-Z0-9]{1,20}").all()
    assert items["amount"].between(1, 99_999_999_999_999).all()
    assert str(items["amount"].dtype) == "int64[pyarrow]"
    for record, prefix in (("INVOICE", "F"), ("RECHARGE", "R")):
        part = rows(world, record)
        assert part["item_number"].str.startswith(prefix).all()
        assert set(part["status"]) == STATUSES[record]
        assert (part["due_date"] >= part["issued_on"]).all()
        assert (part["issued_on"] <= AS_OF).all()
    payments = rows(world, "PAYMENT")
    assert set(payments["item_kind"]) == {"FA", "RA"}
    assert set(payments["channel"]) == {"COUNTER", "CARD"}
    assert (payments["paid_on"] <= AS_OF).all()
    names = rows(world, "SUBSCRIBER")["subscriber_name"].str.strip()
    assert names.str.len().between(1, 60).all()


def test_every_subscriber_has_one_subscriber_row_and_items_belong_to_them(world: World) -> None:
    subscribers = rows(world, "SUBSCRIBER")["subscriber_number"]
    assert len(subscribers) == N and subscribers.is_unique
    assert world.extract["subscriber_number"].isin(set(subscribers)).all()


def test_item_numbers_are_unique_and_payments_pay_an_open_item_in_full(world: World) -> None:
    items = world.extract[world.extract["record"].isin(["INVOICE", "RECHARGE"])]
    assert items["item_number"].is_unique
    payments = rows(world, "PAYMENT")
    assert not payments.duplicated(["item_kind", "item_number", "paid_on", "channel"]).any()
    paid = payments.merge(items, on="item_number", suffixes=("", "_item"), validate="one_to_one")
    assert len(paid) == len(payments)
    assert (paid["amount"] == paid["amount_item"]).all()
    assert (paid["subscriber_number"] == paid["subscriber_number_item"]).all()
    assert set(paid["status_item"]) == {"OPEN", "CONFIRMED"}
    assert ((paid["item_kind"] == "FA") == (paid["record_item"] == "INVOICE")).all()
    assert (paid["paid_on"] >= paid["issued_on_item"]).all()


def test_billing_dates_and_amounts_are_realistic(world: World, calendar: BusinessCalendar) -> None:
    invoices = rows(world, "INVOICE")
    due = invoices["due_date"]
    assert due.max() <= AS_OF + timedelta(days=10)
    assert due.min() >= AS_OF - timedelta(days=60)
    assert share(due >= AS_OF - timedelta(days=20)) > 0.8  # most are this month's
    gap = (pd.to_datetime(due.astype(str)) - pd.to_datetime(invoices["issued_on"].astype(str))).dt.days
    assert gap.between(15, 40).all()
    assert all(calendar.is_business_day(d) for d in set(invoices["issued_on"]))
    dinars = invoices["amount"].to_numpy() / 100
    assert 1_000 < np.median(dinars) < 3_000
    assert 0.6 < share((dinars >= 500) & (dinars <= 6_000)) < 0.95
    assert dinars.max() <= 30_001 and dinars.min() >= 300
    assert 0.75 < share(invoices["amount"].to_numpy() % 100 == 0) < 0.95  # mostly round dinars
    prices = set(rows(world, "RECHARGE")["amount"] // 100)
    assert prices <= {1_600, 2_100, 2_600, 3_100, 4_100} and len(prices) >= 4
    recharge_due = rows(world, "RECHARGE")["due_date"]
    assert recharge_due.between(AS_OF - timedelta(days=10), AS_OF + timedelta(days=10)).all()


def test_billing_proportions(world: World) -> None:
    invoices, recharges = rows(world, "INVOICE"), rows(world, "RECHARGE")
    assert 0.9 < invoices["subscriber_number"].nunique() / N < 0.99
    assert 0.05 < invoices["subscriber_number"].duplicated().sum() / N < 0.15  # an older unpaid one
    assert 0.01 < share(invoices["status"] == "CANCELLED") < 0.03
    assert 0.2 < len(recharges) / N < 0.3
    assert 0.75 < share(recharges["status"] == "CONFIRMED") < 0.92
    paid_fa = (rows(world, "PAYMENT")["item_kind"] == "FA").sum()
    assert 0.02 < paid_fa / (invoices["status"] == "OPEN").sum() < 0.04


# -- names --------------------------------------------------------------------------------------------


def test_names_are_algerian_with_accents_apostrophes_and_some_arabic_only(world: World) -> None:
    names = rows(world, "SUBSCRIBER")["subscriber_name"]
    arabic_only = names.map(lambda v: normalize_text(v, 60) == "")
    assert 1 <= arabic_only.sum() <= 0.01 * N
    assert names[arabic_only].str.contains("[\u0600-\u06ff]").all()
    latin = names[~arabic_only]
    assert 0.03 < share(~latin.map(str.isascii)) < 0.3  # Chérif, Aït, Lyès...
    assert latin.str.contains("'").any()  # Ben M'hidi, M'hamed
    assert latin.str.contains("Mohamed|MOHAMED").any()


def test_ap_holds_a_latin_name_for_the_arabic_only_billing_names(world: World) -> None:
    subscribers = rows(world, "SUBSCRIBER")
    arabic = subscribers["subscriber_name"].map(lambda v: normalize_text(v, 60) == "")
    mandates = world.mandates
    theirs = mandates[mandates["subscriber_number"].isin(set(subscribers.loc[arabic, "subscriber_number"]))]
    assert len(theirs) > 0, "some mandated subscribers have an Arabic-only billing name"
    assert theirs["debtor_name"].map(lambda d: normalize_text(d, 30) != "").all()


def test_holders_and_debtor_names_are_in_the_a_field_alphabet(world: World) -> None:
    holders = world.accounts["holder"]
    assert holders.map(lambda h: h.isascii() and 0 < len(h) <= 60).all()
    assert holders.map(lambda h: set(h) <= set(A_CHARACTERS)).all()
    debtor = world.mandates["debtor_name"]
    assert debtor.map(lambda d: d == normalize_text(d, 30) and 0 < len(d) <= 30).all()


# -- accounts and mandates ----------------------------------------------------------------------------


def test_accounts_have_unique_valid_rips_and_the_office_columns(world: World) -> None:
    accounts = world.accounts
    assert list(accounts.columns) == ["rip", "holder", "balance", "status", "deceased"]
    assert accounts["rip"].is_unique
    assert not accounts["rip"].map(bad_rip).any()
    assert accounts["rip"].map(lambda r: rip_from_account(account_of(r)) == r).all()
    assert accounts["balance"].dtype == np.int64 and (accounts["balance"] >= 0).all()
    assert accounts["deceased"].dtype == np.bool_
    assert set(accounts["status"]) == {"open", "closed", "blocked"}


def test_mandate_columns_and_unique_references(world: World) -> None:
    mandates = world.mandates
    assert list(mandates.columns) == [
        "reference",
        "rip",
        "debtor_name",
        "subscriber_number",
        "ceiling",
        "effective_date",
        "revoked_from",
    ]
    assert mandates["reference"].is_unique
    assert mandates["reference"].str.fullmatch(r"[A-Z0-9]{1,20}").all()
    assert mandates["ceiling"].dtype == np.int64 and (mandates["ceiling"] >= 0).all()
    assert mandates["effective_date"].map(lambda d: type(d) is date).all()
    assert mandates["revoked_from"].map(lambda d: d is None or type(d) is date).all()


def test_a_few_mandates_carry_a_wrong_key_or_an_account_that_does_not_exist(world: World) -> None:
    mandates = world.mandates
    problems = mandates["rip"].map(rip_problem)
    bad = problems.notna()
    assert 1 <= bad.sum() <= max(3, 0.005 * len(mandates))
    assert problems[bad].str.fullmatch(r"key \d\d should be \d\d").all()
    known = set(world.accounts["rip"])
    assert not mandates.loc[bad, "rip"].isin(known).any()  # no account at AP for the wrong RIP
    assert mandates.loc[bad, "rip"].map(lambda r: rip_from_account(account_of(r)) in known).all()
    unknown = ~bad & ~mandates["rip"].isin(known)  # a mistyped account number whose key checks
    assert 1 <= unknown.sum() <= max(3, 0.005 * len(mandates))
    assert mandates.loc[unknown, "revoked_from"].isna().all()  # live: its first debit comes back AC01
    assert mandates.loc[unknown, "rip"].map(lambda r: rip_from_account(account_of(r)) == r).all()


def test_every_mandate_passes_the_counter_check_but_for_a_wrong_key(world: World) -> None:
    mandates = world.mandates
    columns = ("reference", "rip", "debtor_name", "subscriber_number")
    reference, rip, name, subscriber = (mandates[c].astype(str).tolist() for c in columns)
    ceilings = mandates["ceiling"].astype(int).tolist()
    for row in zip(reference, rip, name, subscriber, ceilings, strict=True):
        problem = mandate_problem(*row)
        if bad_rip(row[1]):
            assert problem is not None and problem.startswith("RIP key"), row
        else:
            assert problem is None, (row, problem)


def test_mandates_belong_to_billed_subscribers_and_name_their_account_holder(world: World) -> None:
    subscribers = set(rows(world, "SUBSCRIBER")["subscriber_number"])
    mandates = world.mandates
    assert mandates["subscriber_number"].isin(subscribers).all()
    assert 0.8 < mandates["subscriber_number"].nunique() / N < 0.9
    holders = world.accounts.set_index("rip")["holder"]
    good = mandates[~mandates["rip"].map(bad_rip) & mandates["rip"].isin(holders.index)]
    assert len(good) >= len(mandates) - max(6, 0.01 * len(mandates))
    assert (good["debtor_name"] == good["rip"].map(lambda r: normalize_text(holders[r], 30))).all()


def test_mandate_states_relative_to_the_business_date(world: World, calendar: BusinessCalendar) -> None:
    mandates = world.mandates
    revoked = mandates["revoked_from"].notna()
    future = mandates["effective_date"] > AS_OF
    ceiling = mandates["ceiling"] > 0
    assert 0.02 < share(revoked) < 0.06
    assert 0.01 < share(future) < 0.03
    assert 0.15 < share(ceiling) < 0.25
    assert set(mandates.loc[ceiling, "ceiling"] // 100) <= {2_000, 3_000, 5_000, 10_000}
    assert not (revoked & future).any()
    gone = mandates[revoked]
    assert (gone["revoked_from"] <= AS_OF).all() and (gone["revoked_from"] > gone["effective_date"]).all()
    days = set(mandates["effective_date"]) | set(gone["revoked_from"])
    assert all(calendar.is_business_day(d) for d in days)


def test_resigned_subscribers_have_an_older_revoked_mandate_and_one_active(world: World) -> None:
    mandates = world.mandates
    assert mandates.groupby("subscriber_number")["revoked_from"].apply(lambda s: s.isna().sum()).max() <= 1
    twice = mandates[mandates["subscriber_number"].duplicated(keep=False)]
    assert twice["subscriber_number"].nunique() >= 1
    for _, pair in twice.sort_values("reference").groupby("subscriber_number"):
        older, newer = pair.iloc[0], pair.iloc[1]
        assert len(pair) == 2 and older["revoked_from"] is not None and newer["revoked_from"] is None
        assert older["revoked_from"] <= newer["effective_date"] <= AS_OF
        assert older["rip"] != newer["rip"]
        assert older["reference"] < newer["reference"]  # AP numbers mandates as they are signed


def test_account_states_and_balances(world: World) -> None:
    accounts = world.accounts
    current = accounts[
        accounts["rip"].isin(world.mandates.drop_duplicates("subscriber_number", keep="last")["rip"])
    ]
    assert 1 <= (current["status"] == "closed").sum() <= 0.01 * len(current)
    assert 1 <= (current["status"] == "blocked").sum() <= 0.01 * len(current)
    assert 1 <= accounts["deceased"].sum() <= 0.005 * len(accounts)
    assert (accounts.loc[accounts["status"] == "closed", "balance"] == 0).all()
    owed = _owed(world)
    holders = world.mandates.assign(owed=world.mandates["subscriber_number"].map(owed).fillna(0))
    balances = current.merge(holders[["rip", "owed"]], on="rip")
    usable = balances[(balances["status"] == "open") & (balances["owed"] > 0)]
    assert 0.02 < share(usable["balance"] < usable["owed"]) < 0.09  # ~5% cannot pay their bills
    assert np.median(usable["balance"] - usable["owed"]) > 500_000  # the rest comfortably


def _owed(world: World) -> pd.Series:
    """What each subscriber still owes: open invoices and live recharge orders not paid elsewhere."""
    paid = set(rows(world, "PAYMENT")["item_number"])
    items = world.extract[world.extract["status"].isin(["OPEN", "CONFIRMED", "PENDING"]).fillna(False)]
    items = items[~items["item_number"].isin(paid)]
    return items.groupby("subscriber_number")["amount"].sum().astype("int64")


# -- the post office's view ---------------------------------------------------------------------------


def test_poste_mandates_leave_out_revoked_and_wrong_key_mandates(world: World) -> None:
    poste = world.poste_mandates(CREDITOR)
    assert list(poste.columns) == [
        "reference",
        "creditor_id",
        "rip",
        "debtor_name",
        "subscriber_number",
        "ceiling",
        "effective_date",
    ]
    assert (poste["creditor_id"] == CREDITOR).all()
    mandates = world.mandates
    expected = mandates[mandates["revoked_from"].isna() & ~mandates["rip"].map(bad_rip)]
    assert poste["reference"].tolist() == expected["reference"].tolist()
    assert (poste["effective_date"] > AS_OF).any()  # signed, not yet effective: AP holds it


def test_the_post_office_loads_the_world(tmp_path: Path, calendar: BusinessCalendar) -> None:
    small = generate_world(300, seed=5, as_of=AS_OF, calendar=calendar)
    office = PostOffice(tmp_path / "poste", calendar=calendar)
    office.add_creditor(CREDITOR, "ALGERIE TELECOM", rip_from_account(123456))
    assert office.add_accounts(small.accounts) == len(small.accounts)
    poste = small.poste_mandates(CREDITOR)
    assert office.add_mandates(poste, day=AS_OF) == len(poste)


# -- reproducibility and limits -----------------------------------------------------------------------


def test_same_arguments_give_identical_frames(world: World, calendar: BusinessCalendar) -> None:
    again = generate_world(N, seed=11, as_of=AS_OF, calendar=calendar)
    for name in ("extract", "mandates", "accounts"):
        pd.testing.assert_frame_equal(getattr(world, name), getattr(again, name))


def test_another_seed_gives_another_world(world: World, calendar: BusinessCalendar) -> None:
    other = generate_world(N, seed=12, as_of=AS_OF, calendar=calendar)
    assert not world.extract.equals(other.extract)
    assert world.mandates["rip"].tolist() != other.mandates["rip"].tolist()


def test_another_business_date_moves_the_dates(calendar: BusinessCalendar) -> None:
    later = date(2027, 3, 14)
    moved = generate_world(500, seed=3, as_of=later, calendar=calendar)
    due = rows(moved, "INVOICE")["due_date"]
    assert due.max() <= later + timedelta(days=10) and due.min() >= later - timedelta(days=60)
    assert (moved.mandates["effective_date"] > later).any()


def test_a_single_subscriber_world_is_valid(calendar: BusinessCalendar) -> None:
    one = generate_world(1, seed=0, as_of=AS_OF, calendar=calendar)
    assert len(rows(one, "SUBSCRIBER")) == 1


@pytest.mark.parametrize("count", [0, -5, 10_000_001])
def test_the_population_size_is_checked(count: int, calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="subscribers"):
        generate_world(count, seed=0, as_of=AS_OF, calendar=calendar)
