"""Fetch what Algérie Poste published in ``outbound/`` and apply each new file once, in a safe order:
acknowledgements first (a RETR may follow its ACK in the same listing), then mandates, returns and
statements. Nothing on the server is changed or deleted; what was read is known from the ledger."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select

from epay.calendar import BusinessCalendar
from epay.faults import fault_point
from epay.inbound.receive import Received, receive_file
from epay.ledger.models import ExchangeFile
from epay.settings import Settings
from epay.transport import SftpClient

ORDER = {"ACK": 0, "MNDT": 1, "RETR": 2, "RELV": 3}


def _known(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(select(ExchangeFile.name).where(ExchangeFile.direction == "in")).scalars()
        )


def fetch_and_apply(
    engine: Engine, settings: Settings, client: SftpClient, calendar: BusinessCalendar, business_date: date
) -> list[Received]:
    known = _known(engine)
    quarantined = (
        {p.name for p in (settings.quarantine_dir / "inbound").glob("*")}
        if (settings.quarantine_dir / "inbound").is_dir()
        else set()
    )
    new = [
        f.name for f in client.list_files("/outbound") if f.name not in known and f.name not in quarantined
    ]
    new.sort(key=lambda n: (ORDER.get(n.split("_")[0], 9), n))
    folder = settings.inbound_dir(business_date)
    results = []
    for name in new:
        downloaded = client.download(name, folder, "/outbound")
        fault_point("inbound.after_download")
        results.append(receive_file(engine, settings, downloaded.path, calendar, business_date))
    return results
