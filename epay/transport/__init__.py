"""Moving files to and from Algérie Poste: the operator's SFTP client (pure transport, no ledger)."""

from epay.transport.endpoint import SftpEndpoint, load_private_key, parse_host_key
from epay.transport.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    HostKeyError,
    LocalConflictError,
    RemoteConflictError,
    TransportError,
    VerificationError,
)
from epay.transport.sftp import DownloadResult, RemoteFile, SftpClient, UploadResult

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionFailedError",
    "DownloadResult",
    "HostKeyError",
    "LocalConflictError",
    "RemoteConflictError",
    "RemoteFile",
    "SftpClient",
    "SftpEndpoint",
    "TransportError",
    "UploadResult",
    "VerificationError",
    "load_private_key",
    "parse_host_key",
]
