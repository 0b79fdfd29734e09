"""The operator's SFTP client: pinned host key, key login, never-overwrite uploads, verified transfers.

Pure transport: it moves bytes and proves they arrived intact; what the files mean is someone else's
business (no ledger, no Airflow here).

- **Trust**: the connection is made on a socket of our own (``TCP_NODELAY``), the SSH handshake runs,
  and the server's host key is compared (type and bytes) with the pinned key *before* we authenticate.
  A mismatch closes the connection with both fingerprints in the message; nothing is ever auto-accepted,
  no ``known_hosts`` file is read or written.
- **Upload** (spec §2): ``NAME.part`` with pipelined writes, its size checked by ``stat`` and its bytes
  read back and hashed (paramiko's pipelined writes do not report every write error), then a plain SFTP
  ``rename`` to ``NAME``, which fails if ``NAME`` exists — never ``posix-rename``, which overwrites. A
  ``NAME`` already there with the same bytes is a harmless re-send; with other bytes, an incident.
- **Download**: prefetched reads, size checked, sha256 computed on the way; the local file appears
  complete or not at all (temporary file, fsync, hard link to the final name, which never replaces a
  file). Nothing on the server is ever deleted or changed by a download.
- **Retries**: connection faults (refused, reset, EOF, timeouts, SSH protocol errors) are retried with
  exponential backoff on a fresh connection; host key, authentication, configuration, conflicts and
  verification failures are not. A connection lost or silent during the login is a connection fault,
  not a refused key. Every operation is safe to repeat from the start.
- **Timeouts**: every wait is bounded, including those paramiko leaves open (the SFTP session's
  opening, a send into a connection that no longer takes data): see ``SftpEndpoint``.

A client is not thread-safe: one per thread.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import paramiko

from epay.faults import fault_point
from epay.transport.endpoint import HOST_KEY_ALGORITHMS, HOST_KEY_ENV, SftpEndpoint, load_private_key
from epay.transport.errors import (
    AuthenticationError,
    ConnectionFailedError,
    HostKeyError,
    RemoteConflictError,
    TransportError,
    VerificationError,
)
from epay.transport.local_files import PART_SUFFIX
from epay.transport.local_files import SAFE_NAME as _SAFE_NAME
from epay.transport.local_files import checked_name as _checked_name
from epay.transport.local_files import local_sha256 as _local_sha256
from epay.transport.local_files import publish as _publish

LOG = logging.getLogger("epay.transport.sftp")

# Bytes per SFTP WRITE request on upload. paramiko's default (SFTPFile.MAX_REQUEST_SIZE, 32 KiB) leaves
# uploads far below the link's speed; 255 KiB measured fastest (field notes) and keeps each SFTP packet
# under OpenSSH sftp-server's 256 KiB message limit. It is set on each *file object* we open (an instance
# attribute shadowing the class attribute), never on the class: a paramiko server or another client in
# the same process keeps its defaults.
UPLOAD_REQUEST_SIZE = 255 * 1024
# Bytes per prefetched READ request (download, read-back). 64 KiB and 255 KiB measured the same here
# (~220 MB/s on loopback), and 64 KiB is what older or stricter servers answer in full: a server that
# returns short reads makes paramiko fetch the rest one request at a time. Same per-file-object setting.
# The channel keeps paramiko's 2 MiB window: larger windows measured *slower* downloads (field notes).
DOWNLOAD_REQUEST_SIZE = 64 * 1024
MAX_BACKOFF_SECONDS = 300.0

# A name we will upload, list or write locally: no path separator, no leading dot, nothing odd.

_T = TypeVar("_T")

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


@dataclass(frozen=True)
class UploadResult:
    """``already_there``: the server had ``name`` with these very bytes before this upload (a re-send)."""

    name: str
    size: int
    sha256: str
    already_there: bool


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: datetime | None  # UTC, when the server reports it


@dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    size: int
    sha256: str


@dataclass
class _UploadState:
    """What earlier attempts of the same upload did, so that a retry can tell what it finds."""

    part_written: bool = False  # a .part of ours may be on the server
    rename_sent: bool = False  # our rename may have taken effect even if its reply was lost


class SftpClient:
    """A connection to one SFTP endpoint, opened on first use (or on ``with``), reopened after a fault.

    ``retries`` is the number of *re*-tries after a connection fault (``retries + 1`` attempts in all),
    waiting ``backoff``, ``2 * backoff``, ``4 * backoff``... seconds (``sleep`` is injectable for tests).
    """

    def __init__(
        self,
        endpoint: SftpEndpoint,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must not be negative")
        self.endpoint = endpoint
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._pkey: paramiko.PKey | None = None
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sock: _StallGuard | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> SftpClient:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect now (with retries) rather than on the first operation."""
        self._retrying("connect", lambda sftp: None)

    def close(self) -> None:
        """Close the connection (file handles are already closed: every operation closes its own).

        Only the transport is closed: closing the SFTP channel first makes the server answer with its
        own channel close, which often reaches an already closed socket and gets the server a
        "connection reset" error in its log. A plain TCP close ends the server's session cleanly.
        """
        self._sftp, self._sock = None, None
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    # --- operations -----------------------------------------------------------------------------------

    def upload(self, local: Path, remote_dir: str = "/inbound") -> UploadResult:
        """Send ``local`` as ``remote_dir/<its name>``: ``.part``, verify, rename; never overwrite.

        Raises ``RemoteConflictError`` if the name is already taken by other bytes (nothing changed),
        ``VerificationError`` if the server does not hold exactly the bytes sent.
        """
        local = Path(local)
        name = _checked_name(local.name, "upload")
        if not local.is_file():
            raise TransportError(f"upload: {local} is not a readable file")
        final = _remote_path(remote_dir, name)
        state = _UploadState()
        started = time.monotonic()
        result = self._retrying(f"upload {name}", lambda sftp: self._upload_once(sftp, local, final, state))
        elapsed = time.monotonic() - started
        if result.already_there:
            LOG.info(
                "upload %s: already on the server with the same %d bytes (sha256 %s); nothing sent",
                final,
                result.size,
                result.sha256,
            )
        else:
            LOG.info(
                "uploaded %s: %d bytes in %.2f s (%s, verified), sha256 %s",
                final,
                result.size,
                elapsed,
                _rate(result.size, elapsed),
                result.sha256,
            )
        return result

    def list_files(self, remote_dir: str = "/outbound") -> list[RemoteFile]:
        """The files of ``remote_dir`` by name: regular files only, ``*.part`` (unfinished) left out."""
        entries = self._retrying(f"list {remote_dir}", lambda sftp: sftp.listdir_attr(remote_dir))
        files = []
        for entry in entries:
            name = str(entry.filename)
            if name.endswith(PART_SUFFIX) or name in (".", ".."):
                continue
            if entry.st_mode is not None and not stat.S_ISREG(entry.st_mode):
                continue
            if not _SAFE_NAME.fullmatch(name):
                LOG.warning("list %s: ignoring %r, not a plain file name", remote_dir, name[:80])
                continue
            mtime = datetime.fromtimestamp(entry.st_mtime, UTC) if entry.st_mtime is not None else None
            files.append(RemoteFile(name, int(entry.st_size or 0), mtime))
        files.sort(key=lambda f: f.name)
        LOG.info("listed %s: %d files", remote_dir, len(files))
        return files

    def download(self, name: str, local_dir: Path, remote_dir: str = "/outbound") -> DownloadResult:
        """Fetch ``remote_dir/name`` into ``local_dir/name``, which appears only complete.

        A local file of that name with the same bytes is kept as it is; with other bytes,
        ``LocalConflictError`` (download it elsewhere, e.g. to quarantine, to look at it).
        """
        name = _checked_name(name, "download")
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        remote = _remote_path(remote_dir, name)
        target = local_dir / name
        started = time.monotonic()
        size, digest = self._retrying(f"download {name}", lambda sftp: _download_once(sftp, remote, target))
        elapsed = time.monotonic() - started
        LOG.info(
            "downloaded %s to %s: %d bytes in %.2f s (%s), sha256 %s",
            remote,
            target,
            size,
            elapsed,
            _rate(size, elapsed),
            digest,
        )
        return DownloadResult(name, target, size, digest)

    # --- upload steps ---------------------------------------------------------------------------------

    def _upload_once(
        self, sftp: paramiko.SFTPClient, local: Path, final: str, state: _UploadState
    ) -> UploadResult:
        part = final + PART_SUFFIX
        existing = _stat_or_none(sftp, final)
        if existing is not None:
            return _settle_existing(sftp, local, final, int(existing.st_size), None, state)

        state.part_written = True
        sent_started = time.monotonic()
        try:
            size, digest = _send(sftp, local, part)
        except OSError:
            if _is_active(sftp):  # the server refused a write (a connection fault is retried instead)
                _remove_quietly(sftp, part)
            raise
        sent = time.monotonic() - sent_started
        on_server = int(sftp.stat(part).st_size)
        if on_server != size:
            _remove_quietly(sftp, part)
            raise VerificationError(
                f"upload {final}: sent {size} bytes but {part} holds {on_server}; nothing was renamed"
            )
        back_digest = _read_remote(sftp, part, size, None)[1]
        if back_digest != digest:
            _remove_quietly(sftp, part)
            raise VerificationError(
                f"upload {final}: {part} read back has sha256 {back_digest}, sent {digest}; "
                "nothing was renamed"
            )
        LOG.debug(
            "sent %s: %d bytes in %.2f s (%s), read back in %.2f s",
            part,
            size,
            sent,
            _rate(size, sent),
            time.monotonic() - sent_started - sent,
        )

        fault_point("send.after_part_upload")
        state.rename_sent = True
        try:
            sftp.rename(part, final)  # plain SFTP rename: fails if ``final`` exists. Never posix-rename.
        except OSError as exc:
            if not _is_active(sftp):
                raise  # a connection fault: the retry will find out whether the rename happened
            existing = _stat_or_none(sftp, final)
            if existing is None:
                # e.g. a server that keeps the .part open for a session of ours it has not seen die yet
                raise TransportError(
                    f"upload {final}: the server refused to rename {part} to {posixpath.basename(final)} "
                    f"({_describe(exc)}); the file was not delivered, {part} is left for a later attempt"
                ) from exc
            # someone else's upload of the same name won the race
            state.rename_sent = False
            return _settle_existing(sftp, local, final, int(existing.st_size), (size, digest), state)
        state.part_written = False
        return UploadResult(posixpath.basename(final), size, digest, already_there=False)

    # --- connection -----------------------------------------------------------------------------------

    def _retrying(self, what: str, operation: Callable[[paramiko.SFTPClient], _T]) -> _T:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return operation(self._session())
            except TransportError:
                raise
            except Exception as exc:
                fault = _is_connection_fault(exc, self._transport)
                if self._sock is not None and self._sock.stalled:  # paramiko only says EOFError
                    stall = TimeoutError(self._sock.stalled)
                    stall.__cause__, exc = exc, stall
                self.close()
                if not fault:
                    if isinstance(exc, OSError | paramiko.SSHException | paramiko.SFTPError):
                        # the server's answer to a request (no such file, permission denied...)
                        raise TransportError(f"{what} on {self.endpoint.address}: {_describe(exc)}") from exc
                    raise
                if attempt == attempts:
                    raise ConnectionFailedError(
                        f"{what} on {self.endpoint.address}: failed after {attempts} attempt"
                        f"{'s' if attempts > 1 else ''}; last error: {_describe(exc)}",
                        attempts,
                    ) from exc
                delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                LOG.warning(
                    "%s on %s: %s (attempt %d of %d); reconnecting in %.1f s",
                    what,
                    self.endpoint.address,
                    _describe(exc),
                    attempt,
                    attempts,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._transport is not None and self._transport.is_active():
            return self._sftp
        self.close()
        endpoint = self.endpoint
        pinned = endpoint.pinned_key
        if self._pkey is None:
            self._pkey = load_private_key(endpoint.private_key_file)
        started = time.monotonic()
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout=endpoint.connect_timeout)
        sock = _StallGuard(fileno=raw.detach())
        sock.limit = endpoint.io_timeout
        transport: paramiko.Transport | None = None
        try:
            # paramiko never sets TCP_NODELAY: every request that waits for its reply would stall ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Default window (2 MiB) and packet size: a larger client window measured *slower* downloads.
            transport = paramiko.Transport(sock)
            transport.banner_timeout = endpoint.connect_timeout
            transport.handshake_timeout = endpoint.connect_timeout
            transport.auth_timeout = endpoint.connect_timeout
            options = transport.get_security_options()
            # Ask for the pinned key's type first; still accept the others, so that a server offering
            # another type is refused with its fingerprint in the message rather than "no common algorithm".
            wanted = HOST_KEY_ALGORITHMS[pinned.get_name()]
            options.key_types = [*wanted, *(k for k in options.key_types if k not in wanted)]
            try:
                transport.start_client(timeout=endpoint.connect_timeout)
            except paramiko.IncompatiblePeer as exc:
                raise TransportError(f"{endpoint.address}: no SSH algorithms in common ({exc})") from None
            try:
                offered = transport.get_remote_server_key()
            except paramiko.SSHException:  # start_client returns quietly when its timeout expires
                raise TimeoutError(f"no SSH handshake within {endpoint.connect_timeout:g} s") from None
            _check_host_key(endpoint, pinned, offered)
            self._authenticate(transport)
            sftp = _open_sftp(transport, endpoint.connect_timeout)
            sftp.get_channel().settimeout(endpoint.io_timeout)
        except BaseException:
            if transport is not None:
                transport.close()
            sock.close()
            raise
        self._transport, self._sftp, self._sock = transport, sftp, sock
        LOG.info(
            "connected to %s (host key %s %s verified) in %.0f ms",
            endpoint.address,
            pinned.get_name(),
            pinned.fingerprint,
            (time.monotonic() - started) * 1000,
        )
        return sftp

    def _authenticate(self, transport: paramiko.Transport) -> None:
        endpoint, key = self.endpoint, self._pkey
        assert key is not None
        started = time.monotonic()
        try:
            more = transport.auth_publickey(endpoint.username, key)
        except paramiko.AuthenticationException as exc:
            # paramiko reports a connection lost or silent during the login as an authentication failure:
            # those are connection faults (retried), not the server's refusal of our key
            if not transport.is_active():
                raise ConnectionError(f"connection lost while logging in ({_describe(exc)})") from exc
            if time.monotonic() - started >= endpoint.connect_timeout:
                raise TimeoutError(f"no answer to the login within {endpoint.connect_timeout:g} s") from exc
            raise AuthenticationError(
                f"{endpoint.address}: the server refused key {key.get_name()} {key.fingerprint} "
                f"from {endpoint.private_key_file} ({type(exc).__name__}: {exc})"
            ) from None
        if more or not transport.is_authenticated():
            raise AuthenticationError(
                f"{endpoint.address}: the server wants more than a key to log in ({', '.join(more or [])})"
            )


