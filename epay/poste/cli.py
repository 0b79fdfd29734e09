"""``epay poste ...``: run the simulated Algérie Poste (thin: options in, PostOffice and server out)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from epay.cli_params import (
    CREDITOR_ID,
    CREDITOR_NAME,
    HOST,
    RIP,
    SFTP_USERNAME,
    BusinessDate,
    FiniteFloat,
    InputFile,
    OutputFile,
    Text,
)
from epay.clock import Clock, ClockError
from epay.settings import ALGIERS, get_settings

if TYPE_CHECKING:
    from epay.poste.office import PostOffice
    from epay.protection.openpgp import PinnedKey

log = logging.getLogger("epay.poste.serve")


def _office() -> PostOffice:
    from epay.calendar import load_calendar
    from epay.poste.office import PostOffice
    from epay.poste.scenario import load_scenario

    settings = get_settings()
    return PostOffice(
        settings.poste_dir,
        settings.poste_url,
        calendar=load_calendar(settings.holidays_file),
        scenario=load_scenario(settings.poste_scenario_file),
    )


@click.group()
def poste() -> None:
    """The simulated Algérie Poste: SFTP server, accounts, processing on a clock you control."""


@poste.command("add-creditor")
@click.option("--creditor", type=CREDITOR_ID, required=True, help="6-digit national creditor number")
@click.option("--name", type=CREDITOR_NAME, default="ALGERIE TELECOM", show_default=True)
@click.option(
    "--rip", type=RIP, required=True, help="the creditor's own CCP account (RIP), credited with collections"
)
@click.option("--username", type=SFTP_USERNAME, required=True, help="its SFTP account name")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=InputFile(max_bytes=16_384),
    help="OpenSSH public key file allowed to log in",
)
def add_creditor(creditor: str, name: str, rip: str, username: str, public_key: Path) -> None:
    """Register a creditor: its CCP account, its SFTP account and folders."""
    from epay.poste.sftp_accounts import AccountError, parse_public_key_line
    from epay.poste.sftp_server import add_account

    key_line = public_key.read_text(encoding="utf-8", errors="replace").strip()
    try:  # before anything is registered
        parse_public_key_line(key_line, str(public_key))
    except AccountError as error:
        raise click.BadParameter(str(error), param_hint="'--public-key'") from None
    office = _office()
    try:  # a RIP or a username that is another creditor's
        office.add_creditor(creditor, name, rip)
        add_account(office.poste_dir, username, creditor, key_line)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"creditor {creditor}: SFTP account {username}, home {office.home(creditor)}")


@poste.command("host-key")
def host_key() -> None:
    """Print the server's public host key line, for the operator to pin."""
    from epay.poste.sftp_server import host_key_line, load_or_create_host_key

    click.echo(host_key_line(load_or_create_host_key(get_settings().poste_dir / "host_key")))


PINNED_KEY = Text(
    "key",
    "a key fingerprint (40 hex digits), then optionally 'from YYYY-MM-DD' and 'until YYYY-MM-DD'",
    "0123456789ABCDEF0123456789ABCDEF01234567 from 2026-12-01",
    max_length=80,
    pattern=r"[0-9A-Fa-f]{40}( from [0-9]{4}-[0-9]{2}-[0-9]{2})?( until [0-9]{4}-[0-9]{2}-[0-9]{2})?",
)


def _pinned(keys: tuple[str, ...]) -> list[PinnedKey]:
    from epay.protection.openpgp import PinnedKey

    try:
        return [PinnedKey.parse(key) for key in keys]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--key'") from None


