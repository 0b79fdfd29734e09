"""Sign + encrypt and decrypt + verify one exchange file, as the contract's §8 says, through GnuPG.

A protected file is the plain file, unchanged, signed with the sender's key and encrypted to the
receiver's key as **one binary OpenPGP message** whose literal-data file name is the plain name; it
travels under the plain name plus ``.pgp``. The receiver decrypts, verifies the signature against the
sender's *pinned* keys (fingerprints exchanged out of band, each with the validity its agreement gives
it), checks the literal-data name, and only then reads the plain file.

Nothing here is hand-rolled OpenPGP: GnuPG does the cryptography (python-gnupg runs ``gpg``), and the
verdict is read from gpg's machine-readable status lines. Keys live in a GnuPG home folder given by path
(never in the repository); errors name fingerprints or key ids, never key material.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import gnupg  # type: ignore[import-untyped]

PGP_SUFFIX = ".pgp"
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
_KEY_TYPES: dict[str, dict[str, Any]] = {
    # §8: RSA 3072 or Ed25519/Cv25519
    "ed25519": {
        "key_type": "EDDSA",
        "key_curve": "ed25519",
        "subkey_type": "ECDH",
        "subkey_curve": "cv25519",
    },
    "rsa3072": {"key_type": "RSA", "key_length": 3072, "subkey_type": "RSA", "subkey_length": 3072},
}


class ProtectionError(Exception):
    """A file that fails §8's checks: a verdict on that file (quarantine, SG01); the message names the
    file and fingerprints or key ids, never key material."""


class ProtectionSetupError(Exception):
    """OpenPGP cannot work here (a setting, gpg, the home folder, a key is missing or unusable): never a
    verdict on a file — the step fails and judges nothing, so a file is not quarantined for our fault."""


def protected_name(plain_name: str) -> str:
    """The name a protected file travels under: the plain name plus ``.pgp``."""
    return plain_name + PGP_SUFFIX


def plain_name_of(name: str) -> str | None:
    """The plain name inside a ``NAME.pgp``, or None for a name without the suffix."""
    return name[: -len(PGP_SUFFIX)] if name.endswith(PGP_SUFFIX) and len(name) > len(PGP_SUFFIX) else None


def normalize_fingerprint(text: str) -> str:
    """A v4 fingerprint as 40 upper-case hex digits (spaces between groups allowed on input)."""
    value = "".join(text.split()).upper()
    if not _FINGERPRINT.match(value):
        raise ValueError(f"not an OpenPGP fingerprint (40 hex digits): {text!r}")
    return value


@dataclass(frozen=True)
class PinnedKey:
    """A key fingerprint pinned by an agreement, valid from ``valid_from`` to ``valid_until`` inclusive
    (either open). Written ``FINGERPRINT [from YYYY-MM-DD] [until YYYY-MM-DD]``."""

    fingerprint: str
    valid_from: date | None = None
    valid_until: date | None = None

    @classmethod
    def parse(cls, text: str) -> PinnedKey:
        words = text.split()
        if not words:
            raise ValueError("an empty pinned key")
        fingerprint = normalize_fingerprint(words[0])
        bounds: dict[str, date] = {}
        rest = words[1:]
        while rest:
            if len(rest) < 2 or rest[0] not in ("from", "until") or rest[0] in bounds:
                raise ValueError(f"pinned key {text!r}: expected 'FINGERPRINT [from DATE] [until DATE]'")
            try:
                bounds[rest[0]] = date.fromisoformat(rest[1])
            except ValueError:
                raise ValueError(f"pinned key {text!r}: {rest[1]!r} is not a YYYY-MM-DD date") from None
            rest = rest[2:]
        key = cls(fingerprint, bounds.get("from"), bounds.get("until"))
        if key.valid_from and key.valid_until and key.valid_until < key.valid_from:
            raise ValueError(f"pinned key {text!r}: valid until before valid from")
        return key

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    def __str__(self) -> str:
        text = self.fingerprint
        if self.valid_from:
            text += f" from {self.valid_from.isoformat()}"
        if self.valid_until:
            text += f" until {self.valid_until.isoformat()}"
        return text


def pinned_keys(values: Sequence[str]) -> list[PinnedKey]:
    return [PinnedKey.parse(value) for value in values]


def newest_key(keys: Sequence[PinnedKey], day: date, whose: str) -> PinnedKey:
    """The key to encrypt to (or sign with) on ``day``: of those valid that day, the one whose validity
    began last (§8: files are encrypted to the newest key); among equals, the later one listed."""
    valid = [(key.valid_from or date.min, index, key) for index, key in enumerate(keys) if key.valid_on(day)]
    if not valid:
        listed = ", ".join(str(key) for key in keys) or "none"
        raise ProtectionSetupError(f"no key of {whose} is valid on {day.isoformat()} (pinned: {listed})")
    return max(valid)[2]


@dataclass
class _Signature:
    verdict: str  # GOODSIG, BADSIG, ERRSIG, EXPSIG, EXPKEYSIG, REVKEYSIG
    key_id: str
    fingerprint: str | None = None  # the primary key's, when gpg gives it


@dataclass
class _Status:
    """What gpg's status lines said about one decryption."""

    encrypted_to: list[str] = field(default_factory=list)
    decrypted: bool = False
    plaintext_names: list[str] = field(default_factory=list)
    signatures: list[_Signature] = field(default_factory=list)
    integrity_failed: bool = False

    @classmethod
    def parse(cls, text: str) -> _Status:
        status = cls()
        for line in text.splitlines():
            if not line.startswith("[GNUPG:] "):
                continue
            keyword, _, value = line[len("[GNUPG:] ") :].partition(" ")
            parts = value.split()
            if keyword == "ENC_TO" and parts:
                status.encrypted_to.append(parts[0])
            elif keyword == "DECRYPTION_OKAY":
                status.decrypted = True
            elif keyword in ("BADMDC", "DECRYPTION_FAILED"):
                status.integrity_failed = keyword == "BADMDC" or status.integrity_failed
                status.decrypted = False
            elif keyword == "PLAINTEXT":
                status.plaintext_names.append(parts[2] if len(parts) > 2 else "")
            elif keyword == "NEWSIG":
                status.signatures.append(_Signature("", ""))
            elif keyword in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG") and parts:
                if not status.signatures or status.signatures[-1].verdict:
                    status.signatures.append(_Signature("", ""))
                signature = status.signatures[-1]
                signature.verdict, signature.key_id = keyword, parts[0]
                if keyword == "ERRSIG" and len(parts) > 6 and _FINGERPRINT.match(parts[6]):
                    signature.fingerprint = parts[6]
            elif keyword == "VALIDSIG" and status.signatures and len(parts) > 9:
                status.signatures[-1].fingerprint = parts[9]  # the primary key's fingerprint
        return status


