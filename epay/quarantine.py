"""Quarantine: a file epay must not use is moved aside with its reasons beside it, never over another."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def quarantine_file(folder: Path, path: Path, reasons: list[str]) -> Path:
    """Move ``path`` into ``folder`` (``NAME``, or ``NAME.1``, ``NAME.2``... if taken) and write the
    reasons to ``<that name>.reason.txt``; return where the file went."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.name}.{counter}"
        counter += 1
    shutil.move(path, target)
    reasons_file = target.with_name(target.name + ".reason.txt")
    reasons_file.write_text("\n".join(reasons) + "\n", encoding="utf-8")
    # the reasons file's time is when it was quarantined, by epay's clock (the exceptions list dates it so)
    from epay.clock import process_clock

    moment = process_clock().now().timestamp()
    os.utime(reasons_file, (moment, moment))
    return target