@poste.command("agreement")
@click.option("--creditor", type=CREDITOR_ID, required=True, help="6-digit national creditor number")
@click.option(
    "--protection",
    type=click.Choice(["none", "openpgp"]),
    required=True,
    help="contract §8: openpgp, every file signed and encrypted both ways; none, version 001",
)
@click.option(
    "--key",
    "keys",
    type=PINNED_KEY,
    multiple=True,
    help="the creditor's key pinned, 'FINGERPRINT [from DATE] [until DATE]' (repeat it for a rotation's "
    "overlap); replaces the keys pinned so far",
)
@click.option(
    "--public-key",
    "public_keys",
    type=InputFile(max_bytes=65_536),
    multiple=True,
    help="an ASCII-armored OpenPGP public key file of the creditor's; only a pinned key is imported",
)
def agreement(creditor: str, protection: str, keys: tuple[str, ...], public_keys: tuple[Path, ...]) -> None:
    """Set a creditor's agreement: protection and pinned OpenPGP keys (contract §8)."""
    from epay.poste.protection import PosteProtection
    from epay.protection.openpgp import ProtectionSetupError

    pinned = _pinned(keys)
    if protection == "openpgp" and not pinned:
        raise click.UsageError("protection openpgp needs at least one --key")
    protection_ = PosteProtection(get_settings().poste_dir)
    try:
        gpg = protection_.gpg()
        for public_key in public_keys:
            gpg.import_pinned(public_key.read_text(encoding="ascii", errors="replace"), pinned)
        missing = [key.fingerprint for key in pinned if not gpg.has_public(key.fingerprint)]
    except ProtectionSetupError as error:
        raise click.UsageError(str(error)) from None
    if missing:
        raise click.UsageError(
            f"no public key {', '.join(missing)} in AP's keyring: give it with --public-key"
        )
    protection_.set_agreement(creditor, protection, [str(key) for key in pinned])
    click.echo(f"creditor {creditor}: protection {protection}" + "".join(f"; key {key}" for key in pinned))


@poste.command("new-key")
@click.option("--out", "out", type=OutputFile(), required=True, help="where AP's new public key is written")
def new_key(out: Path) -> None:
    """Make a new OpenPGP key pair for the post office (Ed25519/Cv25519) and write its public key to
    --out; prints its fingerprint. It signs nothing until `epay poste own-keys` lists it."""
    from epay.poste.protection import PosteProtection
    from epay.protection.openpgp import ProtectionSetupError

    try:
        gpg = PosteProtection(get_settings().poste_dir).gpg()
        fingerprint = gpg.generate_key("Algerie Poste epay", "epay@ap.example.dz")
        armored = gpg.export_public(fingerprint)
    except ProtectionSetupError as error:
        raise click.UsageError(str(error)) from None
    staging = out.with_name(out.name + ".part")
    staging.write_text(armored, encoding="ascii")
    staging.replace(out)
    click.echo(fingerprint)


@poste.command("own-keys")
@click.option(
    "--key",
    "keys",
    type=PINNED_KEY,
    multiple=True,
    required=True,
    help="a key of the post office's own, 'FINGERPRINT [from DATE] [until DATE]'; it signs with the newest "
    "valid on the day (repeat it for a rotation's overlap)",
)
def own_keys(keys: tuple[str, ...]) -> None:
    """Set the post office's own OpenPGP keys and their validity (contract §8, key rotation)."""
    from epay.poste.protection import PosteProtection
    from epay.protection.openpgp import ProtectionSetupError

    pinned = _pinned(keys)
    protection_ = PosteProtection(get_settings().poste_dir)
    try:
        gpg = protection_.gpg()
        missing = [key.fingerprint for key in pinned if not gpg.has_secret(key.fingerprint)]
    except ProtectionSetupError as error:
        raise click.UsageError(str(error)) from None
    if missing:
        raise click.UsageError(f"no secret key {', '.join(missing)} in AP's keyring (epay poste new-key)")
    protection_.set_own_keys([str(key) for key in pinned])
    click.echo("own keys: " + "; ".join(str(key) for key in pinned))


def day_to_settle(now: datetime, first_day: date, settled: date | None) -> date | None:
    """The day the post office should close now: the latest day whose end (midnight Africa/Algiers) the
    clock has passed, if it is on or after ``first_day`` and after the last day already ``settled``."""
    ended = now.astimezone(ALGIERS).date() - timedelta(days=1)
    if ended < first_day or (settled is not None and ended <= settled):
        return None
    return ended


