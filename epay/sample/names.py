"""Common Algerian first and last names, and a vectorised draw of subscriber names.

Each table entry is (usual spelling, spelling with accents or apostrophes as some clerks type it,
Arabic script, relative frequency). The billing system (AT) keeps the name as it was typed: mostly
Latin script in a few casings, sometimes with accents, rarely in Arabic script only. The post office
(AP) keeps the holder's Latin name in its own form, ``LAST FIRST`` in the A-field alphabet.

Normalisation (``epay.formats.text.normalize_text``) runs once per table entry, never per subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from epay.formats.text import normalize_text

NameEntry = tuple[str, str, str, int]

FIRST_NAMES: Final[tuple[NameEntry, ...]] = (
    ("Mohamed", "Mohamed", "محمد", 12),
    ("Ahmed", "Ahmed", "أحمد", 4),
    ("Abdelkader", "Abdelkader", "عبد القادر", 4),
    ("Ali", "Ali", "علي", 3),
    ("Omar", "Omar", "عمر", 2),
    ("Youcef", "Youcef", "يوسف", 3),
    ("Karim", "Karim", "كريم", 2),
    ("Samir", "Samir", "سمير", 2),
    ("Yacine", "Yacine", "ياسين", 3),
    ("Mohamed Amine", "Mohamed Amine", "محمد أمين", 3),
    ("Said", "Saïd", "سعيد", 2),
    ("Rachid", "Rachid", "رشيد", 2),
    ("Mourad", "Mourad", "مراد", 2),
    ("Nabil", "Nabil", "نبيل", 2),
    ("Hocine", "Hocine", "حسين", 2),
    ("Lyes", "Lyès", "إلياس", 2),
    ("Cherif", "Chérif", "شريف", 1),
    ("Djamel", "Djamel", "جمال", 2),
    ("Mustapha", "Mustapha", "مصطفى", 2),
    ("Redha", "Rédha", "رضا", 1),
    ("Bilal", "Bilal", "بلال", 2),
    ("Khaled", "Khaled", "خالد", 2),
    ("Noureddine", "Noureddine", "نور الدين", 2),
    ("Abderrahmane", "Abderrahmane", "عبد الرحمن", 2),
    ("Smail", "Smaïl", "إسماعيل", 1),
    ("M'hamed", "M'hamed", "امحمد", 1),
    ("Farid", "Farid", "فريد", 2),
    ("Walid", "Walid", "وليد", 2),
    ("Fatima", "Fatima", "فاطمة", 6),
    ("Fatima Zohra", "Fatima Zohra", "فاطمة الزهراء", 4),
    ("Amina", "Amina", "أمينة", 3),
    ("Khadidja", "Khadidja", "خديجة", 3),
    ("Kheira", "Kheira", "خيرة", 2),
    ("Nadia", "Nadia", "نادية", 2),
    ("Samira", "Samira", "سميرة", 2),
    ("Lynda", "Lynda", "ليندة", 1),
    ("Meriem", "Meriem", "مريم", 3),
    ("Sarah", "Sarah", "سارة", 2),
    ("Imane", "Imane", "إيمان", 2),
    ("Yasmine", "Yasmine", "ياسمين", 2),
    ("Nour El Houda", "Nour El Houda", "نور الهدى", 2),
    ("Soumia", "Soumia", "سمية", 2),
    ("Djamila", "Djamila", "جميلة", 2),
    ("Malika", "Malika", "مليكة", 2),
    ("Aicha", "Aïcha", "عائشة", 3),
    ("Chaima", "Chaïma", "شيماء", 2),
    ("Feriel", "Fériel", "فريال", 1),
    ("Hanane", "Hanane", "حنان", 2),
    ("Ouarda", "Ouarda", "وردة", 1),
    ("Zoulikha", "Zoulikha", "زليخة", 1),
)

LAST_NAMES: Final[tuple[NameEntry, ...]] = (
    ("Benali", "Benali", "بن علي", 4),
    ("Ait Said", "Aït Saïd", "آيت سعيد", 2),
    ("Boudiaf", "Boudiaf", "بوضياف", 2),
    ("Belkacem", "Belkacem", "بلقاسم", 3),
    ("Benmoussa", "Benmoussa", "بن موسى", 2),
    ("Bouzid", "Bouzid", "بوزيد", 2),
    ("Hamidi", "Hamidi", "حميدي", 2),
    ("Kaci", "Kaci", "قاسي", 2),
    ("Meziane", "Meziane", "مزيان", 2),
    ("Cherif", "Chérif", "شريف", 2),
    ("Larbi", "Larbi", "العربي", 2),
    ("Saadi", "Saâdi", "سعدي", 2),
    ("Mansouri", "Mansouri", "منصوري", 2),
    ("Ben M'hidi", "Ben M'hidi", "بن مهيدي", 1),
    ("Haddad", "Haddad", "حداد", 3),
    ("Khelifi", "Khelifi", "خليفي", 2),
    ("Brahimi", "Brahimi", "براهيمي", 3),
    ("Zerrouki", "Zerrouki", "زروقي", 1),
    ("Bensalah", "Bensalah", "بن صالح", 2),
    ("Amrani", "Amrani", "عمراني", 2),
    ("Touati", "Touati", "تواتي", 2),
    ("Benyahia", "Benyahia", "بن يحيى", 2),
    ("Lounis", "Lounis", "لونيس", 1),
    ("Ait Ahmed", "Aït Ahmed", "آيت أحمد", 1),
    ("Rahmani", "Rahmani", "رحماني", 2),
    ("Slimani", "Slimani", "سليماني", 2),
    ("Taleb", "Taleb", "طالب", 2),
    ("Messaoudi", "Messaoudi", "مسعودي", 2),
    ("Belaid", "Belaïd", "بلعيد", 2),
    ("Dahmani", "Dahmani", "دحماني", 2),
    ("Ferhat", "Ferhat", "فرحات", 1),
    ("Ould Ali", "Ould Ali", "ولد علي", 1),
    ("Kadri", "Kadri", "قادري", 2),
    ("Benaissa", "Benaïssa", "بن عيسى", 2),
    ("Nait Ali", "Naït Ali", "نايت علي", 1),
    ("Belhadj", "Belhadj", "بلحاج", 2),
    ("Yahiaoui", "Yahiaoui", "يحياوي", 2),
    ("Chaouch", "Chaouch", "شاوش", 1),
    ("Hamadouche", "Hamadouche", "حمادوش", 1),
    ("Benchikh", "Benchikh", "بن الشيخ", 1),
    ("Mokrani", "Mokrani", "مقراني", 1),
    ("Lakhdari", "Lakhdari", "لخضاري", 1),
    ("Derradji", "Derradji", "دراجي", 1),
    ("Bouchareb", "Bouchareb", "بوشارب", 1),
    ("Ghezali", "Ghezali", "غزالي", 1),
    ("Medjdoub", "Medjdoub", "مجدوب", 1),
)

# How the billing system spells a Latin name: shares of "First Last", "LAST FIRST", "Last First".
BILLING_FORMATS: Final = (0.70, 0.20, 0.10)
ACCENTED_SHARE: Final = 0.5  # when a name has an accented spelling, how often it is typed that way


@dataclass(frozen=True)
class _Table:
    plain: pa.Array
    written: pa.Array
    arabic: pa.Array
    poste: pa.Array  # AP's form: the written spelling in the A-field alphabet
    weights: npt.NDArray[np.float64]


def _table(entries: tuple[NameEntry, ...]) -> _Table:
    weights = np.array([w for *_, w in entries], dtype=np.float64)
    return _Table(
        plain=pa.array([e[0] for e in entries], pa.string()),
        written=pa.array([e[1] for e in entries], pa.string()),
        arabic=pa.array([e[2] for e in entries], pa.string()),
        poste=pa.array([normalize_text(e[1], 60) for e in entries], pa.string()),
        weights=weights / weights.sum(),
    )


_FIRST: Final = _table(FIRST_NAMES)
_LAST: Final = _table(LAST_NAMES)


@dataclass(frozen=True)
class Names:
    """Names of n people: as the billing system holds them and as the post office holds them."""

    billing: pa.Array  # UTF-8, 1..60 characters
    poste: pa.Array  # ASCII A-field alphabet, "LAST FIRST", at most 60 characters
    arabic_only: npt.NDArray[np.bool_]


def _spelled(rng: np.random.Generator, table: _Table, picks: npt.NDArray[np.int64]) -> pa.Array:
    accented = pa.array(rng.random(picks.size) < ACCENTED_SHARE)
    return pc.if_else(accented, table.written.take(picks), table.plain.take(picks))


def _join(left: pa.Array, right: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(left, right, " ")


def draw_names(rng: np.random.Generator, n: int, arabic_only: npt.NDArray[np.bool_]) -> Names:
    """Draw n names; the rows flagged ``arabic_only`` are written only in Arabic script at AT."""
    first = rng.choice(len(FIRST_NAMES), n, p=_FIRST.weights)
    last = rng.choice(len(LAST_NAMES), n, p=_LAST.weights)
    first_text, last_text = _spelled(rng, _FIRST, first), _spelled(rng, _LAST, last)
    layout = rng.choice(len(BILLING_FORMATS), n, p=BILLING_FORMATS)
    latin = pc.if_else(
        pa.array(layout == 0),
        _join(first_text, last_text),
        pc.if_else(
            pa.array(layout == 1),
            pc.utf8_upper(_join(last_text, first_text)),
            _join(last_text, first_text),
        ),
    )
    arabic = _join(_FIRST.arabic.take(first), _LAST.arabic.take(last))
    return Names(
        billing=pc.if_else(pa.array(arabic_only), arabic, latin),
        poste=_join(_LAST.poste.take(last), _FIRST.poste.take(first)),
        arabic_only=arabic_only,
    )
