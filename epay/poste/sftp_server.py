"""The simulated Algérie Poste's SFTP server (paramiko, server side).

One account per creditor, public-key login only, each session jailed to ``poste/sftp/<creditor>``:

- ``/`` lists ``inbound`` and ``outbound``; nothing else is served, and no deeper path.
- ``/inbound/`` is append-only for the creditor (spec §2): it uploads ``NAME.part``, then renames it to
  ``NAME``, which must not exist yet (plain and ``posix-rename@openssh.com`` alike). It may overwrite,
  truncate and delete its ``.part`` files, never a received file. Everything there stays readable.
- ``/outbound/`` is read-only.

Symbolic links are never created nor followed: every path is resolved lexically against the jail, each
folder is opened with ``O_NOFOLLOW`` relative to the one above (``openat``), and files are opened with
``O_NOFOLLOW`` too, so a link planted on disk cannot lead outside, even if it appears between a check
and the use. Refusals are SFTP "permission denied" and are logged with their reason.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko import sftp as _sftp

from epay.poste.sftp_accounts import (
    FOLDERS,
    AccountError,
    AuthorizedKey,
    SftpAccount,
    accounts_file,
    add_account,
    ensure_home,
    fsync_dir,
    load_accounts,
)

__all__ = [  # the accounts API is re-exported: one import for the CLI
    "HOST_KEY_FILE",
    "AccountError",
    "HostKeyError",
    "PosteSftpServer",
    "SftpAccount",
    "add_account",
    "host_key_line",
    "load_accounts",
    "load_or_create_host_key",
]

LOG = logging.getLogger("epay.poste.sftp")

HOST_KEY_FILE = "host_key"
PART_SUFFIX = ".part"
# The server's receive window bounds how much a client may send before waiting for the server's window
# adjustment: paramiko's 2 MiB default caps uploads at ~43 MB/s on loopback (field notes); 64 MiB does
# not. Downloads depend on the *client's* window, which this server does not set.
WINDOW_SIZE = 64 * 2**20
MAX_PACKET_SIZE = 2**15  # what OpenSSH's sshd announces; 128/256 KiB measured no faster on loopback
MAX_READ_LENGTH = 2**20  # one READ reply at most; a client may ask for up to 4 GiB in one request
MAX_CONNECTIONS = 64
ACCEPT_POLL_SECONDS = 0.2
STOP_TIMEOUT_SECONDS = 5.0
IDLE_TIMEOUT_SECONDS = 600.0  # like sshd's ClientAlive*: a session silent this long is ended
NEW_FILE_MODE = 0o640

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.part")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: never hang on a planted FIFO
_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

FileReceived = Callable[[str, str, Path], None]
_T = TypeVar("_T")

# paramiko is untyped: typed aliases of the status and auth codes used here
SFTP_OK: int = _sftp.SFTP_OK
SFTP_EOF: int = _sftp.SFTP_EOF
SFTP_FAILURE: int = _sftp.SFTP_FAILURE
SFTP_NO_SUCH_FILE: int = _sftp.SFTP_NO_SUCH_FILE
SFTP_PERMISSION_DENIED: int = _sftp.SFTP_PERMISSION_DENIED
AUTH_FAILED: int = paramiko.AUTH_FAILED
AUTH_SUCCESSFUL: int = paramiko.AUTH_SUCCESSFUL
OPEN_SUCCEEDED: int = paramiko.OPEN_SUCCEEDED
OPEN_PROHIBITED: int = paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


# --- host key ---------------------------------------------------------------------------------------


class HostKeyError(RuntimeError):
    """The host key file is unusable (unreadable, too open, not a key)."""


def load_or_create_host_key(path: Path) -> paramiko.PKey:
    """The server's persistent host key: created once (ed25519, mode 0600), then always reloaded.

    paramiko cannot generate ed25519 keys; ``cryptography`` does, in OpenSSH's private key format,
    which paramiko loads. Like sshd, a key file readable by group or others is refused.
    """
    if not os.path.lexists(path):
        _create_host_key(path)
    _check_private_file(path)
    try:
        return paramiko.PKey.from_path(path)
    except Exception as exc:  # paramiko, cryptography and OSError all possible
        raise HostKeyError(f"{path}: cannot load the SFTP host key ({type(exc).__name__}: {exc})") from None


def host_key_line(key: paramiko.PKey) -> str:
    """``"ssh-ed25519 AAAA..."``: what the operator pins (``EPAY_SFTP_HOST_KEY``, known_hosts)."""
    return f"{key.get_name()} {key.get_base64()}"


def _create_host_key(path: Path) -> None:
    """Write a new ed25519 key; if another process created one meanwhile, keep theirs (link, not replace)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        else:
            LOG.info("created SFTP host key %s", path)
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