# --- helpers ---------------------------------------------------------------------------------------------


class _StallGuard(socket.socket):
    """Our socket, whose ``send`` gives up once the peer has accepted nothing for ``limit`` seconds.

    paramiko polls its socket with a 0.1 s timeout and retries a send that times out for ever, so a
    connection that stops taking data (a stalled link, a peer that no longer reads) would hang an
    upload: the channel timeout bounds only the waits for the server's replies and window.
    """

    limit: float = 120.0
    stalled: str | None = None  # why sending gave up; every later send fails at once
    _waiting_since: float | None = None

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        if self.stalled:
            raise ConnectionAbortedError(errno.ECONNABORTED, self.stalled)
        try:
            sent = super().send(data, flags)
        except TimeoutError:  # paramiko retries this one: give up here once the stall lasts too long
            now = time.monotonic()
            if self._waiting_since is None:
                self._waiting_since = now
            elif now - self._waiting_since >= self.limit:
                self.stalled = f"the connection accepted no data for {self.limit:g} s"
                # not a TimeoutError, which paramiko would retry: it turns this one into EOFError
                raise ConnectionAbortedError(errno.ECONNABORTED, self.stalled) from None
            raise
        self._waiting_since = None
        return sent


def _open_sftp(transport: paramiko.Transport, timeout: float) -> paramiko.SFTPClient:
    """The SFTP session on a logged-in ``transport``, opened within ``timeout`` seconds.

    paramiko bounds none of these waits (the channel open by 1 h, the subsystem request and the SFTP
    version exchange not at all): a watchdog closes the connection if the server goes silent.
    """
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        transport.close()

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        sftp = paramiko.SFTPClient.from_transport(transport)
    except Exception as exc:
        if expired.is_set():
            raise TimeoutError(f"the SFTP session was not opened within {timeout:g} s") from exc
        raise
    finally:
        watchdog.cancel()
        watchdog.join()
    if expired.is_set():
        raise TimeoutError(f"the SFTP session was not opened within {timeout:g} s")
    if sftp is None:
        raise paramiko.SSHException("the server did not open the SFTP session")
    return sftp


