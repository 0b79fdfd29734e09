"""`make test` checks its Debian packages first: a missing one stops at once with the command to run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-packages.sh"


def run(*packages: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *packages], capture_output=True, text=True, timeout=30, env={**os.environ, **env}
    )


def test_present_packages_pass_silently() -> None:
    result = run("openssh-client", "chromium")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_missing_package_stops_at_once_with_the_exact_command() -> None:
    result = run("epay-no-such-package", EPAY_NO_APT="1")
    assert result.returncode == 2
    assert "missing Debian packages: epay-no-such-package" in result.stderr
    assert "apt-get install -y -qq epay-no-such-package" in result.stderr


def test_the_makefile_checks_packages_before_the_tests() -> None:
    makefile = (SCRIPT.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "test: system-packages" in makefile
