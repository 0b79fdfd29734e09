"""A fault-injecting TCP proxy for tests: 127.0.0.1:<port> forwarded to a target, with faults on demand.

Each accepted connection gets a :class:`Fault`: the next one queued with :meth:`FaultProxy.queue`, else
the proxy's ``default`` (healthy unless set). A fault can

- **cut** the connection after exactly N bytes forwarded client→server (``cut_up_after``, mid-upload)
  or server→client (``cut_down_after``, mid-download): both sockets are closed;
- **stall** a direction after N bytes (``stall_up_after`` / ``stall_down_after``): nothing more is read
  or forwarded that way for ``stall_for`` seconds, or (``None``) until :meth:`FaultProxy.release`,
  :meth:`FaultProxy.cut_all` or ``stop()``. Like a black-holed link, neither end learns meanwhile that
  the other one went away;
- **refuse**: accept and close at once, before any byte.

:meth:`FaultProxy.down` closes the listening socket (a connect is then refused by the kernel),
:meth:`FaultProxy.up` listens again on the same port. Every connection is recorded
(:attr:`FaultProxy.connections`). Thread-safe; ``with FaultProxy(...)`` starts and stops it, and
``stop()`` closes every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 64 * 1024
JOIN_SECONDS = 5.0
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one connection; byte counts are bytes forwarded in that direction."""

    cut_up_after: int | None = None
    cut_down_after: int | None = None
    stall_up_after: int | None = None
    stall_down_after: int | None = None
    stall_for: float | None = None  # seconds; None: until released or the proxy stops
    refuse: bool = False


HEALTHY = Fault()


@dataclass
class Record:
    """What happened to one accepted connection (updated live; read it through ``connections``)."""

    number: int
    fault: Fault
    up: int = 0  # bytes forwarded client→server
    down: int = 0  # bytes forwarded server→client
    cut: str | None = None  # "up", "down" or "refused"
    stalled: str | None = None  # "up" or "down" once a stall has begun
    closed: bool = False


@dataclass
class _Link:
    """One proxied connection: the two sockets, its record and the threads pumping it."""

    client: socket.socket
    server: socket.socket
    record: Record
    closed: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    pumping: int = 2  # pumps still running; the last one out closes the sockets


class FaultProxy:
    """A TCP proxy from 127.0.0.1 (an ephemeral port, ``port``) to ``target_host:target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", default: Fault = HEALTHY) -> None:
        self.target = (target_host, target_port)
        self.default = default
        self.port = 0
        self._lock = threading.Lock()
        self._queued: list[Fault] = []
        self._links: list[_Link] = []
        self._records: list[Record] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self.up()
        return self

    def stop(self) -> None:
        """Stop listening, close every connection, join every thread."""
        self.down()
        with self._lock:
            links = list(self._links)
        for link in links:
            self._close(link)
        for link in links:
            for thread in link.threads:
                thread.join(JOIN_SECONDS)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def up(self) -> None:
        """Listen (again, on the same port once one was chosen) and accept connections."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(16)
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._acceptor = threading.Thread(
                target=self._accept_loop, args=(listener,), name=f"faultproxy:{self.port}", daemon=True
            )
            self._acceptor.start()

    def down(self) -> None:
        """Stop listening: new connections are refused by the kernel; open ones go on."""
        with self._lock:
            listener, self._listener = self._listener, None
            acceptor, self._acceptor = self._acceptor, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the blocked accept() on Linux
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if acceptor is not None:
            acceptor.join(JOIN_SECONDS)

    # --- control -----------------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def queue(self, *faults: Fault) -> None:
        """The faults of the next connections, in order; then ``default`` again."""
        with self._lock:
            self._queued.extend(faults)

    @property
    def connections(self) -> list[Record]:
        """A snapshot of every connection accepted so far, in order."""
        with self._lock:
            return [Record(**vars(r)) for r in self._records]

    def release(self) -> None:
        """End every stall now (the stalled connections resume forwarding)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.released.set()

    def cut_all(self) -> None:
        """Close every open connection now (both sides see the connection end)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            self._close(link)

    # --- machinery ---------------------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed (down() or stop())
            with self._lock:
                fault = self._queued.pop(0) if self._queued else self.default
                record = Record(len(self._records) + 1, fault)
                self._records.append(record)
            if fault.refuse:
                self._note(record, cut="refused", closed=True)
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5.0)
            except OSError:  # the target is down: so is the proxied service
                self._note(record, closed=True)
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                with contextlib.suppress(OSError):  # the client may already be gone
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server, record)
            link.threads = [
                threading.Thread(
                    target=self._pump, args=(link, way), name=f"faultproxy:{self.port}:{way}", daemon=True
                )
                for way in ("up", "down")
            ]
            with self._lock:
                self._links.append(link)
            for thread in link.threads:
                thread.start()

    def _pump(self, link: _Link, direction: str) -> None:
        source, target = (link.client, link.server) if direction == "up" else (link.server, link.client)
        fault = link.record.fault
        cut_at = fault.cut_up_after if direction == "up" else fault.cut_down_after
        stall_at = fault.stall_up_after if direction == "up" else fault.stall_down_after
        done = 0
        try:
            while not link.closed.is_set():
                if stall_at is not None and done >= stall_at:
                    stall_at = None
                    self._stall(link, direction, fault.stall_for)
                    continue
                limit = CHUNK
                for mark in (cut_at, stall_at):
                    if mark is not None:
                        limit = min(limit, mark - done)
                if limit <= 0:  # the cut is due
                    self._note(link.record, cut=direction)
                    return
                data = source.recv(limit)
                if not data:
                    return
                done += len(data)
                self._note(link.record, **{direction: done})  # before the peer can see the bytes
                target.sendall(data)
        except OSError:
            return
        finally:
            self._close(link)
            self._finish(link)

    def _stall(self, link: _Link, direction: str, seconds: float | None) -> None:
        """Forward nothing more this way until ``seconds`` pass, release(), or the connection closes."""
        self._note(link.record, stalled=direction)
        deadline = None if seconds is None else time.monotonic() + seconds
        while not (link.released.is_set() or link.closed.is_set()):
            left = POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - time.monotonic())
            if left <= 0:
                return
            link.released.wait(left)

    def _note(self, record: Record, **changes: object) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)

    def _close(self, link: _Link) -> None:
        """Shut both sockets down (which wakes the pumps); the last pump out closes them."""
        with self._lock:
            if link.closed.is_set():
                return
            link.closed.set()
            link.record.closed = True
        for sock in (link.client, link.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _finish(self, link: _Link) -> None:
        with self._lock:
            link.pumping -= 1
            if link.pumping:
                return
            self._links.remove(link)
        link.client.close()
        link.server.close()
