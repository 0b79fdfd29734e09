"""Benchmark of the operator's SFTP client (epay.transport.SftpClient) against OpenSSH's ``sftp`` client.

Both talk to the simulated post office's server (``epay.poste.sftp_server.PosteSftpServer``) on
127.0.0.1, which runs in a process of its own (multiprocessing, spawn), so that client and server do
not share a GIL. Six operations, in rounds (each round does all six, so drift hits them alike):

* ``epay upload``    ``SftpClient.upload``: ``NAME.part`` (pipelined 255 KiB writes), ``stat`` of the
  size, the whole ``.part`` read back and its sha256 compared, plain SFTP ``rename`` to ``NAME``
* ``OpenSSH put``    ``sftp -b batch``: ``put LOCAL /inbound/NAME.part`` then ``rename`` to ``NAME``
  (OpenSSH's defaults: 32 KiB requests, 64 in flight; no read-back)
* ``epay download``  ``SftpClient.download``: prefetched reads, size checked, sha256 computed on the way,
  temporary file, fsync, hard link to the final name, fsync of the folder
* ``OpenSSH get``    ``sftp -b batch``: ``get /outbound/NAME LOCAL`` (no hash, no fsync)
* ``epay session`` / ``OpenSSH session``: the connection setup alone (connect, list the empty
  ``/outbound``, close), to tell the fixed cost from the transfer

Every timed run includes the connection setup: a fresh ``SftpClient`` (TCP connect, SSH handshake,
host key check, key login, SFTP session, close) or a fresh ``sftp`` process (process start, the same
handshake, exit). Python imports are not timed. Each run uses a fresh name (the server never
overwrites); the bytes are checked after every run, untimed. The file is random bytes (neither side
compresses, so the content does not matter); reads find it in the page cache. The server fsyncs a
``.part`` before renaming it, for both clients. Timings are printed, never asserted.

Run: ``.venv/bin/python bench/transfer.py [--size-mb N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from epay.poste.sftp_accounts import SftpAccount, add_account, ensure_home  # noqa: E402
from epay.transport import SftpClient, SftpEndpoint  # noqa: E402

MB = 1_000_000  # every MB below is 10^6 bytes
USERNAME, CREDITOR = "at100237", "100237"
OPS = ("epay upload", "OpenSSH put", "epay download", "OpenSSH get", "epay session", "OpenSSH session")
TRANSFERS = OPS[:4]
PAIRS = (
    ("epay upload", "OpenSSH put"),
    ("epay download", "OpenSSH get"),
    ("epay session", "OpenSSH session"),
)
OPENSSH_TIMEOUT = 1800
SERVER_START_TIMEOUT = 60
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the server process ---------------------------------------------------------------------------------
def serve(poste_dir: str, conn: Connection) -> None:
    """The spawned server process: start, report (port, host key line), serve until told to stop."""
    from epay.poste.sftp_server import PosteSftpServer

    server = PosteSftpServer(Path(poste_dir))
    server.start()
    try:
        conn.send((server.port, server.host_key_line))
        with contextlib.suppress(EOFError):  # EOF: the parent is gone
            conn.recv()
    finally:
        server.stop()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def children_cpu_seconds() -> float:
    """CPU time of the finished (waited-for) child processes and their own children: ``sftp`` and ``ssh``."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the world -----------------------------------------------------------------------------------------
def write_key(path: Path) -> str:
    """An ed25519 private key in OpenSSH format (read by paramiko and by OpenSSH); its public key line."""
    private = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} bench@transfer"


def write_data(path: Path, size: int) -> str:
    """``size`` random bytes into ``path``; their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Capture(logging.Handler):
    """Keeps the records of a logger (epay's timing lines, paramiko's algorithm lines); shows warnings."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= logging.WARNING:
            print(f"  [{record.name}] {record.getMessage()}", file=sys.stderr)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


