"""The one interface the nightly steps move files through (after moov-io/achgateway's upload agent):
SFTP to Algérie Poste in production (``SftpClient``), a shared folder for deterministic simulation and
tests (``FolderTransport``). Both keep the same promises: an upload appears under its name only complete
and never replaces a file; a download is verified (size, sha256) and never replaces a local file."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from epay.transport.sftp import DownloadResult, RemoteFile, UploadResult


class FileTransport(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def upload(self, local: Path, remote_dir: str = "/inbound") -> UploadResult:
        """Deliver ``local`` as ``remote_dir/<its name>``; the same bytes already there are a re-send,
        other bytes a ``RemoteConflictError``."""
        ...

    def list_files(self, remote_dir: str = "/outbound") -> list[RemoteFile]:
        """The complete files of ``remote_dir`` (never a ``.part``)."""
        ...

    def download(self, name: str, local_dir: Path, remote_dir: str = "/outbound") -> DownloadResult:
        """Copy ``remote_dir/name`` to ``local_dir/name``, verified; a local file with other bytes is a
        ``LocalConflictError``."""
        ...
