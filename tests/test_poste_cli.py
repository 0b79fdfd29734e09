"""`epay poste ...`: the commands a data engineer or a demo runs, end to end in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import paramiko
import pytest

from epay.calendar import load_calendar
from epay.formats import synthetic as synth
from epay.formats import validate_file, write_file
from epay.settings import business_today

EPAY = str(Path(sys.executable).with_name("epay"))


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    env = os.environ.copy() | {"EPAY_HOME": str(tmp_path / "home")}
    env.pop("EPAY_CONFIG", None)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EPAY, *args], capture_output=True, text=True, env=env, timeout=60)


def client_key(tmp_path: Path) -> tuple[paramiko.Ed25519Key, Path]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "id")), tmp_path / "id.pub"


def add_creditor(env: dict[str, str], public_key: Path) -> subprocess.CompletedProcess[str]:
    return run(
        env,
        "poste",
        "add-creditor",
        "--creditor",
        "100237",
        "--rip",
        synth.CREDITOR_RIP,
        "--username",
        "at100237",
        "--public-key",
        str(public_key),
    )


def prlv(folder: Path, created: date = date(2026, 11, 25), settles: date = date(2026, 11, 26)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"PRLV_100237_{created:%Y%m%d}_01.txt"
    write_file(path, "PRLV", synth.standard_header("PRLV", created, settles), synth.prlv_details(5, seed=3))
    return path


def test_add_creditor_then_tick(tmp_path: Path, home: dict[str, str]) -> None:
    _, public = client_key(tmp_path)
    added = add_creditor(home, public)
    assert added.returncode == 0, added.stderr
    inbound = Path(home["EPAY_HOME"]) / "poste" / "sftp" / "100237" / "inbound"
    prlv(inbound)
    ticked = run(home, "poste", "tick", "--date", "2026-11-25", "--json")
    assert ticked.returncode == 0, ticked.stderr
    result = json.loads(ticked.stdout)
    assert result["acknowledged"] == ["ACK_PRLV_100237_20261125_01.txt"]
    again = run(home, "poste", "tick", "--date", "2026-11-25")
    assert again.returncode == 0 and "nothing new" in again.stdout
    ack = (
        Path(home["EPAY_HOME"]) / "poste" / "sftp" / "100237" / "outbound" / "ACK_PRLV_100237_20261125_01.txt"
    )
    assert validate_file(ack).valid
    assert run(home, "poste", "tick", "--date", "2026-13-01").returncode == 2  # usage error


def test_serve_acknowledges_an_upload_within_seconds(tmp_path: Path, home: dict[str, str]) -> None:
    key, public = client_key(tmp_path)
    assert add_creditor(home, public).returncode == 0
    host_key = run(home, "poste", "host-key").stdout.strip()
    server = subprocess.Popen(
        [EPAY, "poste", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=home,
    )
    try:
        assert server.stdout is not None
        lines: list[str] = []
        while not any(text.startswith("host key:") for text in lines):  # log lines, then the announcements
            text = server.stdout.readline()
            assert text, "the server stopped: " + "".join(lines)
            lines.append(text)
        announced = next(text for text in lines if text.startswith("serving SFTP on"))
        port = int(announced.split(":")[1].split()[0])
        assert host_key in lines[-1]
        transport = paramiko.Transport(("127.0.0.1", port))
        kind, blob = host_key.split()[:2]
        transport.connect(
            hostkey=paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob)),
            username="at100237",
            pkey=key,
        )
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        today = business_today()  # serve runs on the real clock: settle safely after the cut-off
        local = prlv(tmp_path / "out", today, load_calendar().add_business_days(today, 2))
        sftp.put(str(local), f"/inbound/{local.name}.part", confirm=True)
        sftp.rename(f"/inbound/{local.name}.part", f"/inbound/{local.name}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and f"ACK_{local.name}" not in sftp.listdir("/outbound"):
            time.sleep(0.2)
        assert f"ACK_{local.name}" in sftp.listdir("/outbound")
        with sftp.open(f"/outbound/ACK_{local.name}") as handle:
            assert b"ACCP" in handle.read()
        transport.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