@dataclass
class Bench:
    folder: Path
    size: int
    sha256: str
    source: Path
    account: SftpAccount
    endpoint: SftpEndpoint
    key: Path
    known_hosts: Path
    server_pid: int
    sftp: str
    epay_log: Capture
    counter: int = 0

    def fresh_name(self, prefix: str, day: str) -> str:
        self.counter += 1
        return f"{prefix}_{CREDITOR}_{day}_{self.counter:02d}.txt"

    def openssh(self, commands: str, *, verbose: bool = False) -> subprocess.CompletedProcess[str]:
        batch = self.folder / "batch.txt"
        batch.write_text(commands)
        options = {
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "IdentitiesOnly": "yes",
            "ConnectTimeout": "10",
        }
        args = [self.sftp, "-F", "/dev/null", "-b", str(batch), "-i", str(self.key)]
        args += ["-P", str(self.endpoint.port)]
        if verbose:
            args.append("-v")
        for name, value in options.items():
            args += ["-o", f"{name}={value}"]
        args.append(f"{USERNAME}@127.0.0.1")
        done = subprocess.run(
            args, cwd=self.folder, capture_output=True, text=True, timeout=OPENSSH_TIMEOUT, check=False
        )
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"sftp exited with {done.returncode}: {tail}")
        return done


# -- one run of each operation ---------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    client_cpu: float
    server_cpu: float
    phases: dict[str, float] = field(default_factory=dict)  # epay's own timings, from its log lines


def timed(bench: Bench, action: Callable[[], object], client_cpu: Callable[[], float]) -> Run:
    server0, client0 = process_cpu_seconds(bench.server_pid), client_cpu()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    return Run(seconds, client_cpu() - client0, process_cpu_seconds(bench.server_pid) - server0)


def epay_phases(records: list[logging.LogRecord]) -> dict[str, float]:
    """Connection setup, send and read-back times from the client's own log lines (when present)."""
    phases: dict[str, float] = {}
    for record in records:
        args: tuple[Any, ...] = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("connected to ") and args:
            phases["connect"] = float(args[-1]) / 1000
        elif str(record.msg).startswith("sent ") and len(args) == 5:
            phases["send"] = float(args[2])
            phases["read back"] = float(args[4])
    return phases


def check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"verification failed: {what}")


def epay_upload(bench: Bench) -> Run:
    name = bench.fresh_name("PRLV", "20261125")
    local = bench.folder / "up" / name
    os.link(bench.source, local)
    results = []

    def action() -> None:
        with SftpClient(bench.endpoint, retries=0) as client:
            results.append(client.upload(local))

    bench.epay_log.take()
    run = timed(bench, action, self_cpu_seconds)
    run.phases = epay_phases(bench.epay_log.take())
    result, received = results[0], bench.account.inbound / name
    check(result.sha256 == bench.sha256 and not result.already_there, f"epay upload of {name}")
    check(received.stat().st_size == bench.size and sha256_of(received) == bench.sha256, f"{received}")
    received.unlink()
    local.unlink()
    return run


def openssh_put(bench: Bench) -> Run:
    name = bench.fresh_name("PRLV", "20261125")
    part = f"/inbound/{name}.part"
    commands = f'put "{bench.source}" "{part}"\nrename "{part}" "/inbound/{name}"\n'
    run = timed(bench, lambda: bench.openssh(commands), children_cpu_seconds)
    received = bench.account.inbound / name
    check(received.stat().st_size == bench.size and sha256_of(received) == bench.sha256, f"{received}")
    check(not (bench.account.inbound / f"{name}.part").exists(), f"{part} left behind")
    received.unlink()
    return run


def epay_download(bench: Bench) -> Run:
    name = bench.fresh_name("RETR", "20261126")
    published = bench.account.outbound / name
    os.link(bench.source, published)
    target = bench.folder / "down" / "epay"
    results = []

    def action() -> None:
        with SftpClient(bench.endpoint, retries=0) as client:
            results.append(client.download(name, target))

    bench.epay_log.take()
    run = timed(bench, action, self_cpu_seconds)
    run.phases = epay_phases(bench.epay_log.take())
    local = target / name
    check(results[0].sha256 == bench.sha256 and results[0].size == bench.size, f"epay download of {name}")
    check(sha256_of(local) == bench.sha256, f"{local}")
    local.unlink()
    published.unlink()
    return run


def openssh_get(bench: Bench) -> Run:
    name = bench.fresh_name("RETR", "20261126")
    published = bench.account.outbound / name
    os.link(bench.source, published)
    local = bench.folder / "down" / "openssh" / name
    commands = f'get "/outbound/{name}" "{local}"\n'
    run = timed(bench, lambda: bench.openssh(commands), children_cpu_seconds)
    check(local.stat().st_size == bench.size and sha256_of(local) == bench.sha256, f"{local}")
    local.unlink()
    published.unlink()
    return run


def epay_session(bench: Bench) -> Run:
    """Connection setup alone: connect, list /outbound (empty), close."""

    def action() -> None:
        with SftpClient(bench.endpoint, retries=0) as client:
            client.list_files("/outbound")

    run = timed(bench, action, self_cpu_seconds)
    bench.epay_log.take()
    return run


