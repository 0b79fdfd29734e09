"""A ``FileTransport`` over a local folder laid out as an SFTP account's home (``inbound/``, ``outbound/``):
the simulated post office's creditor home, shared in-process. For deterministic simulation and tests: no
network, no threads, the same promises as ``SftpClient`` (``.part`` then a rename that never replaces,
verified downloads that never replace a local file)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from epay.faults import fault_point
from epay.transport.errors import RemoteConflictError, TransportError
from epay.transport.local_files import LOG, PART_SUFFIX, SAFE_NAME, checked_name, local_sha256, publish
from epay.transport.sftp import DownloadResult, RemoteFile, UploadResult

Arrival = Callable[[str, Path], None]  # (name, its path in the folder) once an upload is complete


class FolderTransport:
    """``root`` is the account's home; ``on_upload`` is told of each complete upload (the post office
    acknowledges a PRLV file as it arrives, as its SFTP server's hook does)."""

    def __init__(self, root: Path, on_upload: Arrival | None = None) -> None:
        self.root = Path(root)
        self.on_upload = on_upload

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def _folder(self, remote_dir: str) -> Path:
        relative = remote_dir.strip("/")
        if not relative or any(part in ("", ".", "..") for part in relative.split("/")):
            raise TransportError(f"{remote_dir!r} is not a folder of the account")
        folder = self.root / relative
        if not folder.is_dir():
            raise TransportError(f"no folder {remote_dir} in {self.root}")
        return folder

    def upload(self, local: Path, remote_dir: str = "/inbound") -> UploadResult:
        name = checked_name(Path(local).name, "upload")
        folder = self._folder(remote_dir)
        size, digest = local_sha256(Path(local))
        final = folder / name
        if final.exists():
            return _settle(final, name, size, digest, local)
        part = folder / (name + PART_SUFFIX)
        shutil.copyfile(local, part)
        fault_point("send.after_part_upload")
        try:
            os.link(part, final)  # never replaces: fails if the name exists (a rename would overwrite)
        except FileExistsError:
            part.unlink(missing_ok=True)
            return _settle(final, name, size, digest, local)
        part.unlink()
        if self.on_upload is not None:
            self.on_upload(name, final)
        return UploadResult(name, size, digest, already_there=False)

    def list_files(self, remote_dir: str = "/outbound") -> list[RemoteFile]:
        files = []
        for path in self._folder(remote_dir).iterdir():
            if path.name.endswith(PART_SUFFIX) or not path.is_file() or path.is_symlink():
                continue
            if not SAFE_NAME.fullmatch(path.name):  # as the SFTP client: never a name that is not plain
                LOG.warning("list %s: ignoring %r, not a plain file name", remote_dir, path.name[:80])
                continue
            status = path.stat()
            files.append(RemoteFile(path.name, status.st_size, datetime.fromtimestamp(status.st_mtime, UTC)))
        return sorted(files, key=lambda f: f.name)

    def download(self, name: str, local_dir: Path, remote_dir: str = "/outbound") -> DownloadResult:
        name = checked_name(name, "download")
        source = self._folder(remote_dir) / name
        if not source.is_file():
            raise TransportError(f"download {remote_dir}/{name}: no such file")
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        target = local_dir / name
        tmp = target.with_name(f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            shutil.copyfile(source, tmp)
            size, digest = local_sha256(tmp)
            publish(tmp, target, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return DownloadResult(name, target, size, digest)


def _settle(final: Path, name: str, size: int, digest: str, local: Path) -> UploadResult:
    """``final`` exists: the same bytes are a re-send; other bytes an incident, nothing changed."""
    theirs = local_sha256(final)
    if theirs == (size, digest):
        return UploadResult(name, size, digest, already_there=True)
    raise RemoteConflictError(
        f"upload {name}: the folder already has this name with other bytes ({theirs[0]} bytes, sha256 "
        f"{theirs[1]}) than {local} ({size} bytes, sha256 {digest}); nothing was changed. A name is never "
        "reused: this is an incident to investigate."
    )