def _check_private_file(path: Path) -> None:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise HostKeyError(f"{path}: the SFTP host key must be a regular file")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise HostKeyError(f"{path}: permissions {mode:04o} are too open for a private key; chmod 600")
    if st.st_uid != os.geteuid():
        raise HostKeyError(f"{path}: the SFTP host key must belong to the user running the server")


# --- path jail ----------------------------------------------------------------------------------------


class _RefusalError(Exception):
    """An operation the jail does not allow; becomes an SFTP status and one log line."""

    def __init__(self, reason: str, code: int = SFTP_PERMISSION_DENIED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class _Target:
    """A client path inside the jail: the home, ``inbound``/``outbound``, or a file directly in one."""

    folder: str | None
    name: str | None

    @property
    def virtual(self) -> str:
        return "/" + "/".join(p for p in (self.folder, self.name) if p)


def _normalize(path: str) -> list[str]:
    """The components of ``path`` relative to the jail's root, ``.`` and ``..`` applied lexically.

    Relative paths start at ``/`` (every session starts there). Going above ``/`` is refused, not
    clamped, and so is a NUL byte.
    """
    if "\x00" in path:
        raise _RefusalError("NUL byte in path")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise _RefusalError("path escapes the home folder")
            parts.pop()
        else:
            parts.append(part)
    return parts


def _resolve(path: str) -> _Target:
    parts = _normalize(path)
    if not parts:
        return _Target(None, None)
    if parts[0] not in FOLDERS:
        raise _RefusalError("only /inbound and /outbound are served")
    if len(parts) > 2:
        raise _RefusalError("there are no subfolders")
    return _Target(parts[0], parts[1] if len(parts) == 2 else None)


def _is_part_name(name: str) -> bool:
    return bool(_NAME_PART.fullmatch(name)) and not name[: -len(PART_SUFFIX)].endswith(PART_SUFFIX)


def _attributes(st: os.stat_result, name: str) -> paramiko.SFTPAttributes:
    return paramiko.SFTPAttributes.from_stat(st, name)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _regular_file(dir_fd: int, name: str) -> os.stat_result:
    """lstat ``name``: missing is ENOENT, a symlink or anything but a regular file is refused."""
    return _check_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))


def _check_regular(st: os.stat_result) -> os.stat_result:
    if stat.S_ISLNK(st.st_mode):
        raise _RefusalError("symbolic links are not followed")
    if not stat.S_ISREG(st.st_mode):
        raise _RefusalError("not a regular file")
    return st


def _not_a_folder(dir_fd: int, name: str) -> None:
    """Raise why ``name`` cannot be listed: missing, a link, a subfolder (not served) or a file."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise _RefusalError("symbolic links are not followed")
    if stat.S_ISDIR(st.st_mode):
        raise _RefusalError("there are no subfolders")
    raise OSError(errno.ENOTDIR, "not a folder")


def _status_of(exc: OSError) -> tuple[int, str]:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return SFTP_NO_SUCH_FILE, "no such file"
    if exc.errno == errno.ELOOP:
        return SFTP_PERMISSION_DENIED, "symbolic links are not followed"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SFTP_PERMISSION_DENIED, "permission denied by the file system"
    return SFTP_FAILURE, os.strerror(exc.errno) if exc.errno else str(exc)


def _printable(value: str, limit: int = 64) -> str:
    """A client-supplied string made safe for one log line."""
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


# --- shared state ---------------------------------------------------------------------------------------


class _Writers:
    """Files open for writing, by (device, inode), and the lock ordering opens, renames and deletes.

    A ``.part`` renamed while a handle still writes to it would change a received file behind the
    server's back (the inode is the same): such a rename is refused until the handle is closed.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._open: Counter[tuple[int, int]] = Counter()

    def add(self, key: tuple[int, int]) -> None:
        """Register a writer; the caller holds ``lock``."""
        self._open[key] += 1

    def is_open(self, key: tuple[int, int]) -> bool:
        """The caller holds ``lock``."""
        return self._open[key] > 0

    def release(self, key: tuple[int, int]) -> None:
        with self.lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]


