"""The simulated post office's SFTP server: login, the jail, append-only inbound, the real OpenSSH client.

Every test runs a server in-process on 127.0.0.1, port 0, with keys generated into tmp_path.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epay.poste.sftp_accounts import AccountError, add_account, load_accounts, parse_public_key_line
from epay.poste.sftp_server import (
    HostKeyError,
    PosteSftpServer,
    host_key_line,
    load_or_create_host_key,
)

AT, AT_CREDITOR = "at100237", "100237"
OTHER, OTHER_CREDITOR = "bank200001", "200001"
FINAL = "PRLV_100237_20261125_01.txt"
PART = FINAL + ".part"


@dataclass
class Login:
    username: str
    creditor: str
    key: paramiko.PKey
    public_line: str
    home: Path


@dataclass
class World:
    poste_dir: Path
    at: Login
    other: Login
    received: list[tuple[str, str, Path]] = field(default_factory=list)

    def record(self, creditor: str, name: str, path: Path) -> None:
        self.received.append((creditor, name, path))


def new_key(folder: Path, name: str) -> tuple[paramiko.PKey, str]:
    """An ed25519 key pair: the private key (written in OpenSSH format, loaded by paramiko) and its line."""
    private = Ed25519PrivateKey.generate()
    path = folder / name
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return paramiko.Ed25519Key.from_private_key_file(str(path)), f"{public.decode()} {name}@test"


def make_login(world_dir: Path, poste_dir: Path, username: str, creditor: str) -> Login:
    key, line = new_key(world_dir, username)
    account = add_account(poste_dir, username, creditor, line)
    return Login(username, creditor, key, line, account.home)


@pytest.fixture
def world(tmp_path: Path) -> World:
    poste_dir = tmp_path / "poste"
    keys = tmp_path / "keys"
    keys.mkdir()
    return World(
        poste_dir,
        make_login(keys, poste_dir, AT, AT_CREDITOR),
        make_login(keys, poste_dir, OTHER, OTHER_CREDITOR),
    )


@pytest.fixture
def server(world: World) -> Iterator[PosteSftpServer]:
    with PosteSftpServer(world.poste_dir, on_file_received=world.record) as running:
        yield running


def pinned(server: PosteSftpServer) -> paramiko.PKey:
    """The server's public host key, rebuilt from the line an operator pins (no private part)."""
    key_type, b64 = server.host_key_line.split()
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))


def open_transport(server: PosteSftpServer) -> paramiko.Transport:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return paramiko.Transport(sock)


@contextmanager
def session(server: PosteSftpServer, login: Login) -> Iterator[paramiko.SFTPClient]:
    transport = open_transport(server)
    try:
        transport.connect(hostkey=pinned(server), username=login.username, pkey=login.key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        try:
            yield sftp
        finally:
            sftp.close()
    finally:
        transport.close()


def upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    sftp.putfo(io.BytesIO(data), f"/inbound/{name}.part")
    sftp.rename(f"/inbound/{name}.part", f"/inbound/{name}")


def download(sftp: paramiko.SFTPClient, path: str) -> bytes:
    out = io.BytesIO()
    sftp.getfo(path, out)
    return out.getvalue()


# --- the normal exchange --------------------------------------------------------------------------


def test_upload_rename_download_and_callback(
    world: World, server: PosteSftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="epay.poste.sftp")
    data = os.urandom(700_000)
    with session(server, world.at) as sftp:
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]
        assert sftp.listdir("/inbound") == [] and sftp.listdir("outbound") == []
        assert sftp.normalize(".") == "/"
        sftp.putfo(io.BytesIO(data), f"/inbound/{PART}")
        assert world.received == []  # a .part is not a received file
        sftp.rename(f"/inbound/{PART}", f"/inbound/{FINAL}")
        assert sftp.listdir("/inbound") == [FINAL]
        assert sftp.stat(f"/inbound/{FINAL}").st_size == len(data)
        assert download(sftp, f"/inbound/{FINAL}") == data
    final = world.at.home / "inbound" / FINAL
    assert final.read_bytes() == data
    assert world.received == [(AT_CREDITOR, FINAL, final)]
    fingerprint = load_accounts(world.poste_dir)[AT].authorized_keys[0].fingerprint
    assert f"login user={AT} creditor={AT_CREDITOR} key=ssh-ed25519 {fingerprint}" in caplog.text
    assert f"received creditor={AT_CREDITOR} name={FINAL} bytes={len(data)}" in caplog.text
    assert world.at.public_line.split()[1] not in caplog.text  # fingerprints only, never key material


