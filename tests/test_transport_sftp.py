"""The operator's SFTP client against the simulated post office's real server (127.0.0.1, port 0).

Keys are generated into tmp_path; ``sleep`` is a fake that records the backoff delays, so retry tests
are instant and count the attempts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from epay.poste.sftp_accounts import SftpAccount, add_account
from epay.poste.sftp_server import HOST_KEY_FILE, PosteSftpServer
from epay.settings import Settings
from epay.transport import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    HostKeyError,
    LocalConflictError,
    RemoteConflictError,
    SftpClient,
    SftpEndpoint,
    TransportError,
    VerificationError,
)

USERNAME, CREDITOR = "at100237", "100237"
PRLV = "PRLV_100237_20261125_01.txt"

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def write_key(path: Path, kind: str = "ed25519") -> str:
    """Generate a private key into ``path`` (OpenSSH format, 0600); its public key line."""
    private: PrivateKey
    if kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ecdsa":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {path.name}@test"


def other_host_key(kind: str) -> str:
    """The public key line of a freshly generated key the server does not have."""
    private: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if kind == "ecdsa" else ed25519.Ed25519PrivateKey.generate()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


@dataclass
class Site:
    """A running post office SFTP server with AT's account, and AT's key file."""

    tmp: Path
    poste_dir: Path
    account: SftpAccount
    key_file: Path
    server: PosteSftpServer
    received: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def endpoint(self, **changes: Any) -> SftpEndpoint:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "username": USERNAME,
            "private_key_file": self.key_file,
            "host_key": self.server.host_key_line,
            "connect_timeout": 5.0,
            "io_timeout": 10.0,
        }
        values.update(changes)
        return SftpEndpoint(**values)

    def client(self, retries: int = 3, **changes: Any) -> SftpClient:
        return SftpClient(self.endpoint(**changes), retries=retries, backoff=0.5, sleep=self.sleeps.append)

    def local_file(self, name: str, data: bytes) -> Path:
        folder = self.tmp / "out"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        return path

    def inbound(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.account.inbound.iterdir())}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    poste_dir = tmp_path / "poste"
    key_file = tmp_path / "at_key"
    account = add_account(poste_dir, USERNAME, CREDITOR, write_key(key_file))
    received: list[str] = []
    with PosteSftpServer(poste_dir, on_file_received=lambda c, name, p: received.append(name)) as server:
        yield Site(tmp_path, poste_dir, account, key_file, server, received)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- upload ----------------------------------------------------------------------------------------------


def test_upload_puts_the_same_bytes_under_the_final_name_and_no_part(site: Site) -> None:
    data = os.urandom(1_500_000)
    with site.client() as client:
        result = client.upload(site.local_file(PRLV, data))
    assert (result.name, result.size, result.sha256, result.already_there) == (
        PRLV,
        len(data),
        sha256(data),
        False,
    )
    assert site.inbound() == {PRLV: data}
    assert site.received == [PRLV]
    assert site.sleeps == []
    # the request size is tuned on our own file objects only, never on paramiko's class
    assert paramiko.SFTPFile.MAX_REQUEST_SIZE == 32768


def test_empty_file_uploads(site: Site) -> None:
    with site.client() as client:
        result = client.upload(site.local_file(PRLV, b""))
    assert (result.size, result.sha256) == (0, sha256(b""))
    assert site.inbound() == {PRLV: b""}


def test_resending_identical_bytes_is_already_there_and_changes_nothing(site: Site) -> None:
    data = b"PRLV content\n" * 1000
    local = site.local_file(PRLV, data)
    with site.client() as client:
        first = client.upload(local)
        before = os.stat(site.account.inbound / PRLV)
        again = client.upload(local)
    after = os.stat(site.account.inbound / PRLV)
    assert not first.already_there and again.already_there
    assert (again.size, again.sha256) == (len(data), sha256(data))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert site.inbound() == {PRLV: data}
    assert site.received == [PRLV]


def test_same_name_with_other_bytes_is_a_conflict_and_changes_nothing(site: Site) -> None:
    with site.client() as client:
        client.upload(site.local_file(PRLV, b"the first file\n"))
        other = site.tmp / "other"
        other.mkdir()
        (other / PRLV).write_bytes(b"another file!!\n")  # same size, other bytes
        with pytest.raises(RemoteConflictError, match="other bytes") as caught:
            client.upload(other / PRLV)
        assert sha256(b"another file!!\n") in str(caught.value)
        (other / PRLV).write_bytes(b"a longer, different file\n")  # other size
        with pytest.raises(RemoteConflictError):
            client.upload(other / PRLV)
    assert site.inbound() == {PRLV: b"the first file\n"}
    assert site.sleeps == []


def test_a_leftover_part_of_ours_is_replaced(site: Site) -> None:
    (site.account.inbound / f"{PRLV}.part").write_bytes(b"half of an earlier attempt" * 10_000)
    data = b"complete\n"
    with site.client() as client:
        assert not client.upload(site.local_file(PRLV, data)).already_there
    assert site.inbound() == {PRLV: data}


def test_a_lost_rename_reply_is_retried_and_counts_as_sent(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename happens on the server, then the connection drops before its reply comes back."""
    rename = paramiko.SFTPClient.rename
    dropped: list[str] = []

    def rename_then_drop(self: paramiko.SFTPClient, old: str, new: str) -> None:
        rename(self, old, new)
        if not dropped:
            dropped.append(new)
            self.get_channel().get_transport().close()
            raise EOFError("connection lost")

    monkeypatch.setattr(paramiko.SFTPClient, "rename", rename_then_drop)
    data = os.urandom(200_000)
    with site.client() as client:
        result = client.upload(site.local_file(PRLV, data))
    assert dropped == [f"/inbound/{PRLV}"]
    assert not result.already_there  # it was our own rename that took effect
    assert site.sleeps == [0.5]
    assert site.inbound() == {PRLV: data}


