"""Text normalisation (spec §1) and RIP helpers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from epay.formats import is_valid_rip, mask_rip, normalize_text, rip_from_account, rip_key, rip_problem
from epay.formats.rip import RipError, account_of, ccp_accounts, rip_keys_ok
from epay.formats.text import normalize_text_block


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Benali Mohamed", "BENALI MOHAMED"),
        ("Éric Çelik", "ERIC CELIK"),
        ("Œuvre Æsir Straße", "OEUVRE AESIR STRASSE"),
        ("Aït-Saïd (Fatima)", "AIT-SAID (FATIMA)"),
        ("O’Brien & fils, S.A.R.L/DZ", "O'BRIEN & FILS, S.A.R.L/DZ"),
        ("  spaced  out  ", "SPACED  OUT"),
        ("#1 client!", "1 CLIENT"),
        ("محمد بن علي", ""),  # Arabic script only: nothing sendable, never transliterated
        ("BENALI محمد", "BENALI"),
        ("x" * 40, "X" * 30),
        ("ﬁnance", "FINANCE"),  # compatibility ligature
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw, 30) == expected


def test_cut_at_width_then_trailing_spaces_dropped() -> None:
    assert normalize_text("ABCDE FGHIJ", 6) == "ABCDE"


def test_vectorised_normalisation_matches_the_scalar_one() -> None:
    values = ["Benali", "Zoé", "محمد", None, "#abc", "\tTab", "l’Aïd", "x" * 50, ""]
    block, empty = normalize_text_block(pa.array(values, pa.string()), 30)
    for row, value in enumerate(values):
        expected = normalize_text(value or "", 30)
        assert bytes(block[row]).decode() == expected.ljust(30)
        assert empty[row] == (expected == "")


def test_spec_rip_examples() -> None:
    assert rip_from_account(1234567890) == "00799999123456789006"
    assert rip_from_account(4) == "00799999000000000497"
    assert rip_from_account("1") == "00799999000000000109"
    assert rip_key("999991234567890") == "06"


def test_rip_keys_are_01_to_97() -> None:
    keys = {int(rip_from_account(account)[-2:]) for account in range(1, 5000)}
    assert min(keys) >= 1 and max(keys) <= 97 and len(keys) == 97


def test_rip_validation() -> None:
    assert is_valid_rip("00799999123456789006")
    assert rip_problem("00799999123456789007") == "key 07 should be 06"
    assert rip_problem("0079999912345678900") == "not 20 digits"
    assert rip_problem("0079999912345678900A") == "not 20 digits"
    assert rip_problem("00899999123456789006") == "bank code 008 is not 007"
    assert rip_problem("00712345123456789006") == "agency code 12345 is not 99999"
    with pytest.raises(RipError):
        rip_from_account(0)
    with pytest.raises(RipError):
        rip_from_account(12345678901)
    assert account_of("00799999123456789006") == 1234567890


def test_mask_rip_keeps_first_8_and_last_4() -> None:
    assert mask_rip("00799999123456789006") == "00799999********9006"
    assert mask_rip("1234") == "****"


def test_vectorised_rip_helpers_agree() -> None:
    rips = [rip_from_account(a) for a in (1, 4, 1234567890, 9999999999, 42)] + ["00799999123456789007"]
    digits = np.frombuffer("".join(rips).encode(), dtype=np.uint8).reshape(len(rips), 20) - 48
    assert rip_keys_ok(digits).tolist() == [is_valid_rip(r) for r in rips]
    assert ccp_accounts(digits).tolist() == [account_of(r) for r in rips]