@dataclass(frozen=True)
class Verified:
    """A protected file that passed §8's checks: where its plain file is and who signed it."""

    plain: Path
    signer: str
    plain_sha256: str


class OpenPgp:
    """GnuPG on one home folder (``GNUPGHOME``): the holder's secret key(s) and its peers' public keys."""

    def __init__(self, home: Path) -> None:
        if not home.is_dir():
            raise ProtectionSetupError(f"OpenPGP home {home} is not a folder (give the GnuPG home by path)")
        if (
            len(os.fsencode(home / "S.gpg-agent.browser")) > 107
            and not Path(f"/run/user/{os.getuid()}").is_dir()
        ):
            raise ProtectionSetupError(  # gpg-agent's sockets live in the home: a Unix socket path is short
                f"OpenPGP home {home} is too long a path for gpg-agent's sockets (at most 86 bytes here)"
            )
        self.home = home
        try:
            self._gpg: Any = gnupg.GPG(gnupghome=str(home))
        except (OSError, ValueError) as error:
            raise ProtectionSetupError(f"cannot run gpg (install Debian's gnupg): {error}") from None
        self._gpg.encoding = "utf-8"

    # -- keys --------------------------------------------------------------------------------------
    def generate_key(self, name: str, email: str, *, key_type: str = "ed25519", expire: str = "0") -> str:
        """A new key pair without passphrase (the home folder's permissions protect it); its fingerprint."""
        spec = dict(_KEY_TYPES[key_type])
        text = self._gpg.gen_key_input(
            name_real=name, name_email=email, expire_date=expire, no_protection=True, **spec
        )
        result = self._gpg.gen_key(text)
        if not result.fingerprint:
            raise ProtectionSetupError(f"key generation failed in {self.home}: {result.status}")
        return str(result.fingerprint)

    def export_public(self, fingerprint: str) -> str:
        """The public key (ASCII-armored) — what is handed to the other side out of band."""
        armored = str(self._gpg.export_keys(fingerprint))
        if not armored:
            raise ProtectionSetupError(f"no public key {fingerprint} in {self.home}")
        return armored

    def import_public(self, armored: str, expected: str) -> None:
        """Import a peer's public key, refusing it unless its fingerprint is the one pinned."""
        expected = normalize_fingerprint(expected)
        result = self._gpg.import_keys(armored)
        got = {str(f).upper() for f in result.fingerprints}
        if expected not in got:
            raise ProtectionSetupError(
                f"the key offered has fingerprint(s) {', '.join(sorted(got)) or 'none'}, not {expected}"
            )

    def import_pinned(self, armored: str, pinned: Sequence[PinnedKey]) -> list[str]:
        """Import the public key(s) of ``armored`` whose fingerprints are pinned, nothing else; their
        fingerprints. ProtectionSetupError when it holds no pinned key (it names what it holds)."""
        offered = [str(key["fingerprint"]).upper() for key in self._gpg.scan_keys_mem(armored)]
        wanted = [f for f in offered if any(key.fingerprint == f for key in pinned)]
        if not wanted:
            raise ProtectionSetupError(
                f"the key file holds {', '.join(offered) or 'no OpenPGP key'}, none of them pinned"
            )
        for fingerprint in wanted:
            self.import_public(armored, fingerprint)
        return wanted

    def has_public(self, fingerprint: str) -> bool:
        return any(str(k["fingerprint"]).upper() == fingerprint for k in self._gpg.list_keys())

    def has_secret(self, fingerprint: str) -> bool:
        return any(str(k["fingerprint"]).upper() == fingerprint for k in self._gpg.list_keys(True))

    # -- files -------------------------------------------------------------------------------------
    def protect(
        self, plain: Path, target: Path, *, signer: str, recipient: str, name: str | None = None
    ) -> None:
        """Write ``target``: ``plain`` signed by ``signer`` and encrypted to ``recipient`` (fingerprints),
        one binary message whose literal-data name is ``name`` (default ``plain``'s name). Never over
        an existing file."""
        with _temporary(target) as staging, plain.open("rb") as source:
            result = self._gpg.encrypt_file(
                source,
                [recipient],
                sign=signer,
                armor=False,
                always_trust=True,  # trust is the pinning, checked by whoever chose the recipient
                output=str(staging),
                extra_args=["--set-filename", name or plain.name],
            )
            if not result.ok or not staging.exists():
                raise ProtectionSetupError(
                    f"could not sign {name or plain.name} with key {signer} and encrypt it to key "
                    f"{recipient}: "
                    f"{result.status or 'gpg failed'} {result.status_detail or ''}".strip()
                )
            _fsync(staging)
            os.link(staging, target)  # FileExistsError if there: never overwritten

    def check_own_key(self, fingerprint: str) -> None:
        """Sign and encrypt a few bytes with and to ``fingerprint`` and open them again: the secret key is
        here and gpg and its agent work. ProtectionSetupError otherwise, before any file is judged."""
        with tempfile.TemporaryDirectory(prefix="epay-openpgp-") as folder:
            plain = Path(folder) / "check.txt"
            plain.write_bytes(b"epay\n")
            sealed = Path(folder) / "check.txt.pgp"
            try:
                self.protect(plain, sealed, signer=fingerprint, recipient=fingerprint)
                self.unprotect(
                    sealed,
                    Path(folder) / "opened",
                    pinned=[PinnedKey(fingerprint)],
                    day=date.min,
                    sender="us",
                )
            except (ProtectionError, ProtectionSetupError) as error:
                raise ProtectionSetupError(
                    f"our own key {fingerprint} cannot sign and open a file in {self.home}: {error}"
                ) from None

    def unprotect(
        self,
        protected: Path,
        target: Path,
        *,
        pinned: Sequence[PinnedKey],
        day: date,
        sender: str,
    ) -> Verified:
        """Decrypt ``protected`` (``NAME.pgp``) and verify it as §8 says; write the plain file to
        ``target`` only when every check passed. Raises ProtectionError with the first check that
        failed: cannot be decrypted, no valid signature, a key not pinned for ``sender`` or past its
        validity on ``day``, or another name inside."""
        expected = plain_name_of(protected.name)
        if expected is None:
            raise ProtectionError(f"{protected.name}: a protected file's name ends with {PGP_SUFFIX}")
        keys = ", ".join(str(key) for key in pinned) or "none"
        with _temporary(target) as staging, protected.open("rb") as source:
            result = self._gpg.decrypt_file(source, always_trust=True, output=str(staging))
            status = _Status.parse(str(result.stderr or ""))
            problem = _judge(status, expected, pinned, day, sender, keys)
            if problem is not None:
                raise ProtectionError(f"{protected.name}: {problem}")
            signer = next(
                s.fingerprint
                for s in status.signatures
                if s.verdict == "GOODSIG" and s.fingerprint and _pinned_on(pinned, s.fingerprint, day)
            )
            assert signer is not None
            _fsync(staging)
            digest = _sha256(staging)
            os.link(staging, target)
        return Verified(target, signer, digest)