class EndOfDay:
    """``serve --end-of-day-every S``: every S seconds, close each day whose end the clock has passed
    (what ``epay poste tick --date D`` does), so a stack on a simulated clock settles by itself.

    The first day it may close is the day after the last day the office already closed or, for a new
    office, the clock's own day when serving began: days before the world existed are never closed."""

    def __init__(self, office: PostOffice, lock: threading.Lock, every: float, clock: Clock) -> None:
        self.office, self.lock, self.every, self.clock = office, lock, every, clock
        self.settled: date | None = None
        self.first_day: date | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="poste-end-of-day", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=max(self.every, 5.0) + 60.0)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.settle_once()
            except ClockError as error:
                log.warning("end of day: %s", error)
            except Exception:  # a failed day is logged and tried again at the next interval
                log.exception("end of day: the day could not be closed")
            self.stopping.wait(self.every)

    def settle_once(self) -> date | None:
        """Close the day whose end has passed, if any; returns it."""
        now = self.clock.now()
        if self.first_day is None:
            last = self.office.last_closed_day()
            self.first_day = last + timedelta(days=1) if last else now.astimezone(ALGIERS).date()
            self.settled = last
            log.info("end of day: days from %s on are closed when the clock passes their end", self.first_day)
        day = day_to_settle(now, self.first_day, self.settled)
        if day is None:
            return None
        with self.lock:
            result = self.office.tick(day)
        self.settled = day
        log.info(
            "end of day %s (clock %s): published %s",
            day,
            now.astimezone(ALGIERS).isoformat(timespec="seconds"),
            ", ".join(result.published) or "nothing",
        )
        return day


@poste.command()
@click.option("--host", type=HOST, default="127.0.0.1", show_default=True)
@click.option("--port", default=2222, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--end-of-day-every",
    "end_of_day_every",
    type=FiniteFloat(min=0.1, max=86_400),
    default=None,
    help="every SECONDS, close each day whose end the clock (EPAY_CLOCK) has passed: executions, RETR, "
    "RELV, MNDT, as `epay poste tick` does; default: only when someone runs tick",
)
def serve(host: str, port: int, end_of_day_every: float | None) -> None:
    """Run the SFTP server until stopped; each PRLV file is acknowledged within seconds of its arrival,
    stamped with the clock (EPAY_CLOCK)."""
    from epay.clock import process_clock
    from epay.poste.sftp_server import PosteSftpServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        clock = process_clock()
    except ClockError as error:
        raise click.UsageError(str(error)) from None
    office = _office()
    office.recover_publications()  # files committed before a crash but not yet renamed
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, clock.now().astimezone(ALGIERS))

    server = PosteSftpServer(office.poste_dir, host=host, port=port, on_file_received=received)
    outage = office.scenario.faults.refuse_connections_seconds
    if outage:  # scenario fault: nothing listens yet, so connections are refused
        click.echo(f"scenario fault: refusing connections for {outage} s")
        time.sleep(outage)
    server.start()
    click.echo(f"serving SFTP on {host}:{server.port} (poste folder {office.poste_dir}); Ctrl-C stops")
    click.echo(f"host key: {server.host_key_line}")
    end_of_day = None if end_of_day_every is None else EndOfDay(office, lock, end_of_day_every, clock)
    if end_of_day is not None:
        click.echo(f"closing each day whose end the clock has passed, looking every {end_of_day_every:g} s")
        end_of_day.start()
    try:
        server.serve_forever()
    finally:
        if end_of_day is not None:
            end_of_day.stop()


@poste.command()
@click.option(
    "--date",
    "day",
    required=True,
    type=BusinessDate(),
    help="advance the simulated clock to the end of this day",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def tick(day: datetime, as_json: bool) -> None:
    """ACK waiting PRLV files, execute what is due by DATE, publish RETR, RELV and MNDT files."""
    result = _office().tick(day.date())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "date": day.date().isoformat(),
                    "acknowledged": result.acknowledged,
                    "published": result.published,
                }
            )
        )
        return
    for name in result.acknowledged:
        click.echo(f"acknowledged: {name}")
    for name in result.published:
        click.echo(f"published: {name}")
    if not result.acknowledged and not result.published:
        click.echo(f"nothing new on {day.date():%Y-%m-%d}")