def test_own_part_files_can_be_overwritten_truncated_and_deleted(
    world: World, server: PosteSftpServer
) -> None:
    with session(server, world.at) as sftp:
        sftp.putfo(io.BytesIO(b"first attempt, longer"), f"/inbound/{PART}")
        sftp.putfo(io.BytesIO(b"second"), f"/inbound/{PART}")
        assert download(sftp, f"/inbound/{PART}") == b"second"
        sftp.truncate(f"/inbound/{PART}", 3)
        sftp.utime(f"/inbound/{PART}", (1_700_000_000, 1_700_000_000))
        assert sftp.stat(f"/inbound/{PART}").st_size == 3
        sftp.remove(f"/inbound/{PART}")
        assert sftp.listdir("/inbound") == []
        with pytest.raises(FileNotFoundError):
            sftp.remove(f"/inbound/{PART}")
    assert world.received == []


# --- inbound is append-only -----------------------------------------------------------------------


def test_received_file_cannot_be_overwritten_renamed_onto_or_removed(
    world: World, server: PosteSftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with session(server, world.at) as sftp:
        upload(sftp, FINAL, b"original")
        sftp.putfo(io.BytesIO(b"replacement"), f"/inbound/{PART}")  # a re-delivery may be uploaded...
        with pytest.raises(PermissionError):  # ...but not renamed onto the received file
            sftp.rename(f"/inbound/{PART}", f"/inbound/{FINAL}")
        with pytest.raises(PermissionError):
            sftp.posix_rename(f"/inbound/{PART}", f"/inbound/{FINAL}")
        for mode in ("w", "a", "r+", "x"):
            with pytest.raises(PermissionError):
                sftp.open(f"/inbound/{FINAL}", mode)
        with pytest.raises(PermissionError):
            sftp.remove(f"/inbound/{FINAL}")
        with pytest.raises(PermissionError):
            sftp.chmod(f"/inbound/{FINAL}", 0o666)
        with pytest.raises(PermissionError):
            sftp.truncate(f"/inbound/{FINAL}", 0)
        with pytest.raises(PermissionError):
            sftp.rename(f"/inbound/{FINAL}", "/inbound/elsewhere.txt")
        with pytest.raises(PermissionError):
            sftp.rename(f"/inbound/{FINAL}", f"/inbound/{PART}")
        assert download(sftp, f"/inbound/{FINAL}") == b"original"
        assert sorted(sftp.listdir("/inbound")) == [FINAL, PART]
    assert (world.at.home / "inbound" / FINAL).read_bytes() == b"original"
    assert len(world.received) == 1
    assert (
        f"op=posix-rename path='/inbound/{PART} -> /inbound/{FINAL}': rename: {FINAL} exists" in caplog.text
    )


def test_upload_under_a_final_or_odd_name_is_refused(world: World, server: PosteSftpServer) -> None:
    with session(server, world.at) as sftp:
        for name in (FINAL, ".hidden.part", "a b.part", "x.part.part", ".part", "dir/x.part", "x.PART"):
            with pytest.raises(PermissionError):
                sftp.putfo(io.BytesIO(b"data"), f"/inbound/{name}")
        with pytest.raises(PermissionError):
            sftp.mkdir("/inbound/sub")
        with pytest.raises(PermissionError):
            sftp.rmdir("/inbound")
        sftp.putfo(io.BytesIO(b"data"), f"/inbound/{PART}")
        with pytest.raises(PermissionError):  # NAME.part becomes NAME, nothing else
            sftp.rename(f"/inbound/{PART}", "/inbound/OTHER_NAME.txt")
        with pytest.raises(PermissionError):
            sftp.rename(f"/inbound/{PART}", f"/outbound/{FINAL}")
        with pytest.raises(PermissionError):
            sftp.chmod(f"/inbound/{PART}", 0o777)
        assert sftp.listdir("/inbound") == [PART]
    assert sorted(os.listdir(world.at.home / "inbound")) == [PART]


def test_rename_waits_for_the_writer_to_close(world: World, server: PosteSftpServer) -> None:
    """Renaming a .part still open for writing would let the writer change a received file."""
    with session(server, world.at) as sftp:
        handle = sftp.open(f"/inbound/{PART}", "w")
        handle.write(b"half")
        with pytest.raises(PermissionError):
            sftp.rename(f"/inbound/{PART}", f"/inbound/{FINAL}")
        handle.write(b" and the rest")
        handle.close()
        sftp.rename(f"/inbound/{PART}", f"/inbound/{FINAL}")
        assert download(sftp, f"/inbound/{FINAL}") == b"half and the rest"


def test_file_size_limit(world: World) -> None:
    with PosteSftpServer(world.poste_dir, max_file_size=100_000) as server, session(server, world.at) as sftp:
        # paramiko drops the status of pipelined writes: only putfo's size check (confirm=True) sees it
        with pytest.raises(OSError, match="size mismatch"):
            sftp.putfo(io.BytesIO(os.urandom(150_000)), f"/inbound/{PART}")
        assert sftp.stat(f"/inbound/{PART}").st_size <= 100_000  # left for the uploader to delete
        with sftp.open(f"/inbound/{PART}", "w") as handle:  # unpipelined, each write waits for its status
            handle.write(os.urandom(60_000))
            with pytest.raises(PermissionError):
                handle.write(os.urandom(60_000))
        with pytest.raises(PermissionError):
            sftp.truncate(f"/inbound/{PART}", 100_001)
        sftp.remove(f"/inbound/{PART}")
        upload(sftp, FINAL, os.urandom(100_000))  # exactly the limit is fine
        assert sftp.stat(f"/inbound/{FINAL}").st_size == 100_000


def test_callback_errors_are_logged_not_sent_to_the_client(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(creditor: str, name: str, path: Path) -> None:
        raise RuntimeError("processing is down")

    with (
        PosteSftpServer(world.poste_dir, on_file_received=broken) as server,
        session(server, world.at) as sftp,
    ):
        upload(sftp, FINAL, b"data")
        assert sftp.listdir("/inbound") == [FINAL]
    assert "on_file_received failed" in caplog.text and "processing is down" in caplog.text


# --- outbound is read-only ------------------------------------------------------------------------


def test_outbound_is_read_only(world: World, server: PosteSftpServer) -> None:
    ack = "ACK_" + FINAL
    content = os.urandom(50_000)
    (world.at.home / "outbound" / ack).write_bytes(content)  # published by the post office
    with session(server, world.at) as sftp:
        assert sftp.listdir("/outbound") == [ack]
        assert download(sftp, f"/outbound/{ack}") == content
        with pytest.raises(PermissionError):
            sftp.putfo(io.BytesIO(b"x"), "/outbound/mine.txt.part")
        for mode in ("w", "a", "r+"):
            with pytest.raises(PermissionError):
                sftp.open(f"/outbound/{ack}", mode)
        with pytest.raises(PermissionError):
            sftp.remove(f"/outbound/{ack}")
        with pytest.raises(PermissionError):
            sftp.rename(f"/outbound/{ack}", f"/outbound/{ack}.seen")
        with pytest.raises(PermissionError):
            sftp.posix_rename(f"/outbound/{ack}", f"/inbound/{ack}")
        with pytest.raises(PermissionError):
            sftp.chmod(f"/outbound/{ack}", 0o600)
        with pytest.raises(PermissionError):
            sftp.mkdir("/outbound/read")
        with pytest.raises(PermissionError):
            sftp.mkdir("/elsewhere")
        assert sftp.listdir("/outbound") == [ack]
    assert (world.at.home / "outbound" / ack).read_bytes() == content


# --- the jail -------------------------------------------------------------------------------------


def test_paths_cannot_escape_the_home(world: World, server: PosteSftpServer) -> None:
    (world.other.home / "inbound" / "secret.txt").write_bytes(b"other creditor")
    escapes = [
        "..",
        "/..",
        "../200001/inbound",
        "/inbound/../../200001/inbound",
        "/inbound/../../../../../../etc",
        "/etc",
        "/etc/passwd",
        str(world.other.home / "inbound"),
        str(world.other.home / "inbound" / "secret.txt"),
        str(world.at.home / "inbound"),  # even its own real path: paths are relative to the home
        "/inbound/sub/deeper",
    ]
    with session(server, world.at) as sftp:
        for path in escapes:
            with pytest.raises(PermissionError):
                sftp.listdir(path)
            with pytest.raises(PermissionError):
                sftp.stat(path)
            with pytest.raises(PermissionError):
                sftp.open(path)
        for path in ("../200001/inbound/secret.txt", "/../200001/inbound/x.part"):
            with pytest.raises(PermissionError):
                sftp.putfo(io.BytesIO(b"x"), path)
        with pytest.raises(OSError):  # REALPATH cannot say "permission denied": it fails
            sftp.normalize("/..")
        assert sftp.normalize("/inbound/../outbound/.") == "/outbound"
        assert sftp.listdir("/inbound/../outbound") == []
        sftp.chdir("inbound")
        assert sftp.listdir() == []
    assert os.listdir(world.other.home / "inbound") == ["secret.txt"]


def test_symlinks_planted_on_disk_are_not_followed(
    world: World, server: PosteSftpServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not for the creditor")
    other_outbound = world.other.home / "outbound"
    (other_outbound / "RETR.txt").write_bytes(b"other creditor's returns")
    inbound, outbound = world.at.home / "inbound", world.at.home / "outbound"
    (outbound / "leak.txt").symlink_to(outside)
    (outbound / "sibling").symlink_to(other_outbound, target_is_directory=True)
    (inbound / "trap.txt.part").symlink_to(outside)
    (inbound / "dangling.txt.part").symlink_to(tmp_path / "created-through-link")
    os.link(outside, inbound / "hard.txt.part")  # not a symlink, but a way out all the same

    with session(server, world.at) as sftp:
        assert sftp.listdir("/outbound") == []  # symbolic links are not listed
        assert sftp.listdir("/inbound") == ["hard.txt.part"]  # a regular file, but not writable
        for path in ("/outbound/leak.txt", "/outbound/sibling", "/outbound/sibling/RETR.txt"):
            with pytest.raises(PermissionError):
                sftp.stat(path)
            with pytest.raises(PermissionError):
                sftp.lstat(path)
            with pytest.raises(PermissionError):
                sftp.open(path)
        with pytest.raises(PermissionError):
            sftp.listdir("/outbound/sibling")
        with pytest.raises(PermissionError):
            sftp.readlink("/outbound/leak.txt")
        for name in ("trap.txt.part", "dangling.txt.part"):
            with pytest.raises(PermissionError):
                sftp.putfo(io.BytesIO(b"overwrite"), f"/inbound/{name}")
            with pytest.raises(PermissionError):
                sftp.rename(f"/inbound/{name}", f"/inbound/{name[:-5]}")
            with pytest.raises(PermissionError):
                sftp.remove(f"/inbound/{name}")
        with pytest.raises(PermissionError):
            sftp.symlink("/outbound", "/inbound/link.part")
        for mode in ("w", "a", "r+"):
            with pytest.raises(PermissionError):
                sftp.open("/inbound/hard.txt.part", mode)
        with pytest.raises(PermissionError):
            sftp.truncate("/inbound/hard.txt.part", 0)
    assert outside.read_bytes() == b"not for the creditor"
    assert not (tmp_path / "created-through-link").exists()
    assert (inbound / "trap.txt.part").is_symlink() and world.received == []

    # a whole folder replaced by a link (to another creditor's) is refused too
    shutil.rmtree(outbound)
    outbound.symlink_to(other_outbound, target_is_directory=True)
    with session(server, world.at) as sftp:
        assert sftp.listdir("/") == ["inbound"]
        with pytest.raises(PermissionError):
            sftp.listdir("/outbound")
        with pytest.raises(PermissionError):
            sftp.open("/outbound/RETR.txt")


def test_hashing_past_the_end_of_a_file_does_not_hang_the_session(
    world: World, server: PosteSftpServer
) -> None:
    """paramiko's server-side "check-file" extension loops forever if a read past the end returns b""."""
    with session(server, world.at) as sftp:
        upload(sftp, FINAL, b"short")
        sftp.get_channel().settimeout(5)
        with sftp.open(f"/inbound/{FINAL}") as handle, pytest.raises((OSError, EOFError)):
            handle.check("sha1", 0, 10_000_000, 0)
        assert download(sftp, f"/inbound/{FINAL}") == b"short"


def test_one_creditor_cannot_see_another(world: World, server: PosteSftpServer) -> None:
    with session(server, world.at) as sftp:
        upload(sftp, FINAL, b"AT's instructions")
    with session(server, world.other) as sftp:
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]
        assert sftp.listdir("/inbound") == []
        with pytest.raises(FileNotFoundError):
            sftp.open(f"/inbound/{FINAL}")
        for path in (f"/../{AT_CREDITOR}/inbound/{FINAL}", str(world.at.home / "inbound" / FINAL)):
            with pytest.raises(PermissionError):
                sftp.open(path)
        upload(sftp, "MINE.txt", b"other's")
    assert world.received == [
        (AT_CREDITOR, FINAL, world.at.home / "inbound" / FINAL),
        (OTHER_CREDITOR, "MINE.txt", world.other.home / "inbound" / "MINE.txt"),
    ]


# --- authentication -------------------------------------------------------------------------------


def assert_login_refused(server: PosteSftpServer, username: str, key: paramiko.PKey) -> None:
    transport = open_transport(server)
    try:
        with pytest.raises(paramiko.AuthenticationException):
            transport.connect(hostkey=pinned(server), username=username, pkey=key)
    finally:
        transport.close()


def test_only_listed_keys_log_in(
    world: World, server: PosteSftpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger, _ = new_key(tmp_path, "stranger")
    assert_login_refused(server, AT, stranger)
    assert_login_refused(server, AT, world.other.key)  # another account's key
    assert_login_refused(server, "nobody", world.at.key)  # unknown username
    assert_login_refused(server, OTHER, world.at.key)
    assert "not authorized for this account" in caplog.text and "unknown username" in caplog.text


def test_password_and_keyboard_interactive_are_refused(world: World, server: PosteSftpServer) -> None:
    transport = open_transport(server)
    try:
        transport.start_client(timeout=5)
        assert transport.get_remote_server_key() == pinned(server)
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            transport.auth_password(AT, "any password")
        assert refused.value.allowed_types == ["publickey"]
        with pytest.raises(paramiko.BadAuthenticationType):
            transport.auth_interactive_dumb(AT)
        assert not transport.is_authenticated()
    finally:
        transport.close()


def test_a_wrong_host_key_is_detected_by_the_client(
    world: World, server: PosteSftpServer, tmp_path: Path
) -> None:
    impostor, _ = new_key(tmp_path, "impostor")
    transport = open_transport(server)
    try:
        with pytest.raises(paramiko.SSHException, match="Bad host key"):
            transport.connect(hostkey=impostor, username=AT, pkey=world.at.key)
    finally:
        transport.close()


def test_accounts_added_while_running_can_log_in(
    world: World, server: PosteSftpServer, tmp_path: Path
) -> None:
    key, line = new_key(tmp_path, "newcomer")
    assert_login_refused(server, "at300003", key)
    account = add_account(world.poste_dir, "at300003", "300003", line)
    with session(server, Login("at300003", "300003", key, line, account.home)) as sftp:
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]


# --- host key, accounts file, lifecycle -----------------------------------------------------------


def test_host_key_persists_across_restarts(world: World) -> None:
    with PosteSftpServer(world.poste_dir) as first:
        line = first.host_key_line
        with session(first, world.at) as sftp:
            sftp.listdir("/")
    key_file = world.poste_dir / "host_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert line.startswith("ssh-ed25519 AAAA") and len(line.split()) == 2
    with PosteSftpServer(world.poste_dir) as second:
        assert second.host_key_line == line
        assert second.host_key.fingerprint == load_or_create_host_key(key_file).fingerprint
        with session(second, world.at) as sftp:  # pinned key of the first run still matches
            sftp.listdir("/")
    assert host_key_line(load_or_create_host_key(key_file)) == line


def test_host_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "host_key"
    load_or_create_host_key(key_file)
    key_file.chmod(0o644)
    with pytest.raises(HostKeyError, match="too open"):
        load_or_create_host_key(key_file)


def test_add_account_and_load_accounts(tmp_path: Path) -> None:
    poste_dir = tmp_path / "poste"
    key1, line1 = new_key(tmp_path, "k1")
    _, line2 = new_key(tmp_path, "k2")
    ecdsa = paramiko.ECDSAKey.generate()
    assert load_accounts(poste_dir) == {}
    add_account(poste_dir, "at100237", "100237", line1)
    add_account(poste_dir, "at100237", "100237", line1)  # already listed: no-op
    add_account(poste_dir, "at100237", "100237", line2)
    add_account(poste_dir, "ops_2", "100237", f'{ecdsa.get_name()} {ecdsa.get_base64()} ops "quoted"')
    accounts = load_accounts(poste_dir)
    assert sorted(accounts) == ["at100237", "ops_2"]
    account = accounts["at100237"]
    assert account.creditor == "100237" and account.home == poste_dir / "sftp" / "100237"
    assert [k.line for k in account.authorized_keys] == [line1, line2]
    assert account.key_for(key1) is not None and account.inbound.is_dir() and account.outbound.is_dir()
    assert accounts["ops_2"].authorized_keys[0].comment == 'ops "quoted"'
    with pytest.raises(AccountError, match="belongs to creditor 100237"):
        add_account(poste_dir, "at100237", "999999", line1)
    for username, creditor, line in [
        ("AT100237", "100237", line1),
        ("at", "10023", line1),
        ("at", "١٠٠٢٣٧", line1),  # Arabic-Indic digits are digits to \d, not to the spec
        ("at", "100237", "ssh-ed25519 not-base64!"),
        ("at", "100237", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
        ("at", "100237", "ssh-ed25519-cert-v01@openssh.com AAAA"),
        ("at", "100237", line1.split()[1]),
        ("at", "100237", "ssh-ed25519 " + base64.b64encode(b"garbage").decode()),
    ]:
        with pytest.raises(AccountError):
            add_account(poste_dir, username, creditor, line)


def test_invalid_accounts_files_name_the_file_and_entry(tmp_path: Path) -> None:
    _, line = new_key(tmp_path, "k")
    path = tmp_path / "sftp_accounts.toml"
    cases = {
        f'[[account]]\nusername = "at1"\ncreditor = "12345"\nauthorized_keys = ["{line}"]\n': "creditor",
        f'[[account]]\nusername = "At1"\ncreditor = "123456"\nauthorized_keys = ["{line}"]\n': "username",
        '[[account]]\nusername = "at1"\ncreditor = "123456"\nauthorized_keys = ["ssh-rsa AAAA"]\n': "ssh-rsa",
        '[[account]]\nusername = "at1"\ncreditor = "123456"\nauthorized_keys = []\n': "non-empty",
        f'[[account]]\nusername = "at1"\ncreditor = "123456"\nauthorised_keys = ["{line}"]\n': "unknown",
        f'[[account]]\nusername = "at1"\ncreditor = "123456"\nauthorized_keys = ["{line}"]\n' * 2: "twice",
        "[account]\n": "array of tables",
        "account = [": "not valid TOML",
    }
    for text, reason in cases.items():
        path.write_text(text)
        with pytest.raises(AccountError, match=reason) as error:
            load_accounts(tmp_path)
        assert str(path) in str(error.value)
        if "at1" in text and reason != "not valid TOML":
            assert "account #" in str(error.value)
    with pytest.raises(AccountError, match="RSA key of 1024 bits"):
        rsa = paramiko.RSAKey.generate(1024)
        parse_public_key_line(f"ssh-rsa {rsa.get_base64()}")


def test_fixed_accounts_replace_the_accounts_file(world: World) -> None:
    only_other = {OTHER: load_accounts(world.poste_dir)[OTHER]}
    with PosteSftpServer(world.poste_dir, accounts=only_other) as server:
        assert_login_refused(server, AT, world.at.key)
        with session(server, world.other) as sftp:
            assert sftp.listdir("/inbound") == []


def test_serve_forever_stops_on_sigterm(world: World) -> None:
    server = PosteSftpServer(world.poste_dir)
    before = signal.getsignal(signal.SIGTERM)
    listed: list[list[str]] = []

    def client() -> None:
        deadline = time.monotonic() + 5
        while server.port == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with session(server, world.at) as sftp:
            listed.append(sorted(sftp.listdir("/")))
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client)
    thread.start()
    server.serve_forever()  # returns on SIGTERM
    thread.join(5)
    assert listed == [["inbound", "outbound"]]
    assert signal.getsignal(signal.SIGTERM) == before
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_stop_closes_open_sessions_promptly(world: World) -> None:
    server = PosteSftpServer(world.poste_dir)
    server.start()
    with session(server, world.at) as sftp:
        handle = sftp.open(f"/inbound/{PART}", "w")
        handle.write(b"interrupted")
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 3
        with pytest.raises((OSError, EOFError, paramiko.SSHException)):
            sftp.listdir("/")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


# --- the real OpenSSH client ----------------------------------------------------------------------


def openssh_sftp(
    server: PosteSftpServer, tmp_path: Path, key: Path, known_hosts: Path, commands: str
) -> subprocess.CompletedProcess[str]:
    sftp = shutil.which("sftp")
    if sftp is None:
        pytest.fail("the OpenSSH client 'sftp' is not installed (apt-get install openssh-client)")
    batch = tmp_path / "batch.txt"
    batch.write_text(commands)
    options = {
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "BatchMode": "yes",
        "IdentitiesOnly": "yes",
        "ConnectTimeout": "10",
    }
    args = [sftp, "-F", "/dev/null", "-b", str(batch), "-i", str(key), "-P", str(server.port)]
    for name, value in options.items():
        args += ["-o", f"{name}={value}"]
    args.append(f"{AT}@127.0.0.1")
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def ssh_keygen(path: Path) -> str:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.fail("ssh-keygen is not installed (apt-get install openssh-client)")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "at@test", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def test_real_openssh_client(world: World, server: PosteSftpServer, tmp_path: Path) -> None:
    key = tmp_path / "id_openssh"
    add_account(world.poste_dir, AT, AT_CREDITOR, ssh_keygen(key))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    data = os.urandom(1_500_000)
    (tmp_path / "local.txt").write_bytes(data)
    (world.at.home / "outbound" / f"ACK_{FINAL}").write_bytes(b"ack")
    result = openssh_sftp(
        server,
        tmp_path,
        key,
        known_hosts,
        f"ls /\ncd /inbound\nput local.txt {PART}\nrename {PART} {FINAL}\nls\n"
        f"get {FINAL} back.txt\nget /outbound/ACK_{FINAL} ack.txt\n"
        f"put local.txt {PART}\n-rename {PART} {FINAL}\n-rm {FINAL}\n-put local.txt /outbound/x.part\n",
    )
    assert result.returncode == 0, result.stderr
    assert "inbound" in result.stdout and "outbound" in result.stdout and FINAL in result.stdout
    assert (tmp_path / "back.txt").read_bytes() == data
    assert (tmp_path / "ack.txt").read_bytes() == b"ack"
    assert result.stderr.count("Permission denied") == 3, result.stderr
    assert world.received == [(AT_CREDITOR, FINAL, world.at.home / "inbound" / FINAL)]


def test_real_openssh_client_refuses_an_unknown_host_key(
    world: World, server: PosteSftpServer, tmp_path: Path
) -> None:
    key = tmp_path / "id_openssh"
    add_account(world.poste_dir, AT, AT_CREDITOR, ssh_keygen(key))
    other_host = load_or_create_host_key(tmp_path / "other_host_key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {host_key_line(other_host)}\n")
    result = openssh_sftp(server, tmp_path, key, known_hosts, "ls /\n")
    assert result.returncode != 0
    assert "Host key verification failed" in result.stderr, result.stderr
    assert "inbound" not in result.stdout