def _check_host_key(endpoint: SftpEndpoint, pinned: paramiko.PKey, offered: paramiko.PKey) -> None:
    if offered.get_name() == pinned.get_name() and bytes(offered.asbytes()) == bytes(pinned.asbytes()):
        return
    raise HostKeyError(
        f"host key mismatch for {endpoint.host}:{endpoint.port}: pinned {pinned.get_name()} "
        f"{pinned.fingerprint}, the server offered {offered.get_name()} {offered.fingerprint}. "
        "Connection closed before authenticating. If the post office really changed its key, check the "
        f"new fingerprint with them out of band, then update the pinned key ({HOST_KEY_ENV} or the "
        "connection's host_key)."
    )


def _is_connection_fault(exc: BaseException, transport: paramiko.Transport | None) -> bool:
    """A fault of the connection (retry on a new one), not an answer of the server (don't)."""
    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    if isinstance(exc, paramiko.SSHException | paramiko.SFTPError | EOFError):
        return True
    if isinstance(exc, TimeoutError | ConnectionError):  # before OSError: these are OSErrors too
        return True
    if isinstance(exc, OSError):
        # paramiko reports both a dead channel and an SFTP error status as OSError: tell them apart by
        # the state of the connection (no transport yet: the TCP connect itself failed)
        return transport is None or not transport.is_active()
    return False


