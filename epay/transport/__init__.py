"""Moving files to and from Algérie Poste (pure transport, no ledger): the ``FileTransport`` interface, the
operator's SFTP client, and a folder transport for simulation."""

from epay.transport.agent import FileTransport
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
    "FileTransport",
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
