"""RIP (Relevé d'Identité Postale) helpers, spec §1.

A RIP is 20 digits: bank ``007``, agency ``99999``, the 10-digit CCP account number, a 2-digit key
computed on agency + account only: ``97 - (int(digits 4..18) * 100 mod 97)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BANK_CODE = "007"
AGENCY_CODE = "99999"
RIP_LENGTH = 20
ACCOUNT_DIGITS = 10


class RipError(ValueError):
    """A value is not a well-formed RIP or CCP account number."""


def rip_key(agency_and_account: str) -> str:
    """The 2-digit key of the 15 digits agency code + account number."""
    if len(agency_and_account) != 15 or not agency_and_account.isdigit():
        raise RipError(f"a RIP key is computed on 15 digits, got {agency_and_account!r}")
    return f"{97 - (int(agency_and_account) * 100) % 97:02d}"


def rip_from_account(account: int | str) -> str:
    """Build the full RIP of a CCP account number (up to 10 digits)."""
    text = str(account)
    if not text.isdigit() or len(text) > ACCOUNT_DIGITS or int(text) == 0:
        raise RipError(f"a CCP account number is 1 to {ACCOUNT_DIGITS} digits, not zero: got {account!r}")
    body = AGENCY_CODE + text.zfill(ACCOUNT_DIGITS)
    return BANK_CODE + body + rip_key(body)


def rip_problem(rip: str) -> str | None:
    """Why ``rip`` is not a valid RIP, or None. Format errors come before a wrong key."""
    if len(rip) != RIP_LENGTH or not rip.isascii() or not rip.isdigit():
        return "not 20 digits"
    if not rip.startswith(BANK_CODE):
        return f"bank code {rip[:3]} is not {BANK_CODE}"
    if rip[3:8] != AGENCY_CODE:
        return f"agency code {rip[3:8]} is not {AGENCY_CODE}"
    expected = rip_key(rip[3:18])
    if rip[18:] != expected:
        return f"key {rip[18:]} should be {expected}"
    return None


def is_valid_rip(rip: str) -> bool:
    return rip_problem(rip) is None


def account_of(rip: str) -> int:
    """The CCP account number inside a RIP (digits 9–18)."""
    if len(rip) != RIP_LENGTH or not rip.isdigit():
        raise RipError(f"not a 20-digit RIP: {rip!r}")
    return int(rip[8:18])


def mask_rip(rip: str) -> str:
    """Mask a RIP for logs: keep the first 8 and last 4 characters (``00799999********9006``)."""
    if len(rip) <= 12:
        return "*" * len(rip)
    return rip[:8] + "*" * (len(rip) - 12) + rip[-4:]


def rip_bodies(digits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Agency code + account number (RIP digits 4–18) of (n, 20) digit values: the key's input."""
    body = np.zeros(digits.shape[0], dtype=np.int64)
    for column in range(3, 18):
        body = body * 10 + digits[:, column]
    return body


def expected_keys(bodies: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.asarray(97 - (bodies * 100) % 97, dtype=np.int64)


def written_keys(digits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    return np.asarray(digits[:, 18].astype(np.int64) * 10 + digits[:, 19], dtype=np.int64)


def rip_keys_ok(digits: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Vectorised key check on an (n, 20) array of digit values 0–9 (already known to be digits)."""
    return np.asarray(expected_keys(rip_bodies(digits)) == written_keys(digits))


def rip_prefix_ok(digits: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Vectorised bank + agency code check on (n, 20) digit values."""
    expected = np.frombuffer((BANK_CODE + AGENCY_CODE).encode(), dtype=np.uint8) - 48
    return np.asarray((digits[:, :8] == expected).all(axis=1))


def ccp_accounts(digits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """The 10-digit CCP account numbers (RIP digits 9–18) of (n, 20) digit values."""
    return np.asarray(rip_bodies(digits) % 10**ACCOUNT_DIGITS, dtype=np.int64)
