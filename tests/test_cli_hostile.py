"""No command crashes or hangs on bad input (issue 14, item 5).

The command tree is walked by introspection, so a command or option added later is covered without
touching this file: every parameter must have a checked type (``epay.cli_params``, or a bounded click
type), and every date, path, name and other text or number parameter is fed generated values. A bad value
gives exit status 2 and one line on stderr that names the parameter; a good one is taken (the command's
own work is not run there: ``poste serve`` would run forever). Then real runs: ``epay check`` and every
other file input on a FIFO return at once (in a subprocess with a timeout, since a regression hangs),
every date option at the calendar's edges runs its command for real without a bug, and the last-resort
guard turns a bug into one line (its traceback only with EPAY_DEBUG).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epay import cli_params
from epay.calendar import MAX_YEAR, MIN_YEAR, CalendarRangeError
from epay.cli import main
from epay.settings import get_settings
from tests.conftest import REPO

EPAY = str(Path(sys.executable).with_name("epay"))
FIRST, LAST = date(MIN_YEAR + 1, 1, 1), date(MAX_YEAR - 1, 12, 31)  # the rule, stated apart from the code
Chain = tuple[tuple[str, click.Command], ...]  # (name, command) from `epay` down to a leaf command


def chains(command: click.Command = main, above: Chain = ()) -> Iterator[Chain]:
    here = (*above, ("epay" if not above else command.name or "", command))
    if isinstance(command, click.Group):
        if command.invoke_without_command:  # `epay exceptions` alone is a command too
            yield here
        for name in sorted(command.commands):
            yield from chains(command.commands[name], here)
    else:
        yield here


CHAINS = list(chains())
# Every parameter once, with the first chain through its command (a group's options need a leaf after it).
PARAMS: dict[int, tuple[Chain, click.Command, click.Parameter]] = {}
for chain in CHAINS:
    for _, command in chain:
        for param in command.params:
            PARAMS.setdefault(id(param), (chain, command, param))
TESTED = [(c, cmd, p) for c, cmd, p in PARAMS.values() if not getattr(p, "is_flag", False)]


def label(chain: Chain, param: click.Parameter) -> str:
    owner = next(name for name, command in chain if param in command.params)
    path = " ".join(name for name, _ in chain[: [n for n, _ in chain].index(owner) + 1])
    return f"{path} {param.opts[0] if isinstance(param, click.Option) else param.name}"


# --- every parameter has a checked type ---------------------------------------------------------------


def unchecked(param: click.Parameter) -> str | None:
    """Why ``param``'s type lets bad input through to the command, or None."""
    kind = param.type
    if getattr(param, "is_flag", False) or isinstance(kind, (click.Choice, cli_params.EpayType)):
        return None
    if isinstance(kind, click.IntRange) and kind.min is not None and kind.max is not None:
        return None
    if isinstance(kind, cli_params.FiniteFloat) and kind.min is not None and kind.max is not None:
        return None
    return f"type {kind!r}: give it a type of epay.cli_params (or a Choice, a bounded IntRange/FiniteFloat)"


def test_every_parameter_of_every_command_has_a_checked_type() -> None:
    assert len(CHAINS) >= 20 and len(TESTED) >= 40  # the walk sees the whole tree
    problems = [f"{label(c, p)}: {unchecked(p)}" for c, _, p in PARAMS.values() if unchecked(p)]
    assert not problems, "\n".join(problems)


# --- generated values, parsed in-process ----------------------------------------------------------------


@contextlib.contextmanager
def stubbed(chain: Chain) -> Iterator[list[dict[str, Any]]]:
    """The leaf command's own work replaced by a recorder of the values it was given."""
    leaf = chain[-1][1]
    calls: list[dict[str, Any]] = []
    original = leaf.callback
    leaf.callback = lambda **values: calls.append(values)
    try:
        yield calls
    finally:
        leaf.callback = original