class _AccountBook:
    """The accounts: fixed at construction, or read from the accounts file and re-read when it changes.

    Re-reading lets ``add_account`` take effect on a running server. A broken file is logged once and
    the last good accounts stay in force.
    """

    def __init__(self, poste_dir: Path, fixed: Mapping[str, SftpAccount] | None) -> None:
        self._poste_dir = poste_dir
        self._fixed = dict(fixed) if fixed is not None else None
        self._accounts: dict[str, SftpAccount] = {}
        self._signature: tuple[int, int, int] | None = None
        self._loaded = False
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """(Re)load now, raising on an invalid file; the number of accounts."""
        if self._fixed is not None:
            for account in self._fixed.values():
                ensure_home(account)
            return len(self._fixed)
        with self._lock:
            self._signature = self._file_signature()
            self._accounts = load_accounts(self._poste_dir)
            self._loaded = True
            return len(self._accounts)

    def get(self, username: str) -> SftpAccount | None:
        if self._fixed is not None:
            return self._fixed.get(username)
        with self._lock:
            signature = self._file_signature()
            if not self._loaded or signature != self._signature:
                self._signature = signature
                self._reload()
            return self._accounts.get(username)

    def _reload(self) -> None:
        try:
            self._accounts = load_accounts(self._poste_dir)
            self._loaded = True
            LOG.info("loaded %d SFTP accounts from %s", len(self._accounts), accounts_file(self._poste_dir))
        except (AccountError, OSError) as exc:
            LOG.error("SFTP accounts file unusable, keeping the previous accounts: %s", exc)

    def _file_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(accounts_file(self._poste_dir))
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


# --- SSH side: authentication and channels ----------------------------------------------------------


class _SessionServer(paramiko.ServerInterface):  # type: ignore[misc]
    """One per connection: public-key login against the account's keys, then one SFTP subsystem."""

    def __init__(self, owner: PosteSftpServer, transport: paramiko.Transport, peer: str) -> None:
        self.owner = owner
        self.transport = transport
        self.peer = peer
        self.account: SftpAccount | None = None
        self._accepted: tuple[SftpAccount, AuthorizedKey] | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: object) -> int:
        self._auth_refused(username, "password authentication is disabled")
        return AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: object) -> int:
        self._auth_refused(username, "keyboard-interactive authentication is disabled")
        return AUTH_FAILED

    def check_auth_interactive_response(self, responses: object) -> int:
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        """Accept a listed key; paramiko then verifies the client's signature before granting the login."""
        account = self.owner.accounts.get(username)
        if account is None:
            self._auth_refused(username, f"unknown username (key {key.fingerprint})")
            return AUTH_FAILED
        listed = account.key_for(key)
        if listed is None:
            self._auth_refused(username, f"key {key.fingerprint} is not authorized for this account")
            return AUTH_FAILED
        self._accepted = (account, listed)
        return AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session" or not self._bind_account():
            LOG.warning("refused channel %s from %s", _printable(kind), self.peer)
            return OPEN_PROHIBITED
        return OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "sftp" or self.account is None:
            LOG.warning("refused subsystem %s from %s", _printable(name), self.peer)
            return False
        return bool(super().check_channel_subsystem_request(channel, name))

    def _bind_account(self) -> bool:
        """After the login, fix the account for the connection's lifetime and log the login once."""
        if self.account is not None:
            return True
        if not self.transport.is_authenticated() or self._accepted is None:
            return False
        account, key = self._accepted
        if account.username != self.transport.get_username():
            return False
        self.account = account
        LOG.info(
            "login user=%s creditor=%s key=%s %s from=%s",
            account.username,
            account.creditor,
            key.key_type,
            key.fingerprint,
            self.peer,
        )
        return True

    def _auth_refused(self, username: str, reason: str) -> None:
        LOG.warning("auth refused user=%s from=%s: %s", _printable(username), self.peer, reason)


