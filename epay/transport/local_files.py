"""Local-side file steps every transport shares: plain names, sha256, and a local file that appears only
complete and never replaces another (hard link of a temporary file, then fsync of the folder)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from epay.transport.errors import LocalConflictError, TransportError

LOG = logging.getLogger("epay.transport")
PART_SUFFIX = ".part"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")


def checked_name(name: str, what: str) -> str:
    if not SAFE_NAME.fullmatch(name) or name.endswith(PART_SUFFIX):
        raise TransportError(f"{what}: {name[:80]!r} is not a plain file name (or is a .part name)")
    return name


def local_sha256(path: Path) -> tuple[int, str]:
    """The size and sha256 of a local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(2**20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def publish(tmp: Path, target: Path, digest: str) -> None:
    """Give ``tmp`` its final name without ever replacing a file (a hard link fails if the name exists)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        existing = local_sha256(target)[1]
        if existing != digest:
            raise LocalConflictError(
                f"{target} already exists with other bytes (sha256 {existing}) than the server's "
                f"(sha256 {digest}); the local file was kept"
            ) from None
        LOG.info("%s was already here with the same bytes", target)
        return
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
