"""``epay poste ...``: run the simulated Algérie Poste (thin: options in, PostOffice and server out)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from epay.settings import ALGIERS, get_settings

if TYPE_CHECKING:
    from epay.poste.office import PostOffice


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
@click.option("--creditor", required=True, help="6-digit national creditor number")
@click.option("--name", default="ALGERIE TELECOM", show_default=True)
@click.option("--rip", required=True, help="the creditor's own CCP account (RIP), credited with collections")
@click.option("--username", required=True, help="its SFTP account name")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="OpenSSH public key file allowed to log in",
)
def add_creditor(creditor: str, name: str, rip: str, username: str, public_key: Path) -> None:
    """Register a creditor: its CCP account, its SFTP account and folders."""
    from epay.poste.sftp_server import add_account

    office = _office()
    office.add_creditor(creditor, name, rip)
    add_account(office.poste_dir, username, creditor, public_key.read_text().strip())
    click.echo(f"creditor {creditor}: SFTP account {username}, home {office.home(creditor)}")


@poste.command("host-key")
def host_key() -> None:
    """Print the server's public host key line, for the operator to pin."""
    from epay.poste.sftp_server import host_key_line, load_or_create_host_key

    click.echo(host_key_line(load_or_create_host_key(get_settings().poste_dir / "host_key")))


@poste.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2222, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """Run the SFTP server until stopped; each PRLV file is acknowledged within seconds of its arrival."""
    from epay.clock import process_clock
    from epay.poste.sftp_server import PosteSftpServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    office = _office()
    office.recover_publications()  # files committed before a crash but not yet renamed
    lock = threading.Lock()

    def received(creditor: str, name: str, path: Path) -> None:
        if name.startswith("PRLV_"):
            with lock:
                office.acknowledge(creditor, path, process_clock().now().astimezone(ALGIERS))

    server = PosteSftpServer(office.poste_dir, host=host, port=port, on_file_received=received)
    outage = office.scenario.faults.refuse_connections_seconds
    if outage:  # scenario fault: nothing listens yet, so connections are refused
        click.echo(f"scenario fault: refusing connections for {outage} s")
        time.sleep(outage)
    server.start()
    click.echo(f"serving SFTP on {host}:{server.port} (poste folder {office.poste_dir}); Ctrl-C stops")
    click.echo(f"host key: {server.host_key_line}")
    server.serve_forever()


@poste.command()
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
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