@pytest.mark.parametrize("size", [1_000_000, 30_000_000])
def test_a_write_the_server_refuses_is_caught_and_nothing_is_renamed(tmp_path: Path, size: int) -> None:
    """Pipelined writes lose write errors (small file: the size check catches it) or report them late."""
    poste_dir = tmp_path / "poste"
    key_file = tmp_path / "at_key"
    account = add_account(poste_dir, USERNAME, CREDITOR, write_key(key_file))
    with PosteSftpServer(poste_dir, max_file_size=300_000) as server:
        site = Site(tmp_path, poste_dir, account, key_file, server)
        with site.client() as client, pytest.raises(TransportError) as caught:
            client.upload(site.local_file(PRLV, os.urandom(size)))
    assert not isinstance(caught.value, ConnectionFailedError)
    assert site.inbound() == {}  # not renamed, and our .part removed
    assert site.sleeps == []


@pytest.mark.parametrize("name", [f"{PRLV}.part", ".hidden", "bad name.txt"])
def test_names_that_cannot_be_uploaded(site: Site, name: str) -> None:
    with site.client() as client, pytest.raises(TransportError, match="not a plain file name"):
        client.upload(site.local_file(name, b"x"))
    assert site.inbound() == {}


# --- host key ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_an_unknown_host_key_is_refused_before_logging_in(
    site: Site, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="epay.poste.sftp")
    pinned = other_host_key(kind)
    client = site.client(host_key=pinned)
    with pytest.raises(HostKeyError) as caught:
        client.upload(site.local_file(PRLV, b"data"))
    message = str(caught.value)
    assert site.server.host_key.fingerprint in message  # what the server offered
    assert "pinned" in message and message.count("SHA256:") == 2
    assert site.inbound() == {}
    assert site.sleeps == []  # never retried
    assert not any(r.getMessage().startswith("login ") for r in caplog.records)  # no authentication


def test_a_changed_host_key_is_refused(site: Site) -> None:
    old_line = site.server.host_key_line
    site.server.stop()
    (site.poste_dir / HOST_KEY_FILE).unlink()
    with PosteSftpServer(site.poste_dir) as restarted:
        assert restarted.host_key_line != old_line
        client = site.client(port=restarted.port, host_key=old_line)
        with pytest.raises(HostKeyError, match="host key mismatch") as caught:
            client.list_files()
        assert restarted.host_key.fingerprint in str(caught.value)
    assert site.sleeps == []


@pytest.mark.parametrize(
    "line", ["", "   ", "ssh-ed25519", "ssh-ed25519 not*base64", "ssh-dss AAAAB3NzaC1kc3M="]
)
def test_without_a_usable_pinned_key_there_is_no_endpoint(site: Site, line: str) -> None:
    with pytest.raises(HostKeyError):
        site.endpoint(host_key=line)


def test_a_pinned_key_line_may_carry_a_comment(site: Site) -> None:
    with site.client(host_key=f"{site.server.host_key_line} poste@algerie") as client:
        assert client.list_files() == []