def openssh_session(bench: Bench) -> Run:
    return timed(bench, lambda: bench.openssh("ls /outbound\n"), children_cpu_seconds)


RUNNERS: dict[str, Callable[[Bench], Run]] = {
    "epay upload": epay_upload,
    "OpenSSH put": openssh_put,
    "epay download": epay_download,
    "OpenSSH get": openssh_get,
    "epay session": epay_session,
    "OpenSSH session": openssh_session,
}


# -- algorithms (untimed warm-up) --------------------------------------------------------------------------
def warm_up(bench: Bench) -> tuple[str, str]:
    """One untimed session of each client (listing /outbound); the algorithms each negotiated."""
    paramiko_log = logging.getLogger("paramiko.transport")
    capture, level = Capture(), paramiko_log.level
    paramiko_log.addHandler(capture)
    paramiko_log.setLevel(logging.DEBUG)
    try:
        with SftpClient(bench.endpoint, retries=0) as client:
            client.list_files("/outbound")
    finally:
        paramiko_log.removeHandler(capture)
        paramiko_log.setLevel(level)
    bench.epay_log.take()
    agreed = {}
    for record in capture.records:
        message = record.getMessage()
        for what in ("Kex", "Cipher", "MAC"):
            if message.startswith(f"{what}: "):
                agreed[what] = message.split(": ", 1)[1]
    epay = f"kex {agreed.get('Kex', '?')}, cipher {agreed.get('Cipher', '?')}, MAC {agreed.get('MAC', '?')}"

    stderr = bench.openssh("ls /outbound\n", verbose=True).stderr
    kex = re.search(r"kex: algorithm: (\S+)", stderr)
    up = re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", stderr)
    openssh = (
        f"kex {kex.group(1) if kex else '?'}, cipher {up.group(1) if up else '?'}, "
        f"MAC {up.group(2) if up else '?'}"
    )
    return epay, openssh


# -- printing ----------------------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def results_table(runs: dict[str, list[Run]], size: int) -> list[str]:
    head = (
        f"{'operation':<15} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>7} "
        f"{'client CPU s':>12} {'server CPU s':>12}"
    )
    lines = [head, "-" * len(head)]
    for op in OPS:
        done = runs[op]
        if not done:
            lines.append(f"{op:<15} no successful run")
            continue
        seconds = [r.seconds for r in done]
        rate = f"{size / MB / median(seconds):>7.1f}" if op in TRANSFERS else f"{'-':>7}"
        lines.append(
            f"{op:<15} {median(seconds):>9.3f} {min(seconds):>7.3f} {max(seconds):>7.3f} "
            f"{rate} {median([r.client_cpu for r in done]):>12.2f} "
            f"{median([r.server_cpu for r in done]):>12.2f}"
        )
    return lines


def phase_lines(runs: dict[str, list[Run]], size: int) -> list[str]:
    lines = []
    for op in ("epay upload", "epay download"):
        names = [name for name in ("connect", "send", "read back") if all(name in r.phases for r in runs[op])]
        if not runs[op] or not names:
            continue
        parts = []
        for name in names:
            value = median([r.phases[name] for r in runs[op]])
            rate = f", {size / MB / value:.1f} MB/s" if name != "connect" and value > 0 else ""
            parts.append(
                f"{name} {value:.3f} s{rate}" if name == "connect" else f"{name} {value:.2f} s{rate}"
            )
        lines.append(f"{op}, its own log (medians): " + "; ".join(parts))
    return lines


def ratio_lines(runs: dict[str, list[Run]]) -> list[str]:
    lines = []
    for ours, theirs in PAIRS:
        if not runs[ours] or not runs[theirs]:
            continue
        a, b = median([r.seconds for r in runs[ours]]), median([r.seconds for r in runs[theirs]])
        speed = f"; epay at {b / a:.0%} of OpenSSH's throughput" if ours in TRANSFERS else ""
        lines.append(f"{ours} / {theirs}: {a / b:.2f}× the time (median {a:.3f} s vs {b:.3f} s{speed})")
    return lines


