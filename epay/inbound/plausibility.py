"""Whether a file from Algérie Poste can be right as a whole, judged against epay's clock (pure: header in,
reasons out). A file that cannot be right is quarantined, nothing of it applied.

What the file alone shows is the codec's (``epay.formats.rules``: header dates equal to each other and to
the name's, a RELV crediting no date after its own); what needs what was sent is in ``epay.inbound.returns``
(RETR statuses) and ``epay.inbound.ack``. Here: a file is never dated after today by epay's clock
(Africa/Algiers), for AP cannot have processed it yet.
"""

from __future__ import annotations

from datetime import date
from typing import Any


def file_date(kind: str, header: dict[str, Any]) -> date:
    """The date AP processed (or acknowledged) the file, from its header."""
    dated: date = header["ack_date"] if kind == "ACK" else header["creation_date"]
    return dated


def file_problems(kind: str, header: dict[str, Any], *, today: date) -> list[str]:
    """Why this valid file cannot be right (empty when it can)."""
    dated = file_date(kind, header)
    if dated > today:
        return [f"header date {dated} is after today ({today}) by epay's clock: a file from the future"]
    return []