# --- authentication and retries -------------------------------------------------------------------------


def test_a_wrong_client_key_is_an_authentication_error_never_retried(site: Site) -> None:
    stranger = site.tmp / "stranger_key"
    write_key(stranger)
    with pytest.raises(AuthenticationError, match="refused key"):
        site.client(private_key_file=stranger).connect()
    assert site.sleeps == []


def test_an_unknown_username_is_an_authentication_error(site: Site) -> None:
    with pytest.raises(AuthenticationError):
        site.client(username="nobody").list_files()
    assert site.sleeps == []


def test_a_missing_private_key_file_is_a_configuration_error(site: Site) -> None:
    with pytest.raises(ConfigurationError, match="no_such_key"):
        site.client(private_key_file=site.tmp / "no_such_key").connect()
    assert site.sleeps == []


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_ecdsa_and_rsa_client_keys(site: Site, kind: str) -> None:
    key_file = site.tmp / f"{kind}_key"
    add_account(site.poste_dir, USERNAME, CREDITOR, write_key(key_file, kind))
    with site.client(private_key_file=key_file) as client:
        assert client.upload(site.local_file(PRLV, b"x\n")).size == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_refused_connection_is_retried_with_backoff_then_fails_clearly(site: Site) -> None:
    client = site.client(retries=3, port=closed_port())
    with pytest.raises(ConnectionFailedError, match="after 4 attempts") as caught:
        client.upload(site.local_file(PRLV, b"data"))
    assert caught.value.attempts == 4
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert "ConnectionRefusedError" in str(caught.value)
    assert site.sleeps == [0.5, 1.0, 2.0]


def test_no_retries_means_one_attempt(site: Site) -> None:
    with pytest.raises(ConnectionFailedError, match="after 1 attempt;"):
        site.client(retries=0, port=closed_port()).list_files()
    assert site.sleeps == []


def test_a_dropped_connection_is_reopened(site: Site) -> None:
    (site.account.outbound / "RETR_100237_20261126_01.txt").write_bytes(b"r")
    with site.client() as client:
        transport = client._transport
        assert transport is not None
        transport.close()  # the connection dies between two operations
        assert [f.name for f in client.list_files()] == ["RETR_100237_20261126_01.txt"]
        assert client._transport is not transport
    assert site.sleeps == []  # seen dead before use: reopened at once, no fault to back off from


# --- listing and download --------------------------------------------------------------------------------


def test_list_files_ignores_part_files(site: Site) -> None:
    outbound = site.account.outbound
    (outbound / "RETR_100237_20261126_01.txt").write_bytes(b"12345")
    (outbound / "ACK_PRLV_100237_20261125_01.txt").write_bytes(b"ab")
    (outbound / "MNDT_100237_20261126_01.txt.part").write_bytes(b"unfinished")
    os.utime(outbound / "ACK_PRLV_100237_20261125_01.txt", (1_790_000_000, 1_790_000_000))
    with site.client() as client:
        files = client.list_files()
        assert client.list_files("/inbound") == []
    assert [(f.name, f.size) for f in files] == [
        ("ACK_PRLV_100237_20261125_01.txt", 2),
        ("RETR_100237_20261126_01.txt", 5),
    ]
    assert files[0].mtime is not None and files[0].mtime.timestamp() == 1_790_000_000


def test_download_gives_the_same_bytes_and_their_sha256(site: Site) -> None:
    name = "RETR_100237_20261126_01.txt"
    data = os.urandom(2_000_000)
    (site.account.outbound / name).write_bytes(data)
    local_dir = site.tmp / "inbound" / "2026-11-26"
    with site.client() as client:
        result = client.download(name, local_dir)
    assert (result.name, result.path, result.size, result.sha256) == (
        name,
        local_dir / name,
        len(data),
        sha256(data),
    )
    assert result.path.read_bytes() == data
    assert sorted(p.name for p in local_dir.iterdir()) == [name]  # no temporary file left
    assert (site.account.outbound / name).read_bytes() == data  # nothing changed on the server


def test_downloading_again_keeps_an_identical_local_file_and_refuses_a_different_one(site: Site) -> None:
    name = "RELV_100237_20261126_01.txt"
    (site.account.outbound / name).write_bytes(b"statement\n")
    with site.client() as client:
        first = client.download(name, site.tmp / "in")
        assert client.download(name, site.tmp / "in") == first
        first.path.write_bytes(b"tampered!\n")
        with pytest.raises(LocalConflictError, match="local file was kept"):
            client.download(name, site.tmp / "in")
    assert first.path.read_bytes() == b"tampered!\n"
    assert sorted(p.name for p in (site.tmp / "in").iterdir()) == [name]


