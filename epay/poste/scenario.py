"""Scenarios: how the simulated post office behaves, as data (schemas/poste/*.toml)."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from epay.formats.unique import fingerprints

KEY_WIDTH = 72  # a PRLV file name (40) + "/" + an end-to-end reference (24) fits
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "schemas" / "poste" / "scenario-default.toml"


class ScenarioError(ValueError):
    """A scenario file is malformed."""


@dataclass(frozen=True)
class Faults:
    redeliver_retr: bool = False
    corrupt_retr: bool = False
    truncate_retr: bool = False
    unknown_reference: bool = False
    late_retr_days: int = 0
    refuse_connections_seconds: int = 0


@dataclass(frozen=True)
class Scenario:
    seed: int = 20261125
    ms03_rate: float = 0.002
    delayed_share: float = 0.05
    arrival_time: time = time(20, 0)
    ack_after_seconds: int = 90
    revoke_rate: float = 0.0
    ceiling_change_rate: float = 0.0
    new_ceiling: int = 2_000_000  # centimes: the ceiling a change sets on a mandate that had none
    faults: Faults = field(default_factory=Faults)

    def fractions(self, purpose: str, creditor_id: str, keys: Sequence[str]) -> npt.NDArray[np.float64]:
        """Vectorised ``fraction``-like numbers in [0, 1) for many keys (e.g. end-to-end references)."""
        salt = np.uint64(
            int.from_bytes(
                hashlib.blake2b(repr((self.seed, purpose, creditor_id)).encode(), digest_size=8).digest(),
                "big",
            )
        )
        width = KEY_WIDTH  # fixed: a key's draw must not depend on the other keys drawn with it
        if any(len(k) > width for k in keys):
            raise ValueError(f"scenario draw keys are at most {width} characters")
        raw = np.frombuffer("".join(k.ljust(width) for k in keys).encode("ascii", "replace"), dtype=np.uint8)
        _, hashes = (
            fingerprints(raw.reshape(len(keys), width)) if len(keys) else (None, np.zeros(0, np.uint64))
        )
        mixed = hashes ^ salt
        mixed ^= mixed >> np.uint64(33)
        mixed *= np.uint64(0xFF51AFD7ED558CCD)
        mixed ^= mixed >> np.uint64(33)
        return np.asarray(mixed >> np.uint64(11), dtype=np.float64) / float(1 << 53)

    def fraction(self, *parts: object) -> float:
        """A reproducible number in [0, 1) for these parts (an instruction's identity, a purpose)."""
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ScenarioError(f"{where}: unknown settings {sorted(unknown)}")
    return raw


def load_scenario(path: Path | None = None) -> Scenario:
    path = path or DEFAULT_SCENARIO
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    faults = _build(Faults, raw.pop("faults", {}), f"{path} [faults]")
    settings = _build(Scenario, raw, str(path))
    try:
        if "arrival_time" in settings:
            try:
                settings["arrival_time"] = time.fromisoformat(str(settings["arrival_time"]))
            except ValueError:
                raise ScenarioError(
                    f"{path}: arrival_time must be HH:MM, got {settings['arrival_time']!r}"
                ) from None
        scenario = Scenario(**settings, faults=Faults(**faults))
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    _check_types(scenario, path)
    return scenario


def _check_types(scenario: Scenario, path: Path) -> None:
    """TOML gives strings, floats and booleans freely: refuse anything but the intended kind."""
    for name in ("ms03_rate", "delayed_share", "revoke_rate", "ceiling_change_rate"):
        value = getattr(scenario, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ScenarioError(f"{path}: {name} must be a number between 0 and 1, got {value!r}")
    for owner, name in (
        (scenario, "seed"),
        (scenario, "ack_after_seconds"),
        (scenario, "new_ceiling"),
        (scenario.faults, "late_retr_days"),
        (scenario.faults, "refuse_connections_seconds"),
    ):
        value = getattr(owner, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScenarioError(f"{path}: {name} must be a whole number >= 0, got {value!r}")
    for name in ("redeliver_retr", "corrupt_retr", "truncate_retr", "unknown_reference"):
        if not isinstance(getattr(scenario.faults, name), bool):
            raise ScenarioError(f"{path}: faults.{name} must be true or false")
