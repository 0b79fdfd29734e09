"""The parameter types every ``epay`` option and argument is parsed with.

Bad input is refused while the command line is parsed, before any work starts: one line that names the
option and says why, exit status 2 (``click.BadParameter``). A command's parameters use these types, or a
bounded click type (a flag, a ``Choice``, an ``IntRange`` with both ends, a :class:`FiniteFloat`);
``tests/test_cli_hostile.py`` walks the command tree and holds every command to that.

The rules (README, Conventions):

- **Text** of any kind is never empty, holds no control or other non-printable character (a value with
  bytes that are not UTF-8 included), and has no leading or trailing whitespace: such a value is refused,
  never trimmed (``'PRLV_..._01.txt '`` is a copy-paste slip, not a name).
- **Dates** are ``YYYY-MM-DD`` from :data:`MIN_DATE` to :data:`MAX_DATE`: the calendar's years
  (``epay.calendar``) less one at each end, so a command's look back or ahead (the previous business
  day, a retry's date, the month to date) stays inside the calendar.
- **Input files** are looked at with ``stat``, never opened, before the command runs: a regular file that
  can be read. A folder, FIFO, device or socket is refused: opening a FIFO waits for a writer forever and
  ``/dev/zero`` never ends; so is a file under ``/proc``, ``/sys`` or ``/dev`` (``/proc/kmsg`` is a
  "regular" file whose read blocks).
- **Output files** are a new or an existing regular file in an existing folder that can be written, never
  inside epay's data folder (``$EPAY_HOME``: the ledger, the files exchanged, quarantine) except its
  ``reports/``. An existing folder, a symbolic link and a special file (``/dev/null``, ``/dev/stdout``,
  a FIFO, a device) are refused: epay writes a part file beside the target and renames it over the
  target, which would replace the device or link itself (as root, ``/dev/null`` would become a regular
  file). A command that prints (``--json``) is the way to the terminal. A missing folder is refused,
  never created: a typo must not grow a tree.
- **Names** (a contract file's bare name, a person, a creditor, a RIP, a reference, an account, an Airflow
  id) each have their exact shape; a file name is never a path.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import stat
import urllib.parse
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import click

from epay.calendar import MAX_YEAR, MIN_YEAR

__all__ = [
    "AIRFLOW_ID",
    "CREDITOR_ID",
    "CREDITOR_NAME",
    "HOST",
    "MAX_DATE",
    "MIN_DATE",
    "PERSON",
    "REFERENCE",
    "RIP",
    "RUN_ID",
    "SFTP_USERNAME",
    "BusinessDate",
    "EpayType",
    "FileName",
    "FiniteFloat",
    "HttpUrl",
    "InputFile",
    "Moment",
    "OutputFile",
    "Text",
    "shown",
    "text_problem",
]

MIN_DATE: Final = date(MIN_YEAR + 1, 1, 1)
MAX_DATE: Final = date(MAX_YEAR - 1, 12, 31)
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # not \d: it matches other scripts' digits
MAX_NAME: Final = 255  # a file name's longest on every file system epay runs on


def shown(value: object, limit: int = 60) -> str:
    """``value`` quoted for a one-line message: control characters escaped, long values cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be any text epay takes (see the module's rules), or None."""
    if not value:
        return "is empty"
    if any("\ud800" <= c <= "\udfff" for c in value):
        return "is not valid UTF-8"
    for position, character in enumerate(value):
        if not character.isprintable():
            return f"has a control or non-printable character ({character!r} at position {position + 1})"
    if value != value.strip():
        return "has leading or trailing whitespace"
    return None


class EpayType(click.ParamType[Any]):
    """A type whose value is first checked as text (:func:`text_problem`). ``example`` is a value it
    takes (tests fill a command's other options with it), None where that depends on the machine."""

    example: str | None = None

    def text(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not isinstance(value, str):
            self.fail(f"{shown(value)} is not text", param, ctx)
        problem = text_problem(value)
        if problem:
            self.fail(f"{shown(value)} {problem}", param, ctx)
        return value


class BusinessDate(EpayType):
    """A date ``YYYY-MM-DD`` from MIN_DATE to MAX_DATE. The value is a naive ``datetime`` at midnight,
    as ``click.DateTime`` gave, so commands take ``.date()`` of it."""

    name = "date"
    example = "2026-11-25"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            day = value.date()
        elif isinstance(value, date):
            day = value
        else:
            text = self.text(value, param, ctx)
            try:
                if not _ISO_DATE.fullmatch(text):
                    raise ValueError
                day = date.fromisoformat(text)
            except ValueError:
                self.fail(f"{shown(value)} is not a date: write it YYYY-MM-DD, e.g. 2026-11-25", param, ctx)
        if not MIN_DATE <= day <= MAX_DATE:
            self.fail(
                f"{day.isoformat()} is outside the dates epay runs on, {MIN_DATE} to {MAX_DATE} "
                f"(its calendar covers {MIN_YEAR} to {MAX_YEAR})",
                param,
                ctx,
            )
        return datetime(day.year, day.month, day.day)


class Moment(EpayType):
    """An ISO 8601 date and time whose date is from MIN_DATE to MAX_DATE; with ``require_offset`` it must
    carry its UTC offset. ``as_text`` gives the checked text back (for a command that parses it itself)."""

    name = "datetime"
    example = "2026-11-25T20:00:00+01:00"

    def __init__(self, *, require_offset: bool = False, as_text: bool = False) -> None:
        self.require_offset, self.as_text = require_offset, as_text

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "YYYY-MM-DDTHH:MM[:SS]" + ("+HH:MM" if self.require_offset else "[+HH:MM]")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            moment, text = value, value.isoformat()
        else:
            text = self.text(value, param, ctx)
            try:
                if not text.isascii():
                    raise ValueError
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(
                    f"{shown(value)} is not a date and time: write it like 2026-11-25T20:00:00+01:00",
                    param,
                    ctx,
                )
        if self.require_offset and moment.tzinfo is None:
            self.fail(f"{shown(text)} has no UTC offset: write it like 2026-11-25T20:00:00+01:00", param, ctx)
        if not MIN_DATE <= moment.date() <= MAX_DATE:
            self.fail(
                f"{shown(text)} is outside the dates epay runs on, {MIN_DATE} to {MAX_DATE}", param, ctx
            )
        return text if self.as_text else moment


def _path_text(kind: EpayType, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
    if isinstance(value, Path):
        value = str(value)
    text = kind.text(value, param, ctx)
    if len(os.fsencode(text)) > 4096 or any(len(part) > MAX_NAME for part in text.split("/")):
        kind.fail(f"{shown(text)} is too long for a path", param, ctx)
    return text


def _special(mode: int) -> str | None:
    """What a file that is not a regular file is, in words (None for a regular file)."""
    for test, words in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def _os_problem(error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return "does not exist"
    if error.errno == errno.ENOTDIR:
        return "has a part that is not a folder"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "cannot be looked at (permission denied)"
    return f"cannot be looked at ({error.strerror or error})"


class InputFile(EpayType):
    """An existing regular file that can be read, checked with ``stat`` only (never opened here: opening a
    FIFO blocks). At most ``max_bytes`` when given. The value is a ``Path``."""

    name = "file"

    def __init__(self, *, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        text = _path_text(self, value, param, ctx)
        try:
            status = os.stat(text)
        except OSError as error:
            self.fail(f"{shown(text)} {_os_problem(error)}", param, ctx)
        what = _special(status.st_mode)
        if what is not None:
            self.fail(f"{shown(text)} is {what}: epay reads only regular files", param, ctx)
        if any(
            p.parts[1:2] in (("proc",), ("sys",), ("dev",))
            for p in (Path(os.path.abspath(text)), Path(text).resolve())
        ):
            # regular files of the kernel's own file systems (/proc/kmsg blocks on read): never data
            self.fail(
                f"{shown(text)} is under /dev, /proc or /sys: epay reads only regular data files", param, ctx
            )
        if not os.access(text, os.R_OK):
            self.fail(f"{shown(text)} cannot be read (permission denied)", param, ctx)
        if self.max_bytes is not None and status.st_size > self.max_bytes:
            self.fail(f"{shown(text)} is {status.st_size} bytes, more than {self.max_bytes}", param, ctx)
        return Path(text)


class OutputFile(EpayType):
    """A regular file to write (new, or replaced) in an existing folder that can be written; see the
    module's rules for what is refused and why. The value is a ``Path``."""

    name = "file"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        text = _path_text(self, value, param, ctx)
        path = Path(text)
        if text.endswith("/") or path.name in ("", ".", ".."):
            self.fail(f"{shown(text)} is a folder's name: give a file's", param, ctx)
        folder = path.parent
        try:
            folder_status = os.stat(folder)
        except OSError as error:
            problem = (
                "does not exist (create it first)" if error.errno == errno.ENOENT else _os_problem(error)
            )
            self.fail(f"{shown(text)}: its folder {shown(str(folder))} {problem}", param, ctx)
        if not stat.S_ISDIR(folder_status.st_mode):
            self.fail(f"{shown(text)}: {shown(str(folder))} is not a folder", param, ctx)
        if not os.access(folder, os.W_OK | os.X_OK):
            self.fail(f"{shown(text)}: its folder {shown(str(folder))} cannot be written", param, ctx)
        for target in (path, path.with_name(path.name + ".part")):
            try:
                mode = os.lstat(target).st_mode
            except FileNotFoundError:
                continue
            except OSError as error:
                self.fail(f"{shown(str(target))} {_os_problem(error)}", param, ctx)
            what = _special(mode)
            if what is not None:
                self.fail(
                    f"{shown(str(target))} is {what}: epay writes only regular files (written whole "
                    "beside it, then renamed over it)",
                    param,
                    ctx,
                )
        guarded = _in_data_folder(path)
        if guarded is not None:
            self.fail(
                f"{shown(text)} is inside epay's data folder {shown(str(guarded))}, which holds the ledger "
                "and the files exchanged (kept ten years): write elsewhere, or under its reports/ folder",
                param,
                ctx,
            )
        return path


def _in_data_folder(path: Path) -> Path | None:
    """``$EPAY_HOME`` when ``path`` lies inside it but not under its ``reports/`` (nothing epay keeps may
    be replaced by a download: the ledger, the files exchanged, quarantine), else None."""
    from epay.settings import REPO_ROOT

    home = Path(os.environ.get("EPAY_HOME") or REPO_ROOT / "var").resolve()
    target = path.resolve()
    if target.is_relative_to(home) and not target.is_relative_to(home / "reports"):
        return home
    return None


class FileName(EpayType):
    """A file's bare name (never a path): printable ASCII, at most 255 characters, no separator, not
    ``.``/``..``. With ``kinds``, a contract name of one of those kinds (spec §2, ``epay.formats.names``)."""

    name = "name"
    example = "PRLV_100237_20261125_01.txt"

    def __init__(self, *kinds: str) -> None:
        self.kinds = kinds

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if self.kinds and not isinstance(value, str):
            self.fail(f"{shown(value)} is not text", param, ctx)
        problem = text_problem(value) if isinstance(value, str) else "is not text"
        if problem is None and len(value) > MAX_NAME:
            problem = f"is longer than {MAX_NAME} characters"
        elif problem is None and (any(c in value for c in "/\\:") or value in (".", "..") or value[0] == "~"):
            problem = "is a path: give the file's bare name (e.g. PRLV_100237_20261125_01.txt), not a path"
        elif problem is None and not value.isascii():
            problem = "is not ASCII, as the contract's file names are"
        if self.kinds:
            from epay.formats.names import FileNameError, parse_file_name

            kind = None
            if problem is None:
                with contextlib.suppress(FileNameError):
                    kind = parse_file_name(value).kind
            if kind not in self.kinds:
                patterns = " or ".join(f"{k}_<creditor>_<YYYYMMDD>_<SS>.txt" for k in self.kinds)
                because = f": it {problem}" if problem else ""
                self.fail(
                    f"{shown(value)} is not a {'/'.join(self.kinds)} file name ({patterns}){because}",
                    param,
                    ctx,
                )
        elif problem is not None:
            self.fail(f"{shown(value)} {problem}", param, ctx)
        return str(value)


class Text(EpayType):
    """Text of at most ``max_length`` characters (see :func:`text_problem`), matching ``pattern`` when
    given; ``what`` says in the error what was expected, ``example`` is one it takes."""

    def __init__(
        self, name: str, what: str, example: str, *, max_length: int = 100, pattern: str | None = None
    ) -> None:
        self.name, self.what, self.example, self.max_length = name, what, example, max_length
        self.pattern = re.compile(pattern) if pattern else None

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self.name.upper()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = self.text(value, param, ctx)
        if len(text) > self.max_length:
            self.fail(f"{shown(text)} is longer than {self.max_length} characters ({self.what})", param, ctx)
        if self.pattern is not None and not (text.isascii() and self.pattern.fullmatch(text)):
            self.fail(f"{shown(text)} is not {self.what}", param, ctx)
        return self.check(text, param, ctx)

    def check(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return text


class _Rip(Text):
    def check(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from epay.formats.rip import rip_problem

        problem = rip_problem(text)
        if problem:
            self.fail(f"{shown(text)} is not a RIP: {problem}", param, ctx)
        return text


class HttpUrl(EpayType):
    """An ``http://`` or ``https://`` URL with a host (and a port from 1 to 65535 if given)."""

    name = "url"
    example = "http://127.0.0.1:28080"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = self.text(value, param, ctx)
        try:
            if not text.isascii() or " " in text:
                raise ValueError
            parts = urllib.parse.urlsplit(text)
            port = parts.port
            if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
                raise ValueError
        except ValueError:
            self.fail(f"{shown(text)} is not an http(s) URL like http://127.0.0.1:28080", param, ctx)
        return text


class FiniteFloat(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and the infinities (``nan`` passes any comparison)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{shown(value)} is not a number", param, ctx)
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{shown(value)} is not a finite number", param, ctx)
        return number


PERSON: Final = Text(
    "name", "a person's name (who does it, kept in the audit trail)", "amina.dataeng", max_length=64
)
CREDITOR_ID: Final = Text("creditor", "a national creditor number of 6 digits", "100237", pattern="[0-9]{6}")
CREDITOR_NAME: Final = Text("name", "a creditor's name", "ALGERIE TELECOM", max_length=30)
RIP: Final = _Rip("rip", "a RIP (20 digits)", "00799999000012345687", max_length=20)
REFERENCE: Final = Text(
    "reference",
    "an end-to-end reference: A-Z and 0-9, up to 24, e.g. E2026112501000000000001",
    "E2026112501000000000001",
    max_length=24,
    pattern="[A-Z0-9]{1,24}",
)
SFTP_USERNAME: Final = Text(
    "username", "an SFTP account name: a-z 0-9 _, 1 to 32", "at100237", pattern="[a-z0-9_]{1,32}"
)
HOST: Final = Text(
    "host", "a host name or IP address", "127.0.0.1", max_length=253, pattern=r"[A-Za-z0-9.:_-]+"
)
AIRFLOW_ID: Final = Text(
    "id",
    "an Airflow id: A-Z a-z 0-9 _ . -",
    "epay_debit_outbound",
    max_length=250,
    pattern=r"[A-Za-z0-9_.-]+",
)
RUN_ID: Final = Text("run_id", "an Airflow run id", "manual__2026-11-25T19:00:00+00:00", max_length=250)