def _is_active(sftp: paramiko.SFTPClient) -> bool:
    channel = sftp.get_channel()
    return bool(channel is not None and channel.get_transport().is_active() and not channel.closed)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _remote_path(remote_dir: str, name: str) -> str:
    if not remote_dir:
        raise TransportError("the remote folder must not be empty")
    return posixpath.join(remote_dir, name)


def _stat_or_none(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(path)
    except FileNotFoundError:  # paramiko maps SFTP "no such file" to ENOENT
        return None


def _remove_quietly(sftp: paramiko.SFTPClient, part: str) -> None:
    """Remove our own ``.part`` (the spec allows it); a failure only leaves a harmless leftover."""
    try:
        sftp.remove(part)
    except FileNotFoundError:
        pass
    except Exception as exc:
        LOG.warning("could not remove our leftover %s: %s", part, _describe(exc))


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:.1f} MB/s" if seconds > 0 else "-"


def _send(sftp: paramiko.SFTPClient, local: Path, part: str) -> tuple[int, str]:
    """Write ``local`` to ``part`` with pipelined writes; the size and sha256 of the bytes sent."""
    digest = hashlib.sha256()
    size = 0
    with local.open("rb") as source, sftp.open(part, "wb") as target:
        target.MAX_REQUEST_SIZE = UPLOAD_REQUEST_SIZE  # this file object only, see UPLOAD_REQUEST_SIZE
        target.set_pipelined(True)
        while chunk := source.read(UPLOAD_REQUEST_SIZE):
            digest.update(chunk)
            target.write(chunk)
            fault_point("send.mid_part_write")
            size += len(chunk)
    return size, digest.hexdigest()


