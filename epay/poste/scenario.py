"""Scenarios: how the simulated post office behaves, as data (schemas/poste/*.toml)."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any

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
    faults: Faults = field(default_factory=Faults)

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
            settings["arrival_time"] = time.fromisoformat(settings["arrival_time"])
        scenario = Scenario(**settings, faults=Faults(**faults))
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    for name in ("ms03_rate", "delayed_share"):
        if not 0 <= getattr(scenario, name) <= 1:
            raise ScenarioError(f"{path}: {name} must be between 0 and 1")
    return scenario