class _SftpSubsystem(paramiko.SFTPServer):  # type: ignore[misc]
    """paramiko's SFTP protocol loop, registered with the server so that ``stop()`` can wait for it."""

    def __init__(self, channel: paramiko.Channel, name: str, server: _SessionServer, *args: Any) -> None:
        super().__init__(channel, name, server, *args)
        self._owner = server.owner
        self._session = server
        self._idle = False
        self._owner.track_session(self, add=True)

    def start_subsystem(self, name: str, transport: paramiko.Transport, channel: paramiko.Channel) -> None:
        # A client that vanished without closing (a dead link, a killed process behind a stalled NAT)
        # would otherwise keep its handles, and a half-written .part, open for ever: every later upload
        # of that file would be refused at the rename. Ended after the idle timeout, as sshd does.
        channel.settimeout(self._owner.idle_timeout)
        super().start_subsystem(name, transport, channel)

    def _read_packet(self) -> tuple[int, bytes]:
        try:
            packet: tuple[int, bytes] = super()._read_packet()
        except TimeoutError:
            self._idle = True
            raise EOFError("idle session") from None
        return packet

    def finish_subsystem(self) -> None:
        try:
            super().finish_subsystem()  # closes the handles the client left open
        finally:
            self._owner.track_session(self, add=False)
            if self._idle:
                account = self._session.account
                LOG.warning(
                    "session of user=%s from=%s silent for %.0f s: ended, its open files closed",
                    account.username if account else "?",
                    self._session.peer,
                    self._owner.idle_timeout,
                )
                self._session.transport.close()


# --- SFTP side: the jail ----------------------------------------------------------------------------------