def _judge(
    status: _Status, expected: str, pinned: Sequence[PinnedKey], day: date, sender: str, keys: str
) -> str | None:
    """The first §8 check ``status`` fails, in the contract's order, or None."""
    if not status.decrypted:
        return f"cannot be decrypted: {_undecryptable(status)} (expected from {sender}, pinned: {keys})"
    if not status.signatures:
        return f"carries no signature (expected one by {sender}'s pinned key: {keys})"
    for signature in status.signatures:
        who = signature.fingerprint or f"ID {signature.key_id}"
        if signature.verdict == "BADSIG":
            return f"carries a bad signature by key {who}: altered after it was signed"
        if signature.verdict == "ERRSIG":
            return f"is signed by key {who}, which is not pinned for {sender} (pinned: {keys})"
        if signature.verdict in ("EXPKEYSIG", "EXPSIG"):
            return f"is signed by key {who}, which is past its validity (OpenPGP expiry)"
        if signature.verdict == "REVKEYSIG":
            return f"is signed by key {who}, which is revoked"
        if signature.verdict != "GOODSIG" or not signature.fingerprint:
            return f"carries no valid signature (key {who})"
    for signature in status.signatures:
        assert signature.fingerprint is not None
        known = [key for key in pinned if key.fingerprint == signature.fingerprint]
        if not known:
            return (
                f"is signed by key {signature.fingerprint}, which is not pinned for {sender} (pinned: {keys})"
            )
        if not any(key.valid_on(day) for key in known):
            return (
                f"is signed by key {signature.fingerprint}, past its validity on {day.isoformat()} "
                f"(pinned: {', '.join(str(key) for key in known)})"
            )
    if status.plaintext_names != [expected]:
        inside = ", ".join(repr(name) for name in status.plaintext_names) or "no name"
        return f"names {inside} inside, not {expected!r}"
    return None


def _undecryptable(status: _Status) -> str:
    if status.integrity_failed:
        return "its integrity check failed (altered in transit?)"
    if status.encrypted_to:
        return f"encrypted to key ID(s) {', '.join(status.encrypted_to)}, none of whose secret keys is here"
    if status.signatures or status.plaintext_names:
        return "it is not encrypted (a signed-only or plain OpenPGP message)"
    return "not an encrypted OpenPGP message"


def _pinned_on(pinned: Sequence[PinnedKey], fingerprint: str, day: date) -> bool:
    return any(key.fingerprint == fingerprint and key.valid_on(day) for key in pinned)


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A staging file beside ``target``, removed whatever happens (the result is linked into place).
    A folder that cannot take it is a setup problem, never a verdict on the file (gpg would only say
    it could not decrypt)."""
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK | os.X_OK):
        raise ProtectionSetupError(f"{target.parent} is not a folder that can be written")
    staging = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield staging
    finally:
        staging.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