def print_legend(size: int, repeat: int) -> None:
    print(
        f"\nepay SFTP transfer benchmark — file {size:,} bytes ({size / MB:.1f} MB), {repeat} run(s) per "
        "figure, server in its own process on 127.0.0.1. MB = 10^6 bytes.\n"
        "seconds: median, min, max over the runs, each INCLUDING connection setup (epay: a fresh\n"
        "SftpClient: TCP, handshake, host key check, key login, SFTP session, close; OpenSSH: a fresh\n"
        "`sftp -b` process: the same, plus process start and exit). MB/s = file bytes / median seconds.\n"
        "client CPU = CPU time of the client (epay: this process, all threads; OpenSSH: sftp + ssh);\n"
        "server CPU = CPU time of the server process during the run (medians).\n"
        "epay upload = .part, size stat, full read-back + sha256, rename (the file crosses the link twice);\n"
        "OpenSSH put = put to .part + rename (once). epay download = sha256 on the way, fsync, link;\n"
        "OpenSSH get = plain get (no hash, no fsync). The server fsyncs a .part before its rename (both).\n"
        "session = connection setup alone: connect, list the empty /outbound, close (no MB/s)."
    )


# -- main --------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--size-mb", type=float, default=160, help="file size in MB of 10^6 bytes (default 160: a full PRLV)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mb <= 0:
        parser.error("--repeat must be ≥ 1 and --size-mb > 0")
    return args


def start_server(poste_dir: Path) -> tuple[multiprocessing.process.BaseProcess, Connection, int, str]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(str(poste_dir), theirs), name="poste-sftp", daemon=True)
    process.start()
    theirs.close()
    if not ours.poll(SERVER_START_TIMEOUT):
        process.terminate()
        raise RuntimeError("the SFTP server process did not start")
    port, host_key = ours.recv()
    return process, ours, int(port), str(host_key)


def stop_server(process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
    with contextlib.suppress(OSError):
        conn.send("stop")
    conn.close()
    process.join(15)
    if process.is_alive():
        process.terminate()
        process.join(5)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sftp = shutil.which("sftp")
    if sftp is None:
        sys.exit("the OpenSSH client 'sftp' is not installed (apt-get install openssh-client)")
    size = round(args.size_mb * MB)
    folder = Path(tempfile.mkdtemp(prefix="epay-transfer-bench-"))
    server: tuple[multiprocessing.process.BaseProcess, Connection] | None = None
    try:
        for sub in ("up", "down/epay", "down/openssh", "keys"):
            (folder / sub).mkdir(parents=True)
        key = folder / "keys" / "id_ed25519"
        poste_dir = folder / "poste"
        account = add_account(poste_dir, USERNAME, CREDITOR, write_key(key))
        ensure_home(account)
        print(f"writing {size:,} random bytes ...", file=sys.stderr)
        source = folder / "source.bin"
        digest = write_data(source, size)

        process, conn, port, host_key = start_server(poste_dir)
        server = (process, conn)
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        endpoint = SftpEndpoint("127.0.0.1", port, USERNAME, key, host_key, io_timeout=300.0)
        epay_log = Capture()
        logger = logging.getLogger("epay.transport.sftp")
        logger.addHandler(epay_log)
        logger.setLevel(logging.DEBUG)
        assert process.pid is not None
        bench = Bench(
            folder, size, digest, source, account, endpoint, key, known_hosts, process.pid, sftp, epay_log
        )
        epay_algorithms, openssh_algorithms = warm_up(bench)

        runs: dict[str, list[Run]] = {op: [] for op in OPS}
        for round_no in range(1, args.repeat + 1):
            for op in OPS:
                print(f"  round {round_no}/{args.repeat}: {op} ...", end="", flush=True, file=sys.stderr)
                try:
                    run = RUNNERS[op](bench)
                except Exception as exc:  # report and go on: one failed run should not hide the others
                    print(f" FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                runs[op].append(run)
                rate = f" ({size / MB / run.seconds:.1f} MB/s)" if op in TRANSFERS else ""
                print(f" {run.seconds:.3f} s{rate}", file=sys.stderr)

        print_legend(size, args.repeat)
        print(f"algorithms: epay (paramiko) {epay_algorithms}; OpenSSH {openssh_algorithms}")
        print(f"clients: paramiko-based epay SftpClient; {subprocess_version()}; {os.cpu_count()} CPU(s)\n")
        print("\n".join(results_table(runs, size)))
        print()
        print("\n".join(phase_lines(runs, size)))
        print("\n".join(ratio_lines(runs)))
    finally:
        if server is not None:
            stop_server(*server)
        shutil.rmtree(folder, ignore_errors=True)


def subprocess_version() -> str:
    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().split(",")[0] or "OpenSSH (version unknown)"


if __name__ == "__main__":
    main()
