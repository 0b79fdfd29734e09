"""The simulated post office's SFTP accounts: one per creditor, public keys only.

The accounts live in ``<poste_dir>/sftp_accounts.toml``::

    [[account]]
    username = "at100237"
    creditor = "100237"
    authorized_keys = ["ssh-ed25519 AAAA... operator@at"]

Each account's home is ``<poste_dir>/sftp/<creditor>`` with ``inbound/`` and ``outbound/``.
Several usernames may share a creditor (e.g. during a key or operator change); they then share the home.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

ACCOUNTS_FILE = "sftp_accounts.toml"
SFTP_ROOT = "sftp"
FOLDERS = ("inbound", "outbound")
KEY_TYPES = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"}
)
MIN_RSA_BITS = 2048

_USERNAME = re.compile(r"[a-z0-9_]{1,32}")
_CREDITOR = re.compile(r"[0-9]{6}")  # not \d: that also matches Arabic-Indic and other Unicode digits
_ENTRY_FIELDS = frozenset({"username", "creditor", "authorized_keys"})


class AccountError(ValueError):
    """The accounts file, or a value given for it, is invalid. The message names the file and entry."""


@dataclass(frozen=True)
class AuthorizedKey:
    """One public key allowed to log in to an account."""

    key_type: str
    base64_blob: str
    comment: str
    key: paramiko.PKey

    @property
    def blob(self) -> bytes:
        """The SSH wire form of the public key: what a client presents when it authenticates."""
        return base64.b64decode(self.base64_blob)

    @property
    def fingerprint(self) -> str:
        """``SHA256:...``, as OpenSSH prints it; safe to log."""
        return str(self.key.fingerprint)

    @property
    def line(self) -> str:
        """The key as one ``authorized_keys`` line."""
        text = f"{self.key_type} {self.base64_blob}"
        return f"{text} {self.comment}" if self.comment else text


@dataclass(frozen=True)
class SftpAccount:
    """A login: its username, the creditor it acts for, its home folder and its keys."""

    username: str
    creditor: str
    home: Path
    authorized_keys: tuple[AuthorizedKey, ...]

    @property
    def inbound(self) -> Path:
        return self.home / "inbound"

    @property
    def outbound(self) -> Path:
        return self.home / "outbound"

    def key_for(self, key: paramiko.PKey) -> AuthorizedKey | None:
        """The listed key equal to ``key`` (compared on the public key's wire bytes), if any."""
        presented = bytes(key.asbytes())
        for listed in self.authorized_keys:
            if listed.blob == presented:
                return listed
        return None


def accounts_file(poste_dir: Path) -> Path:
    return poste_dir / ACCOUNTS_FILE


def home_of(poste_dir: Path, creditor: str) -> Path:
    return poste_dir / SFTP_ROOT / creditor


def parse_public_key_line(line: str, where: str = "public key") -> AuthorizedKey:
    """Parse ``"<type> <base64> [comment]"``; ``where`` prefixes every error message.

    Only plain ed25519, ECDSA and RSA (>= 2048 bits) keys: no certificates, no ``authorized_keys``
    options (``from=``, ``command=``...), which this server would not enforce.
    """
    fields = line.strip().split(None, 2)
    if len(fields) < 2:
        raise AccountError(f"{where}: expected '<type> <base64> [comment]', got {_shorten(line)!r}")
    key_type, b64 = fields[0], fields[1]
    if key_type not in KEY_TYPES:
        allowed = ", ".join(sorted(KEY_TYPES))
        raise AccountError(f"{where}: key type {_shorten(key_type)!r} is not accepted (allowed: {allowed})")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise AccountError(f"{where}: the {key_type} key is not valid base64") from None
    key = _load_public_key(key_type, blob, where)
    if key_type == "ssh-rsa" and key.get_bits() < MIN_RSA_BITS:
        raise AccountError(f"{where}: RSA key of {key.get_bits()} bits; at least {MIN_RSA_BITS} required")
    comment = fields[2].strip() if len(fields) == 3 else ""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in comment):
        raise AccountError(f"{where}: the key comment contains control characters")
    return AuthorizedKey(key_type, base64.b64encode(blob).decode("ascii"), comment, key)


def _load_public_key(key_type: str, blob: bytes, where: str) -> paramiko.PKey:
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except Exception as exc:  # paramiko and cryptography raise many kinds on malformed blobs
        raise AccountError(f"{where}: not a valid {key_type} public key ({type(exc).__name__})") from None
    if key.get_name() != key_type or bytes(key.asbytes()) != blob:
        raise AccountError(f"{where}: the key data does not match its type {key_type}")
    return key


def load_accounts(poste_dir: Path) -> dict[str, SftpAccount]:
    """All accounts by username; ``{}`` when the file does not exist. Creates missing home folders."""
    path = accounts_file(poste_dir)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise AccountError(f"{path}: not valid TOML: {exc}") from None
    accounts = _parse_accounts(path, data, poste_dir)
    for account in accounts.values():
        ensure_home(account)
    return accounts


