"""Network faults between the operator's SFTP client and the simulated post office (issue #6, part 3).

The real ``SftpClient`` talks to the real ``PosteSftpServer`` through ``tests.faultproxy.FaultProxy``,
which cuts, stalls or refuses connections on demand. The server acknowledges each PRLV file as it
arrives, as in production (``on_file_received`` → ``PostOffice.acknowledge``), so that "the file arrived
exactly once, and a partial file was never processed" is checked on the post office's side too. The
client's backoff ``sleep`` is a recorder (no real waiting) that can also look at the world between two
attempts; timeouts are short (1 s), and every operation that could hang runs under a watchdog, so a
hang fails the test instead of blocking the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import paramiko
import pytest
from sqlalchemy import Engine, select, text

from epay import jobs
from epay.calendar import BusinessCalendar, load_calendar
from epay.poste.office import PostOffice
from epay.poste.scenario import load_scenario
from epay.poste.sftp_accounts import SftpAccount, add_account
from epay.poste.sftp_server import PosteSftpServer
from epay.poste.state import ReceivedFile
from epay.sample.install import install_sample
from epay.settings import ALGIERS, Settings
from epay.transport import ConnectionFailedError, SftpClient, SftpEndpoint, TransportError
from tests.faultproxy import Fault, FaultProxy
from tests.poste_helpers import WED, Debit, World, at
from tests.test_transport_sftp import CREDITOR, USERNAME, write_key

TIMEOUT = 1.0  # the client's connect and I/O timeouts in these tests
BACKOFF = 0.25
WATCHDOG = 20.0  # an operation still running after this long is a hang


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Net:
    """The post office, its SFTP server (acknowledging each PRLV on arrival) and a fault proxy before it."""

    tmp: Path
    world: World
    account: SftpAccount
    key_file: Path
    server: PosteSftpServer
    proxy: FaultProxy
    lock: threading.Lock
    received: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def endpoint(self, **changes: Any) -> SftpEndpoint:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.proxy.port,
            "username": USERNAME,
            "private_key_file": self.key_file,
            "host_key": self.server.host_key_line,
            "connect_timeout": TIMEOUT,
            "io_timeout": TIMEOUT,
        }
        return SftpEndpoint(**(values | changes))

    def client(
        self, retries: int = 2, between: Callable[[], None] | None = None, io_timeout: float = TIMEOUT
    ) -> SftpClient:
        """A client through the proxy; ``between`` runs where the client would wait before a retry."""

        def sleep(delay: float) -> None:
            self.sleeps.append(delay)
            if between is not None:
                between()

        endpoint = self.endpoint(io_timeout=io_timeout)
        return SftpClient(endpoint, retries=retries, backoff=BACKOFF, sleep=sleep)

    def inbound(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.account.inbound.iterdir())}

    def acks(self) -> list[str]:
        return [p.name for p in self.world.published("ACK")]

    def acknowledge_pending(self) -> list[str]:
        """What a post office sweep of every inbound/ acknowledges now (it must skip ``.part`` files)."""
        with self.lock:
            return self.world.office.acknowledge_pending(not_after=at(WED, 20, 5))

    def local(self, name: str, data: bytes) -> Path:
        folder = self.tmp / "out"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        return path

    def prlv(self, rows: int) -> Path:
        """A valid PRLV file of ``rows`` instructions (160 bytes each), written by the real writer."""
        folder = self.tmp / "out"
        folder.mkdir(exist_ok=True)
        debits = [Debit(100_000 + i, 1000 + i, f"E2E{i:013d}", f"APM{i:010d}") for i in range(rows)]
        return self.world.prlv(debits, folder=folder)

    def wait_sessions_closed(self) -> None:
        """Until the server has ended every session (and closed their files)."""
        wait_for(lambda: not self.server._sessions)


@pytest.fixture
def net(tmp_path: Path, calendar: BusinessCalendar) -> Iterator[Net]:
    world = World(tmp_path, calendar)
    key_file = tmp_path / "at_key"
    account = add_account(world.office.poste_dir, USERNAME, CREDITOR, write_key(key_file))
    received: list[str] = []
    lock = threading.Lock()

    def on_file_received(creditor: str, name: str, path: Path) -> None:
        received.append(name)
        with lock:
            world.office.acknowledge(creditor, path, at(WED, 20, 5))

    with (
        PosteSftpServer(world.office.poste_dir, on_file_received=on_file_received) as server,
        FaultProxy(server.port) as proxy,
    ):
        yield Net(tmp_path, world, account, key_file, server, proxy, lock, received)


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not true after {seconds:g} s"
        time.sleep(0.01)


def bounded(action: Callable[[], Any], seconds: float = WATCHDOG) -> Any:
    """``action()`` in a thread: its result or exception, or a test failure if it is still running."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", action()))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds:g} s: the client hangs instead of timing out")
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