class World:
    """Files of every kind, made once: a regular file, a folder, a FIFO, a socket, links, a device."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.regular = root / "PRLV_100237_20261125_01.txt"
        self.regular.write_text("x\n")
        self.folder = root / "folder"
        self.folder.mkdir()
        self.fifo = root / "pipe"
        os.mkfifo(self.fifo)
        self.socket_path = root / "sock"
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.bind(str(self.socket_path))
        self.link_to_regular = root / "link"
        self.link_to_regular.symlink_to(self.regular)
        self.link_to_fifo = root / "link-to-pipe"
        self.link_to_fifo.symlink_to(self.fifo)
        self.dangling = root / "dangling"
        self.dangling.symlink_to(root / "nowhere")

    def inputs(self) -> list[tuple[str, bool]]:
        """(path, whether it is a good input file)"""
        r = str(self.regular)
        return [
            (r, True),
            (str(self.link_to_regular), True),
            (str(self.folder), False),
            (str(self.fifo), False),
            (str(self.link_to_fifo), False),
            (str(self.socket_path), False),
            (str(self.dangling), False),
            ("/dev/null", False),
            ("/dev/zero", False),
            ("/dev/stdin", False),
            ("/proc/kmsg", False),
            ("/proc/self/status", False),
            (str(self.root / "missing.txt"), False),
            (str(self.root / "missing" / "x.txt"), False),
            (r + "/x", False),
            (r + " ", False),
            (" " + r, False),
            (r + "\n", False),
            (r[:-4] + "\x00.txt", False),
            (r[:-4] + "\x1b[31m.txt", False),
            (r[:-4] + "\udcff.txt", False),
            (str(self.root / ("x" * 300)), False),
            ("", False),
        ]

    def outputs(self) -> list[tuple[str, bool]]:
        """(path, whether it is a good output file)"""
        new = str(self.folder / "day.csv")
        return [
            (new, True),
            (str(self.regular), True),
            (str(self.folder), False),
            (str(self.folder) + "/", False),
            ("/dev/null", False),
            ("/dev/stdout", False),
            ("/dev/full", False),
            (str(self.fifo), False),
            (str(self.socket_path), False),
            (str(self.link_to_regular), False),
            (str(self.dangling), False),
            (str(self.root / "missing" / "day.csv"), False),
            (str(self.regular / "day.csv"), False),
            (new + " ", False),
            (new + "\n", False),
            (new[:-4] + "\t.csv", False),
            (new[:-4] + "\u2028.csv", False),
            (str(self.folder / ".."), False),
            ("", False),
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("hostile"))
    yield made
    made.socket.close()


def good_value(param: click.Parameter, world: World) -> str:
    kind = param.type
    if isinstance(kind, cli_params.InputFile):
        return str(world.regular)
    if isinstance(kind, cli_params.OutputFile):
        return str(world.folder / "filled.csv")
    if isinstance(kind, cli_params.EpayType):
        assert kind.example is not None, f"{kind!r} has no example"
        return kind.example
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        return str(kind.min)
    raise AssertionError(f"no good value for {param.name}: {kind!r}")


def argv(
    chain: Chain, tested: click.Parameter, value: str, world: World, smallest: bool = False
) -> list[str]:
    """The command line of ``chain`` with ``value`` for ``tested`` and good values for every other
    required parameter (so that only ``tested`` can be the one refused); with ``smallest``, every bounded
    integer option at its least too (``sample --subscribers 1``: the smallest world, for real runs)."""
    args: list[str] = []
    for depth, (name, command) in enumerate(chain):
        if depth:
            args.append(name)
        options: list[str] = []
        arguments: list[str] = []
        for param in command.params:
            if param is tested:
                given = [value]
            elif param.required or (smallest and isinstance(param.type, click.IntRange)):
                given = [good_value(param, world)]
            else:
                continue
            if isinstance(param, click.Option):  # --opt=VALUE: a value may begin with "-"
                options += [f"{param.opts[0]}={given[0]}"]
            else:
                arguments += given
        args += options + (["--", *arguments] if arguments else [])
    return args


def invoke(chain: Chain, args: list[str], **env: str) -> tuple[Result, float, list[dict[str, Any]]]:
    with stubbed(chain) as calls:
        started = time.monotonic()
        result = CliRunner().invoke(main, args, env=env or None)
        return result, time.monotonic() - started, calls


def assert_refused(result: Result, param: click.Parameter, elapsed: float) -> None:
    shown = f"{result.exit_code}: {result.stderr!r}"
    assert result.exit_code == 2, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), shown
    if isinstance(param, click.Option):
        assert any(f"'{opt}'" in lines[0] for opt in param.opts), shown
    else:
        assert "Invalid value for '" in lines[0] or "Missing argument" in lines[0], shown
    assert "Traceback" not in result.output, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert elapsed < 10, elapsed


def assert_taken(result: Result, calls: list[dict[str, Any]], elapsed: float) -> None:
    assert result.exit_code == 0, f"{result.exit_code}: {result.output!r}"
    assert len(calls) == 1 and elapsed < 10


def date_texts() -> st.SearchStrategy[str]:
    near_edges = st.sampled_from(
        [FIRST, LAST, date(MIN_YEAR, 12, 31), date(MAX_YEAR, 1, 1), date(1900, 1, 1), date(9999, 12, 31)]
    )
    return st.one_of(
        st.dates().map(date.isoformat),
        near_edges.map(date.isoformat),
        st.dates().map(lambda d: d.strftime("%Y%m%d")),
        st.datetimes().map(datetime.isoformat),
        st.text(max_size=12),
        st.sampled_from(
            ["2026-02-29", "2026-11-25 ", " 2026-11-25", "2026-11-25\n", "２０２６-11-25", "0000-01-01"]
        ),
    )


def moment_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.datetimes().map(datetime.isoformat),
        st.datetimes().map(lambda d: d.isoformat() + "+01:00"),
        st.sampled_from(["2026-11-25T20:00", "2026-11-25T20:00:00+01:00", "9999-12-31T23:59:59-23:59"]),
        st.text(max_size=30),
    )


def date_ok(text: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return False
    try:
        return FIRST <= date.fromisoformat(text) <= LAST
    except ValueError:
        return False


def moment_ok(text: str, require_offset: bool) -> bool:
    if not text.isascii() or not text.isprintable() or text != text.strip() or not text:
        return False
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return (moment.tzinfo is not None or not require_offset) and FIRST <= moment.date() <= LAST


def spoiled(good: str) -> st.SearchStrategy[str]:
    """``good`` made bad the ways a hand or a script makes it bad."""
    return st.sampled_from(
        [
            good + " ",
            " " + good,
            good + "\n",
            good + "\r",
            good[:1] + "\x00" + good[1:],
            good[:1] + "\x1b" + good[1:],
            good[:1] + "\u2028" + good[1:],
            good[:1] + "\udcff" + good[1:],
            good + "\t",
            "",
        ]
    )


def number_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(["nan", "-inf", "1e309", "0x10", "1_000", " 1", "١", ""]),
        st.text(max_size=8),
    )


def hostile_values(param: click.Parameter, world: World) -> st.SearchStrategy[tuple[str, bool | None]]:
    """Values for ``param`` with whether it must be taken (True), refused (False) or may be either (None)."""
    kind = param.type
    if isinstance(kind, cli_params.BusinessDate):
        return date_texts().map(lambda t: (t, date_ok(t)))
    if isinstance(kind, cli_params.Moment):
        return moment_texts().map(lambda t: (t, moment_ok(t, kind.require_offset)))
    if isinstance(kind, cli_params.InputFile):
        nowhere = st.text(max_size=20).map(lambda t: (f"{world.root}/nowhere-{t}", False))
        return st.one_of(st.sampled_from(world.inputs()), nowhere)
    if isinstance(kind, cli_params.OutputFile):
        # a text after a missing folder (joined as text: Path would drop "" and restart at "/x")
        under_missing = st.text(max_size=20).map(lambda t: (f"{world.root}/missing/{t}", False))
        return st.one_of(st.sampled_from(world.outputs()), under_missing)
    if isinstance(kind, cli_params.EpayType):
        good = good_value(param, world)
        return st.one_of(
            st.just((good, True)),
            spoiled(good).map(lambda t: (t, False)),
            st.sampled_from(["../" + good, good + "/..", good * 20]).map(lambda t: (t, None)),
            st.text(max_size=40).map(lambda t: (t, None)),
        )
    return st.one_of(number_texts(), st.text(max_size=10)).map(lambda t: (t, None))


def plain(text: str) -> bool:
    """What any accepted text holds to: printable, no surrounding whitespace."""
    return bool(text) and text.isprintable() and text == text.strip()


@pytest.mark.parametrize(
    ("chain", "param"), [(c, p) for c, _, p in TESTED], ids=[label(c, p) for c, _, p in TESTED]
)
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_values_are_taken_or_refused_in_one_line(
    chain: Chain, param: click.Parameter, world: World, data: st.DataObject
) -> None:
    value, expected = data.draw(hostile_values(param, world), label="value")
    result, elapsed, calls = invoke(chain, argv(chain, param, value, world))
    assert "Traceback" not in result.output
    if expected is True:
        assert_taken(result, calls, elapsed)
    elif expected is False or result.exit_code != 0:
        assert_refused(result, param, elapsed)
    else:  # taken where either may be right: what is taken is plain
        assert_taken(result, calls, elapsed)
        if isinstance(param.type, cli_params.EpayType):
            assert plain(value), repr(value)
        if isinstance(param.type, cli_params.FileName):
            assert "/" not in value and value not in (".", "..")


def test_every_parameters_good_value_is_taken(world: World) -> None:
    for chain, _, param in TESTED:
        result, _, _ = invoke(chain, argv(chain, param, good_value(param, world), world))
        assert result.exit_code == 0, f"{label(chain, param)}: {result.output}"


def readme_commands() -> list[str]:
    """Every `epay ...` line of the README's shell blocks, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            found = re.match(r"\s*(?:\.venv/bin/)?epay (.*)", line)
            if found:
                lines.append(re.split(r"\s+#", found.group(1))[0].strip())
    return lines