class _JailedSftp(paramiko.SFTPServerInterface):  # type: ignore[misc]
    """The SFTP operations of one session, confined to its account's home (see the module docstring)."""

    def __init__(self, server: _SessionServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        if server.account is None:  # paramiko opens channels only after login; belt and braces
            raise RuntimeError("SFTP session without a login")
        self.account: SftpAccount = server.account
        self.owner = server.owner
        self.peer = server.peer

    # session

    def session_started(self) -> None:
        LOG.debug("sftp session started user=%s from=%s", self.account.username, self.peer)

    def session_ended(self) -> None:
        LOG.info("logout user=%s from=%s", self.account.username, self.peer)

    # reading

    def canonicalize(self, path: str) -> str:
        try:
            return "/" + "/".join(_normalize(path))
        except _RefusalError as refusal:
            self.log_refusal("realpath", path, refusal.reason)
            raise  # paramiko answers SFTP_FAILURE: a REALPATH reply cannot carry a status

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._guarded("stat", path, lambda: self._stat(_resolve(path)))

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self._guarded("lstat", path, lambda: self._stat(_resolve(path)))

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        return self._guarded("list", path, lambda: self._list(_resolve(path)))

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        return self._guarded("open", path, lambda: self._open(_resolve(path), flags))

    def readlink(self, path: str) -> int:
        self.log_refusal("readlink", path, "symbolic links are not followed")
        return SFTP_PERMISSION_DENIED

    # changing

    def remove(self, path: str) -> int:
        return self._guarded("remove", path, lambda: self._remove(_resolve(path)))

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._guarded("rename", f"{oldpath} -> {newpath}", lambda: self._rename(oldpath, newpath))

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        """Like ``rename``: the OpenSSH extension would overwrite; here it never does (spec §2)."""
        return self._guarded(
            "posix-rename", f"{oldpath} -> {newpath}", lambda: self._rename(oldpath, newpath)
        )

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return self._guarded("setstat", path, lambda: self._chattr(_resolve(path), attr))

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        self.log_refusal("mkdir", path, "folders are fixed")
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path: str) -> int:
        self.log_refusal("rmdir", path, "folders are fixed")
        return SFTP_PERMISSION_DENIED

    def symlink(self, target_path: str, path: str) -> int:
        self.log_refusal("symlink", f"{path} -> {target_path}", "symbolic links are not allowed")
        return SFTP_PERMISSION_DENIED

    # implementation

    def _guarded(self, op: str, path: str, action: Callable[[], _T]) -> _T | int:
        """Run ``action``; a refusal or an OS error becomes an SFTP status (and a log line)."""
        try:
            return action()
        except _RefusalError as refusal:
            self.log_refusal(op, path, refusal.reason)
            return refusal.code
        except OSError as exc:
            code, reason = _status_of(exc)
            if code == SFTP_NO_SUCH_FILE:
                LOG.debug("%s %s: %s", op, _printable(path), reason)
            else:
                self.log_refusal(op, path, reason)
            return code

    def log_refusal(self, op: str, path: str, reason: str) -> None:
        LOG.warning(
            "refused user=%s creditor=%s op=%s path=%s: %s",
            self.account.username,
            self.account.creditor,
            op,
            _printable(path, 200),
            reason,
        )

    @contextmanager
    def _folder(self, folder: str | None) -> Iterator[int]:
        """A descriptor of the home (``None``) or of one of its folders, opened without following links."""
        home_fd = os.open(self.account.home, _DIR_FLAGS)
        try:
            if folder is None:
                yield home_fd
                return
            st = os.stat(folder, dir_fd=home_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise _RefusalError("symbolic links are not followed")
            fd = os.open(folder, _DIR_FLAGS, dir_fd=home_fd)
            try:
                yield fd
            finally:
                os.close(fd)
        finally:
            os.close(home_fd)

    def _stat(self, target: _Target) -> paramiko.SFTPAttributes:
        with self._folder(target.folder) as fd:
            if target.name is None:
                return _attributes(os.fstat(fd), target.folder or "/")
            return _attributes(_regular_file(fd, target.name), target.name)

    def _list(self, target: _Target) -> list[paramiko.SFTPAttributes]:
        with self._folder(target.folder) as fd:
            if target.name is not None:
                _not_a_folder(fd, target.name)
            if target.folder is None:
                found = [(name, _lstat(fd, name)) for name in FOLDERS]
                return [_attributes(st, name) for name, st in found if st and stat.S_ISDIR(st.st_mode)]
            entries = []
            with os.scandir(fd) as scan:
                for entry in scan:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):  # links, subfolders, FIFOs... are not served
                        entries.append(_attributes(st, entry.name))
            return entries

    def _open(self, target: _Target, flags: int) -> _FileHandle:
        if target.name is None:
            raise _RefusalError("not a file")
        if flags & _WRITE_INTENT:
            return self._open_for_write(target, flags)
        with self._folder(target.folder) as dir_fd:
            fd = os.open(target.name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                raise _RefusalError("not a regular file")
        LOG.debug("read user=%s path=%s", self.account.username, target.virtual)
        return _FileHandle(self, fd, target.name, writer=None, append=False)

    def _check_part(self, target: _Target, what: str) -> str:
        """The name of an inbound ``.part`` file, or a refusal saying why ``what`` is not allowed."""
        if target.folder == "outbound":
            raise _RefusalError(f"{what}: outbound/ is read-only")
        if target.folder != "inbound" or target.name is None:
            raise _RefusalError(f"{what}: only files in inbound/ may be changed")
        if _is_part_name(target.name):
            return target.name
        if what == "write":
            raise _RefusalError("write: upload as NAME.part (NAME of [A-Za-z0-9_.-]), then rename it to NAME")
        raise _RefusalError(f"{what}: not a .part file; inbound/ is append-only, received files never change")

    def _open_for_write(self, target: _Target, flags: int) -> _FileHandle:
        name = self._check_part(target, "write")
        access = os.O_RDWR if flags & os.O_RDWR else os.O_WRONLY
        # O_TRUNC is applied after the checks below, lest the open itself truncate a file it must not
        os_flags = access | (flags & (os.O_CREAT | os.O_EXCL | os.O_APPEND)) | _FILE_FLAGS
        writers = self.owner.writers
        with self._folder("inbound") as dir_fd:
            existing = _lstat(dir_fd, name)
            if existing is not None:
                _check_regular(existing)
            with writers.lock:  # so that a rename cannot slip between this open and the registration
                fd, key = _open_part(dir_fd, name, os_flags, truncate=bool(flags & os.O_TRUNC))
                writers.add(key)
        LOG.info("upload user=%s path=%s", self.account.username, target.virtual)
        return _FileHandle(self, fd, name, writer=key, append=bool(flags & os.O_APPEND))

    def _remove(self, target: _Target) -> int:
        name = self._check_part(target, "delete")
        with self._folder("inbound") as dir_fd, self.owner.writers.lock:
            _regular_file(dir_fd, name)
            os.unlink(name, dir_fd=dir_fd)
        LOG.info("deleted user=%s path=%s", self.account.username, target.virtual)
        return SFTP_OK

    def _rename(self, oldpath: str, newpath: str) -> int:
        """``inbound/NAME.part`` -> ``inbound/NAME``, only if NAME does not exist; then ``on_file_received``.

        The no-overwrite guarantee is the kernel's: ``link()`` fails if the target exists, atomically,
        even against a concurrent session; the ``.part`` name is removed after.
        """
        source, target = _resolve(oldpath), _resolve(newpath)
        part = self._check_part(source, "rename")
        if target.folder == "outbound":
            raise _RefusalError("rename: outbound/ is read-only")
        final = part[: -len(PART_SUFFIX)]
        if target.folder != "inbound" or target.name != final:
            raise _RefusalError(f"rename: {part} may only become inbound/{final}")
        with self._folder("inbound") as dir_fd:
            _regular_file(dir_fd, part)
            _fsync_file(dir_fd, part)  # the file is durable before it is announced as received
            with self.owner.writers.lock:
                st = _regular_file(dir_fd, part)
                if self.owner.writers.is_open((st.st_dev, st.st_ino)):
                    raise _RefusalError(f"rename: {part} is still open for writing; close it first")
                if _lstat(dir_fd, final) is not None:
                    raise _RefusalError(f"rename: {final} exists; inbound/ never overwrites a file")
                try:
                    os.link(part, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    raise _RefusalError(f"rename: {final} exists; inbound/ never overwrites a file") from None
                try:
                    os.unlink(part, dir_fd=dir_fd)
                except OSError as exc:  # NAME is in place: the file is received all the same
                    LOG.error("could not remove %s after receiving %s: %s", part, final, exc)
            os.fsync(dir_fd)
        self.owner.file_received(self.account, final, st.st_size)
        return SFTP_OK

    def _chattr(self, target: _Target, attr: paramiko.SFTPAttributes) -> int:
        name = self._check_part(target, "setstat")
        _check_attr_change(attr)
        with self._folder("inbound") as dir_fd, self.owner.writers.lock:
            if _regular_file(dir_fd, name).st_nlink > 1:
                raise _RefusalError("not a regular file with a single link")
            fd = os.open(name, os.O_WRONLY | _FILE_FLAGS, dir_fd=dir_fd)
            try:
                self.apply_attr(fd, attr)
            finally:
                os.close(fd)
        return SFTP_OK

    def apply_attr(self, fd: int, attr: paramiko.SFTPAttributes) -> None:
        """Size (truncate, within the limit) and times; the caller checked the rest is absent."""
        if attr.st_size is not None:
            if attr.st_size > self.owner.max_file_size:
                raise _RefusalError(
                    f"size {attr.st_size} exceeds the limit of {self.owner.max_file_size} bytes"
                )
            os.ftruncate(fd, attr.st_size)
        if attr.st_atime is not None and attr.st_mtime is not None:
            os.utime(fd, (attr.st_atime, attr.st_mtime))


def _check_attr_change(attr: paramiko.SFTPAttributes) -> None:
    if attr.st_mode is not None or attr.st_uid is not None or attr.st_gid is not None:
        raise _RefusalError("setstat: permissions and ownership are the server's")


def _open_part(dir_fd: int, name: str, os_flags: int, *, truncate: bool) -> tuple[int, tuple[int, int]]:
    """Open a ``.part`` for writing: a regular file with one link (a hard link could lead anywhere).

    Truncation comes after the checks, so that opening a file that must not be written cannot
    truncate it. Returns the descriptor and the file's (device, inode).
    """
    fd = os.open(name, os_flags, NEW_FILE_MODE, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise _RefusalError("not a regular file with a single link")
        if truncate:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd, (st.st_dev, st.st_ino)


def _fsync_file(dir_fd: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileHandle(paramiko.SFTPHandle):  # type: ignore[misc]
    """An open file: positional reads and writes on the descriptor (no seek, no Python buffering)."""

    def __init__(
        self, jail: _JailedSftp, fd: int, name: str, *, writer: tuple[int, int] | None, append: bool
    ) -> None:
        super().__init__()
        self._jail = jail
        self._fd: int | None = fd
        self._name = name
        self._writer = writer
        self._append = append
        self._limit_logged = False

    def read(self, offset: int, length: int) -> bytes | int:
        if self._fd is None:
            return SFTP_FAILURE
        try:
            data = os.pread(self._fd, min(length, MAX_READ_LENGTH), offset)
        except OSError as exc:
            return _status_of(exc)[0]
        # EOF as a status, not b"": the same reply for READ, and paramiko's "check-file" extension
        # loops forever on b"" when a client asks to hash past the end of the file
        return data if data else SFTP_EOF

    def write(self, offset: int, data: bytes) -> int:
        if self._fd is None or self._writer is None:
            return SFTP_PERMISSION_DENIED
        try:
            start = os.fstat(self._fd).st_size if self._append else offset
            if start + len(data) > self._jail.owner.max_file_size:
                return self._over_limit(start + len(data))
            view = memoryview(data)
            while view:
                written = os.pwrite(self._fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            return _status_of(exc)[0]
        return SFTP_OK

    def _over_limit(self, end: int) -> int:
        if not self._limit_logged:  # a pipelined client sends many more writes after the first refusal
            self._limit_logged = True
            limit = self._jail.owner.max_file_size
            self._jail.log_refusal(
                "write", f"/inbound/{self._name}", f"{end} bytes exceed the limit of {limit} bytes"
            )
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        if self._fd is None:
            return SFTP_FAILURE
        try:
            return _attributes(os.fstat(self._fd), self._name)
        except OSError as exc:
            return _status_of(exc)[0]

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        path = f"/inbound/{self._name}"
        if self._fd is None or self._writer is None:
            self._jail.log_refusal("fsetstat", path, "file not open for writing")
            return SFTP_PERMISSION_DENIED
        try:
            _check_attr_change(attr)
            self._jail.apply_attr(self._fd, attr)
        except _RefusalError as refusal:
            self._jail.log_refusal("fsetstat", path, refusal.reason)
            return refusal.code
        except OSError as exc:
            return _status_of(exc)[0]
        return SFTP_OK

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        finally:
            if self._writer is not None:
                self._jail.owner.writers.release(self._writer)


# --- the server --------------------------------------------------------------------------------------


class PosteSftpServer:
    """The post office's SFTP endpoint. ``start()``/``stop()`` or ``with``; ``serve_forever()`` for the CLI.

    ``accounts`` fixes the accounts; by default they are read from ``poste_dir/sftp_accounts.toml`` and
    re-read when that file changes. ``on_file_received(creditor, name, path)`` runs in the session's
    thread right after a ``.part`` became ``inbound/NAME``, before the client's rename returns: keep it
    short (record the arrival, queue the work). Its exceptions are logged, never sent to the client.
    ``idle_timeout``: a session that sends nothing for this long is ended and its open files closed.
    """

    def __init__(
        self,
        poste_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts: Mapping[str, SftpAccount] | None = None,
        max_file_size: int = 2_000_000_000,
        on_file_received: FileReceived | None = None,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        self.poste_dir = Path(poste_dir)
        self.idle_timeout = idle_timeout
        self.host = host
        self.port = port
        self.max_file_size = max_file_size
        self.on_file_received = on_file_received
        self.host_key = load_or_create_host_key(self.poste_dir / HOST_KEY_FILE)
        self.accounts = _AccountBook(self.poste_dir, accounts)
        self.writers = _Writers()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._transports: set[paramiko.Transport] = set()
        self._sessions: set[_SftpSubsystem] = set()

    @property
    def host_key_line(self) -> str:
        return host_key_line(self.host_key)

    def start(self) -> None:
        """Listen and accept connections in a background thread. Raises on an invalid accounts file."""
        if self._thread is not None:
            raise RuntimeError("the SFTP server is already running")
        if self.accounts.refresh() == 0:
            LOG.warning("no SFTP accounts in %s: nobody can log in", accounts_file(self.poste_dir))
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family, backlog=MAX_CONNECTIONS)
        listener.settimeout(ACCEPT_POLL_SECONDS)  # the accept loop looks at the stop flag this often
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"poste-sftp:{self.port}", daemon=True)
        self._thread.start()
        LOG.info(
            "SFTP server listening on %s:%d, host key %s", self.host, self.port, self.host_key.fingerprint
        )

    def stop(self) -> None:
        """Stop accepting, close every connection, wait (boundedly) for the threads to end."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # on Linux this wakes a blocked accept() at once
                listener.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)
        if listener is not None:
            listener.close()
        with self._lock:
            transports, sessions = list(self._transports), list(self._sessions)
            self._transports.clear()
        for transport in transports:
            transport.close()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for worker in [*sessions, *transports]:
            worker.join(max(0.0, deadline - time.monotonic()))
        if thread is not None:
            LOG.info("SFTP server on port %d stopped", self.port)

    def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM (or ``stop()`` from another thread). Call from the main thread."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            LOG.info("SFTP server: %s received, stopping", signal.Signals(signum).name)
            self._stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self._thread is None:
                self.start()
            self._stopping.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> PosteSftpServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # called by the sessions

    def track_session(self, session: _SftpSubsystem, *, add: bool) -> None:
        with self._lock:
            if add:
                self._sessions.add(session)
            else:
                self._sessions.discard(session)

    def file_received(self, account: SftpAccount, name: str, size: int) -> None:
        path = account.inbound / name
        LOG.info(
            "received creditor=%s name=%s bytes=%d user=%s", account.creditor, name, size, account.username
        )
        if self.on_file_received is None:
            return
        try:
            self.on_file_received(account.creditor, name, path)
        except Exception:
            LOG.exception("on_file_received failed for creditor=%s name=%s", account.creditor, name)

    # connections

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                LOG.exception("SFTP accept failed")
                time.sleep(ACCEPT_POLL_SECONDS)
                continue
            try:
                self._serve(sock, address)
            except Exception:
                LOG.exception("SFTP connection from %s could not start", address)
                sock.close()

    def _serve(self, sock: socket.socket, address: tuple[Any, ...]) -> None:
        peer = f"{address[0]}:{address[1]}"
        with self._lock:
            self._transports = {t for t in self._transports if t.is_active()}
            if len(self._transports) >= MAX_CONNECTIONS:
                LOG.warning("refused connection from %s: %d connections open", peer, MAX_CONNECTIONS)
                sock.close()
                return
        # paramiko never sets TCP_NODELAY: without it every request that waits for its reply stalls ~40 ms
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        transport.add_server_key(self.host_key)
        transport.set_subsystem_handler("sftp", _SftpSubsystem, _JailedSftp)
        with self._lock:
            self._transports.add(transport)
        LOG.debug("connection from %s", peer)
        # with an event, start_server returns at once: the handshake runs in the transport's thread
        transport.start_server(event=threading.Event(), server=_SessionServer(self, transport, peer))