# --- the proxy itself ------------------------------------------------------------------------------------


class Sink:
    """A TCP server on 127.0.0.1 that answers each connection's bytes with the same bytes, and keeps what
    each connection sent it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.got: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            got = bytearray()
            with conn:
                try:
                    while data := conn.recv(65536):
                        got += data
                        conn.sendall(data)
                except OSError:
                    pass
            self.got.append(bytes(got))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


def test_the_proxy_cuts_stalls_and_refuses_as_told() -> None:
    sink = Sink()
    try:
        with FaultProxy(sink.port) as proxy:
            proxy.queue(Fault(cut_up_after=5), Fault(stall_down_after=3, stall_for=0.3), Fault(refuse=True))
            with socket.create_connection(proxy.address, timeout=5) as sock:
                sock.sendall(b"0123456789")
                with contextlib.suppress(ConnectionResetError):  # unread bytes: a reset, else EOF
                    while sock.recv(100):
                        pass
            with socket.create_connection(proxy.address, timeout=5) as sock:
                started = time.monotonic()
                sock.sendall(b"abcdef")
                assert read_exactly(sock, 6) == b"abcdef"
                assert time.monotonic() - started >= 0.3  # held back, then forwarded
            with socket.create_connection(proxy.address, timeout=5) as sock:
                assert sock.recv(1) == b""  # accepted, then closed at once
            proxy.down()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(proxy.address, timeout=5)
            proxy.up()
            proxy.default = Fault(stall_up_after=0)  # for ever: ended by stop()
            stalled = socket.create_connection(proxy.address, timeout=5)
            stalled.sendall(b"lost")
            wait_for(lambda: proxy.connections[-1].stalled == "up")
            records = proxy.connections
        stalled.close()
        assert [(r.cut, r.stalled, r.up) for r in records] == [
            ("up", None, 5),
            (None, "down", 6),
            ("refused", None, 0),
            (None, "up", 0),
        ]
        assert records[1].down == 6
        assert not [t for t in threading.enumerate() if t.name.startswith("faultproxy:")]
    finally:
        sink.close()
    assert sink.got[:2] == [b"01234", b"abcdef"]  # exactly N bytes got through before the cut


# --- cuts ------------------------------------------------------------------------------------------------


def test_a_cut_mid_upload_is_retried_and_the_file_arrives_complete_exactly_once(net: Net) -> None:
    path = net.prlv(20_000)
    data = path.read_bytes()
    assert len(data) > 3_000_000
    net.proxy.queue(Fault(cut_up_after=len(data) // 2))
    seen: list[tuple[dict[str, int], list[str], list[str]]] = []

    def between() -> None:  # after the cut, before the retry: the half-written .part is on the server
        net.wait_sessions_closed()  # the server has written what reached it
        sizes = {p.name: p.stat().st_size for p in net.account.inbound.iterdir()}
        seen.append((sizes, net.acknowledge_pending(), net.acks()))

    with net.client(between=between) as client:
        result = bounded(lambda: client.upload(path))

    [(sizes, swept, acks_then)] = seen
    assert list(sizes) == [f"{path.name}.part"] and 0 < sizes[f"{path.name}.part"] < len(data)
    assert swept == [] and acks_then == []  # a partial file is never acknowledged, even by a sweep
    first, second = net.proxy.connections
    assert first.cut == "up" and first.up == len(data) // 2
    assert second.cut is None and second.up > len(data)  # the retry sent the whole file again
    assert net.sleeps == [BACKOFF]
    assert (result.name, result.size, result.sha256, result.already_there) == (
        path.name,
        len(data),
        sha256(data),
        False,
    )
    assert net.inbound() == {path.name: data}  # byte-identical, no .part left
    assert net.received == [path.name]
    assert net.acks() == [f"ACK_{path.name}"]
    ack = net.world.ack_record(f"ACK_{path.name}")
    assert (ack["status"], ack["detail_count"]) == ("ACCP", 20_000)
    assert net.acknowledge_pending() == []  # nothing left to acknowledge: exactly once


def test_a_run_that_gives_up_mid_upload_leaves_a_part_the_post_office_never_processes(net: Net) -> None:
    path = net.prlv(20_000)
    data = path.read_bytes()
    net.proxy.queue(Fault(cut_up_after=1_000_000))
    with pytest.raises(ConnectionFailedError, match="after 1 attempt;"):
        bounded(lambda: net.client(retries=0).upload(path))
    net.wait_sessions_closed()
    leftover = net.inbound()
    assert list(leftover) == [f"{path.name}.part"] and 0 < len(leftover[f"{path.name}.part"]) < len(data)
    assert net.acknowledge_pending() == [] and net.acks() == [] and net.received == []
    with net.world.office.sessions() as session:
        assert session.scalars(select(ReceivedFile)).all() == []

    with net.client() as client:  # the next run
        result = bounded(lambda: client.upload(path))
    assert not result.already_there and result.sha256 == sha256(data)
    assert net.inbound() == {path.name: data}
    assert net.received == [path.name] and net.acks() == [f"ACK_{path.name}"]
    assert net.acknowledge_pending() == []


def test_a_cut_mid_download_is_retried_and_nothing_on_the_server_changes(net: Net) -> None:
    name, other = "RETR_100237_20261126_01.txt", "RELV_100237_20261126_01.txt"
    data = os.urandom(3_000_000)
    (net.account.outbound / name).write_bytes(data)
    (net.account.outbound / other).write_bytes(b"statement\n")

    def server_state() -> dict[str, tuple[str, int, int]]:
        return {
            f"{p.parent.name}/{p.name}": (sha256(p.read_bytes()), p.stat().st_mtime_ns, p.stat().st_ino)
            for folder in (net.account.outbound, net.account.inbound)
            for p in sorted(folder.iterdir())
        }

    before = server_state()
    local_dir = net.tmp / "in"
    local_during: list[list[str]] = []
    net.proxy.queue(Fault(cut_down_after=1_500_000))
    with net.client(between=lambda: local_during.append(sorted(os.listdir(local_dir)))) as client:
        result = bounded(lambda: client.download(name, local_dir))

    assert local_during == [[]]  # after the cut: no partial file, not even a temporary one
    assert net.proxy.connections[0].cut == "down" and net.sleeps == [BACKOFF]
    assert (result.path, result.size, result.sha256) == (local_dir / name, len(data), sha256(data))
    assert sha256(result.path.read_bytes()) == sha256((net.account.outbound / name).read_bytes())
    assert sorted(os.listdir(local_dir)) == [name]
    assert server_state() == before  # nothing on the server changed, nothing deleted


# --- stalls ----------------------------------------------------------------------------------------------


def test_a_stall_mid_download_times_out_and_the_retry_finishes(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="epay.transport.sftp")
    name = "RETR_100237_20261126_01.txt"
    data = os.urandom(3_000_000)
    (net.account.outbound / name).write_bytes(data)
    net.proxy.queue(Fault(stall_down_after=1_000_000))  # for ever: only the client's timeout ends it
    started = time.monotonic()
    with net.client() as client:
        result = bounded(lambda: client.download(name, net.tmp / "in"))
    elapsed = time.monotonic() - started
    assert TIMEOUT <= elapsed < TIMEOUT + 5
    assert net.proxy.connections[0].stalled == "down" and net.sleeps == [BACKOFF]
    warnings = [r.getMessage() for r in caplog.records if "attempt 1 of 3" in r.getMessage()]
    assert len(warnings) == 1 and "TimeoutError" in warnings[0]
    assert result.sha256 == sha256(data) and result.path.read_bytes() == data
    assert (net.account.outbound / name).read_bytes() == data


def setup_bytes(net: Net) -> tuple[int, int]:
    """Server→client bytes of a connection setup: through the key exchange (the login's answers come
    next), and in all (the last byte ends the SFTP version reply). Measured on healthy connections."""
    with socket.create_connection(net.proxy.address) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=5)
            kex = -1
            while kex != net.proxy.connections[-1].down:  # the server's extension info may follow
                kex = net.proxy.connections[-1].down
                time.sleep(0.2)
        finally:
            transport.close()
    with net.client():
        total = net.proxy.connections[-1].down
    assert 0 < kex < total
    return kex, total


@pytest.mark.parametrize(
    ("kind", "stage", "reported"),
    [
        ("stall", "banner", "Error reading SSH protocol banner|TimeoutError: no SSH handshake within 1 s"),
        ("stall", "login", "TimeoutError: no answer to the login within 1 s"),
        ("stall", "sftp", "TimeoutError: the SFTP session was not opened within 1 s"),
        ("cut", "login", "ConnectionError: connection lost while logging in"),
        ("cut", "sftp", ""),
    ],
)
def test_a_fault_while_connecting_is_retried(
    net: Net, caplog: pytest.LogCaptureFixture, kind: str, stage: str, reported: str
) -> None:
    """The server's banner, its login answer or its SFTP version reply never comes (stall), or the
    connection drops there (cut): a connection fault, retried within the connect timeout, never an
    authentication error and never a hang."""
    caplog.set_level(logging.WARNING, logger="epay.transport.sftp")
    kex, total = setup_bytes(net)
    # a cut lands inside the answer awaited (the client is waiting for it), a stall right before it
    inside = 0 if kind == "stall" else 8
    at_byte = {"banner": 0, "login": kex + inside, "sftp": total - 1}[stage]
    fault = Fault(stall_down_after=at_byte) if kind == "stall" else Fault(cut_down_after=at_byte)
    net.proxy.queue(fault)
    (net.account.outbound / "RETR_100237_20261126_01.txt").write_bytes(b"r\n")
    started = time.monotonic()
    client = net.client()
    files = bounded(client.list_files)
    elapsed = time.monotonic() - started
    client.close()
    assert [f.name for f in files] == ["RETR_100237_20261126_01.txt"]
    faulted = net.proxy.connections[2]
    assert (faulted.stalled if kind == "stall" else faulted.cut) == "down"
    assert faulted.down == at_byte
    assert net.sleeps == [BACKOFF]
    [warning] = [r.getMessage() for r in caplog.records if "attempt 1 of 3" in r.getMessage()]
    assert re.search(reported, warning) and "refused" not in warning
    assert elapsed < TIMEOUT + 5
    if kind == "stall":
        assert elapsed >= TIMEOUT * 0.9


def test_an_upload_into_a_stalled_connection_times_out_and_fails_clearly(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    """The link stops carrying data mid-upload and the server never learns it: the client gives up the
    connection after its I/O timeout (it used to wait for ever once the socket buffers were full), and
    retries. The server still holds the dead session's ``.part`` open, so it refuses the retry's rename:
    a clear failure, nothing delivered, nothing acknowledged. Once that session is gone, the next run
    delivers the file exactly once."""
    caplog.set_level(logging.WARNING, logger="epay.transport.sftp")
    path = net.prlv(150_000)  # 24 MB: more than the socket buffers can swallow
    data = path.read_bytes()
    net.proxy.queue(Fault(stall_up_after=2_000_000))  # for ever
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        bounded(lambda: net.client().upload(path))
    elapsed = time.monotonic() - started

    assert not isinstance(caught.value, ConnectionFailedError)
    assert f"refused to rename /inbound/{path.name}.part to {path.name}" in str(caught.value)
    assert "not delivered" in str(caught.value)
    stalled = [r.getMessage() for r in caplog.records if "attempt 1 of 3" in r.getMessage()]
    assert len(stalled) == 1 and "accepted no data for 1 s" in stalled[0]
    assert elapsed < TIMEOUT + 10
    assert net.proxy.connections[0].stalled == "up" and net.sleeps == [BACKOFF]
    assert f"{path.name}.part" in net.inbound() and path.name not in net.inbound()
    assert net.received == [] and net.acks() == [] and net.acknowledge_pending() == []

    net.proxy.cut_all()  # the server finally sees the dead connection end
    net.wait_sessions_closed()
    # acknowledging 150,000 instructions holds the rename's reply for more than 1 s: a longer timeout
    with net.client(io_timeout=30) as client:
        result = bounded(lambda: client.upload(path))
    assert not result.already_there and result.sha256 == sha256(data)
    assert net.inbound() == {path.name: data}
    assert net.received == [path.name] and net.acks() == [f"ACK_{path.name}"]


def test_the_server_ends_a_silent_session_and_frees_its_part(
    tmp_path: Path, calendar: BusinessCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    """As sshd's ClientAlive settings do: a session whose link went dead mid-upload is ended by the server
    after its idle timeout, closing the half-written ``.part`` — the next run delivers the file, nobody
    has to restart the server or cut anything by hand."""
    world = World(tmp_path, calendar)
    key_file = tmp_path / "at_key"
    account = add_account(world.office.poste_dir, USERNAME, CREDITOR, write_key(key_file))
    received: list[str] = []
    with (
        PosteSftpServer(
            world.office.poste_dir, on_file_received=lambda c, n, p: received.append(n), idle_timeout=2.0
        ) as server,
        FaultProxy(server.port) as proxy,
    ):
        net = Net(tmp_path, world, account, key_file, server, proxy, threading.Lock(), received)
        path = net.prlv(150_000)  # 24 MB: more than the socket buffers can swallow
        proxy.queue(Fault(stall_up_after=2_000_000))  # for ever: the server never hears of it
        caplog.set_level(logging.WARNING, logger="epay.poste.sftp")
        with pytest.raises(TransportError):
            bounded(lambda: net.client(retries=0).upload(path))
        assert f"{path.name}.part" in net.inbound() and received == []
        net.wait_sessions_closed()  # within the idle timeout, without any cut
        assert any("silent for 2 s: ended" in r.getMessage() for r in caplog.records)
        with net.client(io_timeout=30) as client:
            result = bounded(lambda: client.upload(path))
        assert result.sha256 == sha256(path.read_bytes()) and received == [path.name]
        assert net.inbound() == {path.name: path.read_bytes()}


# --- refused ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["not listening", "accept and close"])
def test_refused_on_every_attempt_fails_clearly(net: Net, how: str) -> None:
    if how == "not listening":
        net.proxy.down()
    else:
        net.proxy.default = Fault(refuse=True)
    path = net.local("PRLV_100237_20261125_01.txt", b"data\n")
    client = net.client(retries=2)
    with pytest.raises(ConnectionFailedError) as caught:
        bounded(lambda: client.upload(path))
    message = str(caught.value)
    assert caught.value.attempts == 3
    assert f"upload {path.name} on {USERNAME}@127.0.0.1:{net.proxy.port}: failed after 3 attempts" in message
    assert net.sleeps == [BACKOFF, 2 * BACKOFF]
    if how == "not listening":
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        assert net.proxy.connections == []
    else:
        assert [c.cut for c in net.proxy.connections] == ["refused"] * 3
    key_text = net.key_file.read_text()
    assert all(line not in message for line in key_text.splitlines()[1:-1])  # no key material
    assert str(net.key_file) not in message
    assert net.inbound() == {} and net.received == []


# --- the nightly job -------------------------------------------------------------------------------------

START = date(2026, 11, 25)  # a Wednesday


def ledger_rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql)).all()]


def test_the_post_office_down_for_a_whole_run_then_the_next_run_sends_each_file_once(
    ledger_engine: Engine, ledger_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calendar = load_calendar()
    install_sample(ledger_settings, 60, 11, START, calendar)
    office = PostOffice(
        ledger_settings.poste_dir,
        ledger_settings.poste_url,
        calendar=calendar,
        scenario=load_scenario(ledger_settings.poste_scenario_file),
    )
    lock = threading.Lock()
    received: list[str] = []
    arrival = datetime(2026, 11, 25, 20, 5, tzinfo=ALGIERS)

    def on_file_received(creditor: str, name: str, path: Path) -> None:
        received.append(name)
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, arrival)

    sleeps: list[float] = []  # the job's own client (default retries and backoff), without real waiting
    monkeypatch.setattr(
        jobs, "sftp_client", lambda s: SftpClient(SftpEndpoint.from_settings(s), sleep=sleeps.append)
    )
    with (
        PosteSftpServer(ledger_settings.poste_dir, on_file_received=on_file_received) as server,
        FaultProxy(server.port) as proxy,
    ):
        settings = ledger_settings.model_copy(
            update={
                "sftp_port": proxy.port,
                "sftp_host_key": server.host_key_line,
                "sftp_private_key_file": ledger_settings.home / "keys" / "at_sftp_ecdsa",
            }
        )
        jobs.build(settings, START)
        files = ledger_rows(ledger_engine, "SELECT name, state FROM exchange_file WHERE kind = 'PRLV'")
        names = sorted(name for name, _ in files)
        assert names and {state for _, state in files} == {"built"}

        proxy.down()  # the post office's SFTP endpoint is unreachable for the whole run
        with pytest.raises(ConnectionFailedError) as caught:
            bounded(lambda: jobs.send(settings, START), 60)
        message = str(caught.value)
        assert f"at100237@127.0.0.1:{proxy.port}" in message and "failed after 4 attempts" in message
        assert sleeps == [1.0, 2.0, 4.0]
        assert ledger_rows(ledger_engine, "SELECT DISTINCT state FROM exchange_file WHERE kind = 'PRLV'") == [
            ("built",)
        ]
        assert ledger_rows(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("built",)]
        sent_events = "SELECT count(*) FROM audit_event WHERE to_state = 'sent'"
        assert ledger_rows(ledger_engine, sent_events) == [(0,)]
        assert jobs.unacknowledged(settings, START) == []
        assert received == [] and list((office.home(CREDITOR) / "inbound").iterdir()) == []

        proxy.up()  # the next run
        sent = jobs.send(settings, START)
        assert [(s["name"], s["already_there"]) for s in sent] == [(n, False) for n in names]
        applied = jobs.receive(settings, START)
        assert len(applied) == len(names)
        assert jobs.send(settings, START) == [] and jobs.receive(settings, START) == []  # nothing twice

    assert received == names  # each file arrived once
    assert sorted(p.name for p in (office.home(CREDITOR) / "outbound").glob("ACK_*")) == [
        f"ACK_{n}" for n in names
    ]  # and was acknowledged once
    assert ledger_rows(ledger_engine, "SELECT DISTINCT state FROM exchange_file WHERE kind = 'PRLV'") == [
        ("accepted",)
    ]
    acks = ledger_rows(ledger_engine, "SELECT name FROM exchange_file WHERE kind = 'ACK' ORDER BY name")
    assert acks == [(f"ACK_{n}",) for n in names]
    assert ledger_rows(ledger_engine, "SELECT DISTINCT state FROM instruction") == [("presented",)]
