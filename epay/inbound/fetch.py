"""Fetch what Algérie Poste published in ``outbound/`` and apply each new file once, in a safe order:
acknowledgements first (a RETR may follow its ACK in the same listing), then mandates, returns and
statements. Nothing on the server is changed or deleted; what was read is known from the ledger.

Names are not trusted to stay what they were (contract §1: the same name with other bytes is an incident):
- a name never applied is downloaded at every fetch and judged whenever its bytes are new: a file
  quarantined under a name (a forged ACK, say) never hides the genuine file AP publishes later under
  that same name (the same bad bytes again are not quarantined twice; bytes quarantined only for a date
  after today by epay's clock are judged again once the clock reaches it);
- a name already applied is downloaded again when its listed size or time changed, and a few each night
  anyway (``Settings.inbound_recheck_files``, the longest unchecked first); other bytes than those applied
  are an incident: quarantined with both sha256, nothing of them applied, the applied version kept.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from epay.calendar import BusinessCalendar
from epay.faults import fault_point
from epay.formats import parse_file_name
from epay.formats.names import FileNameError
from epay.inbound import versions
from epay.inbound.receive import Received, quarantine_inbound, receive_file
from epay.ledger import audit
from epay.ledger.bulk import stored_utc
from epay.ledger.db import transaction
from epay.outbound.build import sha256_of
from epay.settings import Settings
from epay.transport.agent import FileTransport
from epay.transport.sftp import DownloadResult, RemoteFile

LOG = logging.getLogger(__name__)
ORDER = {"ACK": 0, "MNDT": 1, "RETR": 2, "RELV": 3}


def fetch_and_apply(
    engine: Engine, settings: Settings, client: FileTransport, calendar: BusinessCalendar, business_date: date
) -> list[Received]:
    memory = versions.remember(engine)
    if settings.protection == "openpgp":  # contract §8: a NAME.pgp applied is known by its own bytes
        memory = _with_protected(memory)
    listing = [f for f in client.list_files("/outbound") if not f.name.endswith(".part")]
    new: list[RemoteFile] = []
    changed: list[RemoteFile] = []
    unchanged: list[tuple[datetime, RemoteFile]] = []
    for entry in listing:
        last = memory.latest.get(entry.name)
        if entry.name not in memory.applied:
            new.append(entry)  # never applied (or quarantined so far): read whatever its listing says
        elif last is None or not _same_listing(last, entry):
            changed.append(entry)
        else:
            unchanged.append((last.checked_at, entry))
    unchanged.sort(key=lambda pair: stored_utc(pair[0]))
    rechecks = [entry for _, entry in unchanged[: settings.inbound_recheck_files]]
    work = sorted(new + changed + rechecks, key=lambda f: (ORDER.get(f.name.split("_")[0], 9), f.name))
    folder = settings.inbound_dir(business_date)
    results = []
    for entry in work:
        if entry.name in memory.applied:
            incident = _check_again(engine, settings, client, entry, memory, business_date)
            if incident is not None:
                results.append(incident)
            continue
        leftover = folder / entry.name if (folder / entry.name).is_file() else None
        downloaded = client.download(
            entry.name, _free_folder(folder, entry.name, _plain(entry.name)), "/outbound"
        )
        fault_point("inbound.after_download")
        if leftover is not None and leftover != downloaded.path:
            if sha256_of(leftover) == downloaded.sha256:  # a harmless duplicate: the first copy is read
                downloaded.path.unlink()
                downloaded = DownloadResult(entry.name, leftover, downloaded.size, downloaded.sha256)
            else:
                results.append(
                    _quarantine_leftover(engine, settings, leftover, downloaded.sha256, business_date)
                )
        seen = memory.outcomes.get((entry.name, downloaded.sha256))
        if seen == versions.QUARANTINED or (seen == versions.EARLY and _still_early(entry.name, settings)):
            downloaded.path.unlink()  # the same bad bytes as before: already quarantined and listed
            _remember(engine, entry, downloaded.sha256, seen, business_date)
            continue
        path = downloaded.path
        if settings.protection == "openpgp":  # contract §8: decrypted and verified before it is read
            from epay.protection.operator import kind_of, open_inbound

            opened = open_inbound(settings, path)
            if opened.plain is None:
                assert opened.reason is not None
                got = quarantine_inbound(settings, business_date, path, kind_of(path.name), [opened.reason])
                _remember(engine, entry, downloaded.sha256, versions.QUARANTINED, business_date)
                results.append(got)
                continue
            path = opened.plain  # the protected original stays beside it: what was exchanged
        got = receive_file(engine, settings, path, calendar, business_date)
        outcome = {"applied": versions.APPLIED, "repeat": versions.REPEAT}.get(got.outcome, got.outcome)
        if "early_until" in got.detail:
            outcome = versions.EARLY
        _remember(engine, entry, downloaded.sha256, outcome, business_date)
        results.append(got)
    return results


def _check_again(
    engine: Engine,
    settings: Settings,
    client: FileTransport,
    entry: RemoteFile,
    memory: versions.Memory,
    business_date: date,
) -> Received | None:
    """Download a name already applied and compare its bytes; an incident if they changed."""
    downloaded = client.download(
        entry.name, _free_folder(settings.inbound_dir(business_date) / "recheck", entry.name), "/outbound"
    )
    applied = memory.applied[entry.name]
    if downloaded.sha256 == applied:
        downloaded.path.unlink()
        _remember(engine, entry, downloaded.sha256, versions.REPEAT, business_date)
        return None
    if memory.outcomes.get((entry.name, downloaded.sha256)) == versions.INCIDENT:
        downloaded.path.unlink()  # this other version is already quarantined and listed
        _remember(engine, entry, downloaded.sha256, versions.INCIDENT, business_date)
        return None
    reason = (
        f"{entry.name} was published again with other bytes (sha256 {downloaded.sha256[:16]}…, "
        f"{downloaded.size} bytes) than the version applied (sha256 {applied[:16]}…): incident "
        "(contract §1); nothing of it is applied, the applied version is kept"
    )
    got = _republished(engine, settings, downloaded.path, reason, business_date)
    _remember(engine, entry, downloaded.sha256, versions.INCIDENT, business_date)
    return got


def _still_early(name: str, settings: Settings) -> bool:
    """The name's date (the header's: the codec checks they agree) is still after today by the clock."""
    try:
        return parse_file_name(name.removesuffix(".pgp")).day > settings.today()
    except FileNameError:
        return False


def _quarantine_leftover(
    engine: Engine, settings: Settings, leftover: Path, sha256: str, business_date: date
) -> Received:
    """A copy of a name never applied, left by a run that died between download and judgement, with other
    bytes than AP's file under the name now: AP changed it (contract §1). That earlier version is
    quarantined as an incident, never applied, and kept; the current one is judged as usual."""
    reason = (
        f"{leftover.name}: this version was downloaded before a crash and never judged; AP's file under "
        f"the name now has other bytes (sha256 {sha256[:16]}…): incident (contract §1), nothing of this "
        "version is applied"
    )
    return _republished(engine, settings, leftover, reason, business_date)


def _republished(
    engine: Engine, settings: Settings, path: Path, reason: str, business_date: date
) -> Received:
    """A second version of a name (contract §1: an incident): quarantined with ``reason``, audited
    ``incident REPUBLISHED``, nothing of it applied."""
    LOG.error("%s", reason)
    got = quarantine_inbound(settings, business_date, path, path.name.split("_")[0], [reason])
    with transaction(engine) as connection:
        audit.record(
            connection,
            "file",
            path.name,
            "incident",
            reason="REPUBLISHED",
            actor="inbound.fetch",
            business_date=business_date,
        )
    return got


def _remember(engine: Engine, entry: RemoteFile, sha256: str, outcome: str, business_date: date) -> None:
    versions.record(
        engine,
        name=entry.name,
        sha256=sha256,
        size=entry.size,
        mtime=entry.mtime,
        outcome=outcome,
        business_date=business_date,
    )


def _same_listing(last: versions.Version, entry: RemoteFile) -> bool:
    if last.size != entry.size:
        return False
    if last.mtime is None or entry.mtime is None:
        return last.mtime is None and entry.mtime is None
    return int(stored_utc(last.mtime).timestamp()) == int(stored_utc(entry.mtime).timestamp())


def _free_folder(folder: Path, name: str | None = None, plain: str | None = None) -> Path:
    """``folder``, or a numbered folder beside it if a file of that name (or of ``plain``, the name a
    protected file opens to) is already there (a version of the name read earlier the same night lies
    there until quarantined)."""
    names = [n for n in (name, plain) if n]
    if not any((folder / n).exists() for n in names):
        return folder
    counter = 1
    while any((folder / f"v{counter}" / n).exists() for n in names):
        counter += 1
    return folder / f"v{counter}"


def _plain(name: str) -> str | None:
    """The plain name of a protected ``NAME.pgp`` (contract §8), else None."""
    return name[: -len(".pgp")] if name.endswith(".pgp") else None


def _with_protected(memory: versions.Memory) -> versions.Memory:
    """The ledger registers the plain file it applied; the name listed is ``NAME.pgp``, whose applied
    version is the one remembered with that outcome (re-checked by its bytes as exchanged)."""
    applied = dict(memory.applied)
    for (name, sha256), outcome in memory.outcomes.items():
        if name.endswith(".pgp") and outcome in (versions.APPLIED, versions.REPEAT):
            applied.setdefault(name, sha256)
    return versions.Memory(memory.latest, memory.outcomes, applied)
