"""What the SFTP client raises: one base class, and the cases a caller must tell apart."""

from __future__ import annotations


class TransportError(Exception):
    """Any failure of a transfer. Raised as such after the connection retries are exhausted."""


class ConfigurationError(TransportError):
    """A setting is missing or unusable (private key file, pinned host key). Never retried."""


class HostKeyError(TransportError):
    """The server's host key is not the pinned one, or none is pinned. Never retried, never accepted."""


class AuthenticationError(TransportError):
    """The server refused our key (or asked for more than a key). Never retried."""


class RemoteConflictError(TransportError):
    """A file of that name is already on the server with other bytes: an incident, nothing was changed."""


class LocalConflictError(TransportError):
    """A downloaded file's name already exists locally with other bytes; the local file was kept."""


class VerificationError(TransportError):
    """The bytes on the other side are not the bytes sent (size or sha256). Never retried."""


class ConnectionFailedError(TransportError):
    """Connection faults on every attempt: ``attempts`` tries, the last one failed with ``__cause__``."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