def test_downloading_a_missing_file_fails_without_retrying(site: Site) -> None:
    with site.client() as client, pytest.raises(TransportError, match="RETR_100237_20261126_09") as caught:
        client.download("RETR_100237_20261126_09.txt", site.tmp / "in")
    assert not isinstance(caught.value, ConnectionFailedError)
    assert site.sleeps == []
    assert not (site.tmp / "in" / "RETR_100237_20261126_09.txt").exists()


@pytest.mark.parametrize("name", ["../escape.txt", "x/y.txt", ".hidden", "RETR.txt.part"])
def test_download_refuses_names_that_are_not_plain(site: Site, name: str) -> None:
    with pytest.raises(TransportError, match="not a plain file name"):
        site.client().download(name, site.tmp / "in")


def test_verification_error_is_a_transport_error() -> None:
    assert issubclass(VerificationError, TransportError)
    assert issubclass(HostKeyError, TransportError)


# --- settings ------------------------------------------------------------------------------------------


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(home=tmp_path, **values)


def test_from_settings_names_the_missing_host_key(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with pytest.raises(HostKeyError, match="EPAY_SFTP_HOST_KEY"):
        SftpEndpoint.from_settings(settings(tmp_path, sftp_private_key_file=key, sftp_host_key=None))


def test_from_settings_names_the_missing_private_key(site: Site) -> None:
    values: dict[str, Any] = {"sftp_private_key_file": None, "sftp_host_key": site.server.host_key_line}
    with pytest.raises(ConfigurationError, match="EPAY_SFTP_PRIVATE_KEY_FILE"):
        SftpEndpoint.from_settings(settings(site.tmp, **values))


def test_from_settings_builds_a_working_endpoint(site: Site) -> None:
    endpoint = SftpEndpoint.from_settings(
        settings(
            site.tmp,
            sftp_host="127.0.0.1",
            sftp_port=site.server.port,
            sftp_username=USERNAME,
            sftp_private_key_file=site.key_file,
            sftp_host_key=site.server.host_key_line,
        )
    )
    assert (endpoint.port, endpoint.username, endpoint.private_key_file) == (
        site.server.port,
        USERNAME,
        site.key_file,
    )
    with SftpClient(endpoint) as client:
        assert client.list_files() == []


def test_no_key_material_in_errors_or_repr(site: Site) -> None:
    secret = site.key_file.read_text()
    body = secret.splitlines()[1]
    stranger = site.tmp / "stranger_key"
    write_key(stranger)
    errors: list[str] = [repr(site.endpoint())]
    for action in _failing_actions(site, stranger):
        with pytest.raises(TransportError) as caught:
            action()
        errors.append(str(caught.value))
    assert all(body not in text for text in errors)


def _failing_actions(site: Site, stranger: Path) -> list[Callable[[], object]]:
    garbage = site.tmp / "garbage_key"
    garbage.write_text(site.key_file.read_text()[:200])
    garbage.chmod(0o600)
    return [
        site.client(private_key_file=stranger).connect,
        site.client(private_key_file=garbage).connect,
    ]


def test_an_airflow_connection_gives_a_working_endpoint(site: Site) -> None:
    """The SFTP provider's layout: host, port, login, extra {key_file, host_key} (duck-typed here: this
    test process never imports Airflow)."""
    from types import SimpleNamespace

    connection = SimpleNamespace(
        conn_id="epay_sftp",
        host="127.0.0.1",
        port=site.server.port,
        login=USERNAME,
        extra_dejson={"key_file": str(site.key_file), "host_key": site.server.host_key_line},
    )
    with SftpClient(SftpEndpoint.from_airflow_connection(connection)) as client:
        assert client.list_files() == []
    for broken, error in (
        ({"key_file": str(site.key_file)}, HostKeyError),  # no pin: never trusted
        ({"host_key": site.server.host_key_line}, ConfigurationError),
        (
            {
                "key_file": str(site.key_file),
                "host_key": site.server.host_key_line,
                "allow_host_key_change": True,
            },
            HostKeyError,
        ),
    ):
        with pytest.raises(error):
            SftpEndpoint.from_airflow_connection(
                SimpleNamespace(**{**vars(connection), "extra_dejson": broken})
            )