def _read_remote(
    sftp: paramiko.SFTPClient, path: str, expected_size: int | None, sink: Callable[[bytes], object] | None
) -> tuple[int, str]:
    """Read ``path`` whole with prefetching, hashing it and passing each chunk to ``sink``.

    Reads exactly the size the server reports when the file is opened (or ``expected_size``, which must
    match it); a file that ends early or changes size is a ``VerificationError``.
    """
    digest = hashlib.sha256()
    with sftp.open(path, "rb") as source:
        source.MAX_REQUEST_SIZE = DOWNLOAD_REQUEST_SIZE  # this file object only
        size = int(source.stat().st_size)
        if expected_size is not None and size != expected_size:
            raise VerificationError(f"{path}: {size} bytes on the server, expected {expected_size}")
        source.prefetch(size)
        done = 0
        while done < size:
            chunk = source.read(min(DOWNLOAD_REQUEST_SIZE, size - done))
            if not chunk:
                raise VerificationError(f"{path}: ended after {done} of {size} bytes")
            digest.update(chunk)
            if sink is not None:
                sink(chunk)
            done += len(chunk)
    return size, digest.hexdigest()


def _settle_existing(
    sftp: paramiko.SFTPClient,
    local: Path,
    final: str,
    remote_size: int,
    sent: tuple[int, str] | None,
    state: _UploadState,
) -> UploadResult:
    """``final`` exists: same bytes as ``local`` → sent (no change); other bytes → RemoteConflictError."""
    size, digest = sent if sent is not None else _local_sha256(local)
    remote_digest = _read_remote(sftp, final, remote_size, None)[1] if remote_size == size else None
    part = final + PART_SUFFIX
    if state.part_written:
        _remove_quietly(sftp, part)
        state.part_written = False
    if remote_digest == digest:
        # our own rename of an earlier attempt took effect though its reply was lost: not a re-send
        return UploadResult(posixpath.basename(final), size, digest, already_there=not state.rename_sent)
    theirs = f"sha256 {remote_digest}" if remote_digest else "a different size"
    raise RemoteConflictError(
        f"upload {final}: the server already has this name with other bytes ({remote_size} bytes, {theirs}) "
        f"than {local} ({size} bytes, sha256 {digest}); nothing was changed. A name is never reused: "
        "this is an incident to investigate."
    )


def _download_once(sftp: paramiko.SFTPClient, remote: str, target: Path) -> tuple[int, str]:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            size, digest = _read_remote(sftp, remote, None, _writer(out))
            os.fsync(out.fileno())
        _publish(tmp, target, digest)
    finally:
        tmp.unlink(missing_ok=True)
    return size, digest


def _writer(out: BinaryIO) -> Callable[[bytes], object]:
    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = out.write(view)
            view = view[written or 0 :]

    return write