def test_every_command_the_readme_shows_is_taken(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The types are not stricter than the runbook: each command line the README shows parses."""
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAA\n")
    sample = sorted(str(p) for p in (REPO / "sample_files").glob("*.txt"))
    monkeypatch.chdir(tmp_path)  # --out finance.xlsx lands here
    shown = readme_commands()
    assert len(shown) >= 25
    for line in shown:
        line = line.replace("[--json]", "--json").replace("~/.ssh/id_ed25519.pub", str(key))
        args = []
        for word in shlex.split(line):
            args += {"sample_files/*.txt": sample, "FILE...": sample[:2], "FILE": sample[:1]}.get(
                word, [word]
            )
        args = ["amina" if a == "NAME" else a for a in args]
        with contextlib.ExitStack() as stack:  # every command's work replaced, groups' too
            calls = [stack.enter_context(stubbed(chain)) for chain in CHAINS]
            result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and sum(len(c) for c in calls) >= 1, (line, result.output)


# --- examples, run for real --------------------------------------------------------------------------


def date_params() -> list[tuple[Chain, click.Parameter]]:
    return [(c, p) for c, _, p in TESTED if isinstance(p.type, cli_params.BusinessDate)]


def real(args: list[str], **env: str | None) -> Result:
    return CliRunner().invoke(main, args, env=env or None)


def test_1900_and_9999_on_every_date_option_are_one_line_usage_errors(world: World) -> None:
    found = date_params()
    assert (
        len(found) >= 12
    )  # status, exceptions, report, billing x2, outbound x4, inbound, sample, poste tick...
    for chain, param in found:
        for day in ("1900-01-01", "9999-12-31", "2000-06-15", "2100-06-15", "2026-02-29"):
            started = time.monotonic()
            result = real(argv(chain, param, day, world))
            assert_refused(result, param, time.monotonic() - started)
            assert "outside the dates epay runs on" in result.stderr or "is not a date" in result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Iterator[dict[str, str | None]]:
    env: dict[str, str | None] = {
        "EPAY_HOME": str(tmp_path / "home"),
        "EPAY_CLOCK": "2026-11-25T20:00:00+01:00",
        # nothing reached over the network: no api-server, no SFTP host key (each refuses at once)
        "AIRFLOW__API__BASE_URL": None,
        "EPAY_SFTP_HOST_KEY": None,
        "EPAY_DATABASE_URL": None,
        "EPAY_CONFIG": None,
    }
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


# Commands whose work must not run in a unit test (a server that runs until stopped).
NOT_RUN_FOR_REAL = {"epay poste serve"}


@pytest.mark.slow
def test_the_first_and_last_dates_run_every_command_without_a_bug(
    world: World, home: dict[str, str | None]
) -> None:
    """At the range's edges each dated command does its work (on an empty world): its own verdict,
    exit 0, 1 or 2, on one line if an error, never a bug (the guard's "internal error")."""
    for chain, param in date_params():
        if " ".join(n for n, _ in chain) in NOT_RUN_FOR_REAL:
            continue
        for day in (FIRST, LAST):
            args = argv(chain, param, day.isoformat(), world, smallest=True)
            get_settings.cache_clear()
            result = real(args, **home)
            assert result.exit_code in (0, 1, 2), (args, result.output)
            assert "internal error" not in result.output and "Traceback" not in result.output, (
                args,
                result.output,
            )
            assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def run_process(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EPAY, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def test_epay_check_on_a_fifo_returns_at_once_with_exit_2(world: World) -> None:
    started = time.monotonic()
    done = run_process("check", str(world.fifo), timeout=30)  # before: never returned
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: Invalid value for 'FILE...': '{world.fifo}' is a named pipe (FIFO): epay reads only regular "
        "files (see 'epay check --help')"
    ]
    assert time.monotonic() - started < 30


def test_every_file_input_refuses_a_fifo_and_a_device_without_opening_it(world: World) -> None:
    inputs = [(c, p) for c, _, p in TESTED if isinstance(p.type, cli_params.InputFile)]
    assert len(inputs) >= 3  # check, billing load, poste add-creditor --public-key
    for chain, param in inputs:
        for path in (world.fifo, Path("/dev/zero")):
            args = argv(chain, param, str(path), world)
            done = run_process(*args, timeout=30)
            assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, (args, done.stderr)
            assert "epay reads only regular files" in done.stderr


@pytest.mark.parametrize(
    ("out", "why"),
    [
        ("{root}/missing/day.csv", "its folder '{root}/missing' does not exist (create it first)"),
        ("{root}/folder", "'{root}/folder' is a folder"),
        ("/dev/null", "'/dev/null' is a character device"),
        ("/dev/stdout", "'/dev/stdout' is a symbolic link"),
        ("{root}/pipe", "'{root}/pipe' is a named pipe (FIFO)"),
        ("{root}/folder/day.csv ", "has leading or trailing whitespace"),
        ("{root}/folder/day\x07.csv", "has a control or non-printable character ('\\x07' at position"),
    ],
)
def test_report_out_refuses_what_it_cannot_write_as_a_regular_file(world: World, out: str, why: str) -> None:
    root = str(world.root)
    result = real(["report", "--date", "2026-11-26", "--format", "csv", "--out", out.format(root=root)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Invalid value for '--out'" in result.stderr and why.format(root=root) in result.stderr
    assert not (world.root / "missing").exists()  # a missing folder is not created


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["outbound", "release-file", "--file", "PRLV_100237_20261125_01.txt ", "--by", "amina"], "'--file'"),
        (
            ["outbound", "release-file", "--file", "PRLV_100237_20261125_01.txt\n", "--by", "amina"],
            "'--file'",
        ),
        (["audit", "--file", "ACK_PRLV_100237_20261125_01.txt\x1b[2J"], "'--file'"),
        (["audit", "--file", "../../etc/passwd"], "'--file'"),
        (["outbound", "release", "--date", "2026-11-25", "--by", "amina\n"], "'--by'"),
        (["outbound", "cancel", "--date", "2026-11-25", "--by", " "], "'--by'"),
        (["audit", "--reference", "E2026112501000000000001 "], "'--reference'"),
        (["check", "--creditor", "１００２３７", "x"], "'--creditor'"),
        (["poste", "serve", "--end-of-day-every", "nan"], "'--end-of-day-every'"),
        (["clock", "set", "--at", "2026-11-25T20:00:00+01:00", "--speed", "inf"], "'--speed'"),
        (["sample", "--as-of", "2026-11-25", "--seed", "-1"], "'--seed'"),
        (["layouts", "PRLV\n"], "'KIND'"),
    ],
)
def test_names_with_trailing_space_or_control_characters_are_one_line_usage_errors(
    args: list[str], shown: str
) -> None:
    result = real(args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and shown in result.stderr, result.stderr


def test_a_group_alone_still_prints_its_help() -> None:
    for args in ([], ["outbound"], ["poste"]):
        result = real(args)
        assert result.exit_code == 2 and result.stderr.startswith("Usage: "), result.stderr
        assert "Error:" not in result.stderr and "Commands:" in result.stderr


def test_poste_add_creditor_refuses_a_bad_key_or_another_creditors_rip_in_one_line(
    tmp_path: Path, home: dict[str, str | None]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    garbage, good = tmp_path / "garbage.pub", tmp_path / "id.pub"
    garbage.write_bytes(b"\x00\xff not a key\n")
    public = Ed25519PrivateKey.generate().public_key()
    good.write_bytes(public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    rip = "00799999000012345687"

    def add(creditor: str, username: str, key: Path) -> Result:
        get_settings.cache_clear()
        args = ["poste", "add-creditor", "--creditor", creditor, "--rip", rip, "--username", username]
        return real([*args, "--public-key", str(key)], **home)

    refused = add("100237", "at100237", garbage)
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert (
        "Invalid value for '--public-key'" in refused.stderr and "is not accepted (allowed:" in refused.stderr
    )
    assert not (Path(str(home["EPAY_HOME"])) / "poste" / "sftp" / "100237").exists()  # nothing registered
    assert add("100237", "at100237", good).exit_code == 0
    taken = add("100238", "at100238", good)
    assert taken.exit_code == 2 and taken.stderr.splitlines() == [
        f"Error: creditor 100238: RIP {rip} is creditor 100237's (one each) "
        "(see 'main poste add-creditor --help')"
    ]


# --- the last-resort guard -------------------------------------------------------------------------------


def raising(error: BaseException) -> Callable[..., None]:
    def callback(**_: Any) -> None:
        raise error

    return callback


@pytest.mark.parametrize(
    ("error", "status", "shown"),
    [
        (RuntimeError("boom\nsecond line"), 1, "internal error (a bug; EPAY_DEBUG=1 shows its traceback): "),
        (CalendarRangeError("year 1899 is outside the supported range 2000-2100"), 2, "a date outside"),
        (PermissionError(13, "Permission denied", "/x"), 1, "Error: [Errno 13] Permission denied: '/x'"),
    ],
)
def test_an_unexpected_exception_is_one_line_and_a_bug_keeps_its_status_1(
    error: Exception, status: int, shown: str
) -> None:
    command = main.commands["status"]
    original = command.callback
    command.callback = raising(error)
    try:
        result = CliRunner().invoke(main, ["status", "--date", "2026-11-25"])
        debug = CliRunner().invoke(main, ["status", "--date", "2026-11-25"], env={"EPAY_DEBUG": "1"})
    finally:
        command.callback = original
    assert result.exit_code == status and len(result.stderr.splitlines()) == 1, result.stderr
    assert shown in result.stderr and "Traceback" not in result.output
    if status == 1 and isinstance(error, RuntimeError):
        assert "RuntimeError: boom\\nsecond line" in result.stderr
        assert debug.exception is error  # with EPAY_DEBUG the exception (and its traceback) goes through


def test_a_bug_in_a_real_process_prints_its_traceback_only_with_epay_debug(tmp_path: Path) -> None:
    """A bug seen as the operator sees it: a real process, one line; the traceback with EPAY_DEBUG=1."""
    code = (
        "import sys; from epay.cli import main; c = main.commands['layouts']\n"
        "def broken(kind): raise ZeroDivisionError('division by zero')\n"
        "c.callback = broken; main(['layouts'])\n"
    )
    env = os.environ | {"EPAY_HOME": str(tmp_path)}
    plain_run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert plain_run.returncode == 1
    assert plain_run.stderr.splitlines() == [
        "Error: internal error (a bug; EPAY_DEBUG=1 shows its traceback): ZeroDivisionError: division by zero"
    ]
    debug_run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env | {"EPAY_DEBUG": "1"},
        timeout=60,
    )
    assert debug_run.returncode == 1 and "Traceback (most recent call last)" in debug_run.stderr