def _parse_accounts(path: Path, data: Mapping[str, object], poste_dir: Path) -> dict[str, SftpAccount]:
    unknown = set(data) - {"account"}
    if unknown:
        raise AccountError(f"{path}: unknown top-level keys {sorted(unknown)}; expected [[account]] tables")
    entries = data.get("account", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AccountError(f"{path}: 'account' must be an array of tables ([[account]])")
    accounts: dict[str, SftpAccount] = {}
    for number, entry in enumerate(entries, start=1):
        account = _parse_entry(f"{path}: account #{number}", entry, poste_dir)
        if account.username in accounts:
            raise AccountError(f"{path}: account #{number}: username {account.username!r} is listed twice")
        accounts[account.username] = account
    return accounts


def _parse_entry(where: str, entry: Mapping[str, object], poste_dir: Path) -> SftpAccount:
    username = entry.get("username")
    if isinstance(username, str):
        where = f"{where} ({username!r})"
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise AccountError(f"{where}: unknown fields {sorted(unknown)}; expected {sorted(_ENTRY_FIELDS)}")
    username = check_username(username, where)
    creditor = check_creditor(entry.get("creditor"), where)
    lines = entry.get("authorized_keys")
    if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
        raise AccountError(f"{where}: authorized_keys must be a non-empty list of key lines")
    keys = tuple(parse_public_key_line(x, f"{where}: authorized_keys[{i}]") for i, x in enumerate(lines))
    return SftpAccount(username, creditor, home_of(poste_dir, creditor), keys)


def check_username(value: object, where: str = "username") -> str:
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise AccountError(f"{where}: username must match [a-z0-9_]{{1,32}}, got {_shorten(value)!r}")
    return value


def check_creditor(value: object, where: str = "creditor") -> str:
    if not isinstance(value, str) or not _CREDITOR.fullmatch(value):
        raise AccountError(f"{where}: creditor must be a string of 6 digits, got {_shorten(value)!r}")
    return value


def ensure_home(account: SftpAccount) -> None:
    """Create the home and its two folders; refuse if any of them is a symlink or not a folder."""
    for folder in (account.home, account.inbound, account.outbound):
        folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise AccountError(f"{folder}: SFTP folder of {account.username!r} must be a real folder")


def add_account(poste_dir: Path, username: str, creditor: str, public_key_line: str) -> SftpAccount:
    """Add an account, or a key to an existing account; rewrite the file atomically.

    Adding a key already listed is a no-op. Moving a username to another creditor is refused: that
    would hand one creditor's files to another. The file is rewritten from its parsed content, so
    hand-written TOML comments are not kept.
    """
    path = accounts_file(poste_dir)
    username = check_username(username, f"{path}: new account")
    creditor = check_creditor(creditor, f"{path}: new account {username!r}")
    key = parse_public_key_line(public_key_line, f"{path}: new key for {username!r}")
    poste_dir.mkdir(parents=True, exist_ok=True)
    with _locked(poste_dir):
        accounts = load_accounts(poste_dir)
        existing = accounts.get(username)
        if existing is None:
            accounts[username] = SftpAccount(username, creditor, home_of(poste_dir, creditor), (key,))
        elif existing.creditor != creditor:
            raise AccountError(
                f"{path}: account {username!r} belongs to creditor {existing.creditor}, not {creditor}"
            )
        elif existing.key_for(key.key) is None:
            keys = (*existing.authorized_keys, key)
            accounts[username] = SftpAccount(username, creditor, existing.home, keys)
        else:
            return existing
        _atomic_write(path, render_accounts(accounts.values()))
        account = load_accounts(poste_dir)[username]
    return account


def render_accounts(accounts: Iterable[SftpAccount]) -> str:
    """The TOML text of ``accounts``, in the layout documented above."""
    out = ["# SFTP accounts of the simulated Algérie Poste. Written by epay: comments are not kept.", ""]
    for account in accounts:
        out += [
            "[[account]]",
            f"username = {_toml_string(account.username)}",
            f"creditor = {_toml_string(account.creditor)}",
            "authorized_keys = [",
            *(f"    {_toml_string(k.line)}," for k in account.authorized_keys),
            "]",
            "",
        ]
    return "\n".join(out)


def _toml_string(value: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    parts = []
    for c in value:
        if c in '"\\':
            parts.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            parts.append(f"\\u{ord(c):04X}")
        else:
            parts.append(c)
    return '"' + "".join(parts) + '"'


def _shorten(value: object, limit: int = 60) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


@contextmanager
def _locked(poste_dir: Path) -> Iterator[None]:
    """Serialise writers of the accounts file (two ``add_account`` at once would lose one)."""
    fd = os.open(poste_dir / f".{ACCOUNTS_FILE}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
