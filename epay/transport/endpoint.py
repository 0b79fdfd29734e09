"""Where and how to connect: the SFTP endpoint, its pinned host key and our private key.

Nothing here opens a connection. The pinned host key is checked when the endpoint is built, so an
endpoint without a usable pin cannot exist; the private key file is read only when connecting.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from epay.transport.errors import ConfigurationError, HostKeyError

if TYPE_CHECKING:
    from epay.settings import Settings

LOG = logging.getLogger("epay.transport.sftp")

# Host key types we can pin, and the host key algorithms that negotiate each (an RSA key is used
# with SHA-2 signatures; the SHA-1 "ssh-rsa" algorithm is not offered).
HOST_KEY_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}
HOST_KEY_ENV = "EPAY_SFTP_HOST_KEY"
PRIVATE_KEY_ENV = "EPAY_SFTP_PRIVATE_KEY_FILE"


@dataclass(frozen=True)
class SftpEndpoint:
    """Connection settings. ``host_key`` is the server's pinned public key, ``"ssh-ed25519 AAAA..."``.

    ``connect_timeout`` bounds the TCP connect, the SSH handshake, the authentication and the opening of
    the SFTP session; ``io_timeout`` bounds any wait for the server once connected, to answer or to take
    the data we send (a silent server or a stalled link is a connection fault).
    """

    host: str
    port: int
    username: str
    private_key_file: Path
    host_key: str
    connect_timeout: float = 10.0
    io_timeout: float = 120.0

    def __post_init__(self) -> None:
        parse_host_key(self.host_key)  # raises HostKeyError: no usable pin, no endpoint
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"SFTP port must be 1-65535, got {self.port}")
        if not self.host or not self.username:
            raise ConfigurationError("SFTP host and username must not be empty")
        if self.connect_timeout <= 0 or self.io_timeout <= 0:
            raise ConfigurationError("SFTP timeouts must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> SftpEndpoint:
        """The endpoint of epay's settings (``EPAY_SFTP_*``); a missing key or pin names its variable."""
        if not settings.sftp_host_key:
            raise HostKeyError(
                f"{HOST_KEY_ENV} is not set: pin the post office's SFTP host key "
                "('ssh-ed25519 AAAA...', e.g. the output of `epay poste host-key`); "
                "an unpinned server is never trusted"
            )
        if settings.sftp_private_key_file is None:
            raise ConfigurationError(
                f"{PRIVATE_KEY_ENV} is not set: give the path of the SFTP account's private key file"
            )
        return cls(
            host=settings.sftp_host,
            port=settings.sftp_port,
            username=settings.sftp_username,
            private_key_file=Path(settings.sftp_private_key_file),
            host_key=settings.sftp_host_key,
        )

    @classmethod
    def from_airflow_connection(cls, connection: Any) -> SftpEndpoint:
        """The endpoint of an Airflow Connection (as the SFTP provider lays it out): host, port, login, and
        in its extra ``key_file`` (path of the private key) and ``host_key`` (the pinned public key line).
        Duck-typed, so this module never imports Airflow."""
        extra = dict(getattr(connection, "extra_dejson", None) or {})
        host_key = extra.get("host_key")
        if not host_key:
            raise HostKeyError(
                f"Airflow connection {getattr(connection, 'conn_id', '?')!r} has no 'host_key' in its extra: "
                "an unpinned server is never trusted"
            )
        key_file = extra.get("key_file")
        if not key_file:
            raise ConfigurationError(
                f"Airflow connection {getattr(connection, 'conn_id', '?')!r} has no 'key_file' in its extra"
            )
        if str(extra.get("allow_host_key_change", "false")).lower() == "true":
            raise HostKeyError(
                "allow_host_key_change is set on the connection: refused, the host key stays pinned"
            )
        return cls(
            host=str(connection.host),
            port=int(connection.port or 22),
            username=str(connection.login),
            private_key_file=Path(str(key_file)),
            host_key=str(host_key),
        )

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def pinned_key(self) -> paramiko.PKey:
        return parse_host_key(self.host_key)


def parse_host_key(line: str) -> paramiko.PKey:
    """The public key of an OpenSSH public key line ``"<type> <base64> [comment]"``."""
    fields = (line or "").split(None, 2)
    if not fields:
        raise HostKeyError("no SFTP host key is pinned: refusing to trust whatever key the server shows")
    if len(fields) < 2:
        raise HostKeyError("pinned SFTP host key: expected '<type> <base64> [comment]'")
    key_type, b64 = fields[0], fields[1]
    if key_type not in HOST_KEY_ALGORITHMS:
        allowed = ", ".join(HOST_KEY_ALGORITHMS)
        raise HostKeyError(f"pinned SFTP host key: type {key_type[:40]!r} is not supported ({allowed})")
    try:
        blob = base64.b64decode(b64, validate=True)
        key = paramiko.PKey.from_type_string(key_type, blob)
    except binascii.Error:
        raise HostKeyError(f"pinned SFTP host key: the {key_type} key is not valid base64") from None
    except Exception as exc:  # paramiko and cryptography raise many kinds on malformed blobs
        kind = type(exc).__name__
        raise HostKeyError(f"pinned SFTP host key: not a valid {key_type} key ({kind})") from None
    if key.get_name() != key_type or bytes(key.asbytes()) != blob:
        raise HostKeyError(f"pinned SFTP host key: the key data does not match its type {key_type}")
    return key


def load_private_key(path: Path) -> paramiko.PKey:
    """Our private key (ed25519, ECDSA or RSA; OpenSSH or PEM format, not passphrase-protected).

    Errors name the file and the kind of problem, never the key's content.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigurationError(f"SFTP private key {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigurationError(f"SFTP private key {path}: not a regular file")
    if st.st_mode & 0o077:
        mode = st.st_mode & 0o777
        LOG.warning("SFTP private key %s is readable by others (mode %04o): chmod 600", path, mode)
    try:
        key = paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise ConfigurationError(
            f"SFTP private key {path}: protected by a passphrase, which this client does not support"
        ) from None
    except Exception as exc:  # paramiko, cryptography and OSError all possible; no message: it may quote data
        raise ConfigurationError(
            f"SFTP private key {path}: cannot load it ({type(exc).__name__}); "
            "expected an ed25519, ECDSA or RSA key in OpenSSH or PEM format"
        ) from None
    return key
