"""Municipality codes, insurer numbers and name matching.

Municipalities are keyed by their 6-digit 全国地方公共団体コード (``lg_code6``, a string, leading zeros kept).
MHLW's workbook identifies rows by 介護保険 保険者番号, which shares the first five digits with the JIS code for a
single-municipality insurer but carries a different check digit (小野町: insurer ``075226``, JIS ``075221``).
Names are for display and for a last-resort join; they repeat across prefectures (府中市, 伊達市).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import pandas as pd

_JIS_WEIGHTS = (6, 5, 4, 3, 2)


def jis_check_digit(code5: str) -> str:
    """The 総務省 check digit of a 5-digit code: (11 − Σ dᵢ·wᵢ mod 11) mod 10 with weights 6,5,4,3,2."""
    _require_digits(code5, 5)
    s = sum(int(d) * w for d, w in zip(code5, _JIS_WEIGHTS, strict=True))
    return str((11 - s % 11) % 10)


def insurer_check_digit(code5: str) -> str:
    """The 保険者番号 check digit: weights 2,1,2,1,2, digits of products summed, (10 − Σ mod 10) mod 10."""
    _require_digits(code5, 5)
    total = 0
    for d, w in zip(code5, (2, 1, 2, 1, 2), strict=True):
        p = int(d) * w
        total += p // 10 + p % 10
    return str((10 - total % 10) % 10)


def lg_code6_from5(code5: str) -> str:
    return code5 + jis_check_digit(code5)


def insurer_no_from_code5(code5: str) -> str:
    return code5 + insurer_check_digit(code5)


def is_valid_lg_code6(code: str) -> bool:
    return bool(re.fullmatch(r"[0-9]{6}", code)) and jis_check_digit(code[:5]) == code[5]


def is_valid_insurer_no(code: str) -> bool:
    return bool(re.fullmatch(r"[0-9]{6}", code)) and insurer_check_digit(code[:5]) == code[5]


def normalise_code(value: object, width: int = 6) -> str:
    """A code cell as a zero-padded digit string: Excel turns ``011002`` into the number 11002."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = re.sub(r"^([0-9]+)\.0*$", r"\1", text)  # "11002.0" from a CSV export of a numeric column
    if re.fullmatch(r"[0-9]+", text) and len(text) <= width:
        return text.zfill(width)
    return text


_KANA_VARIANTS = str.maketrans({"ヶ": "ケ", "ヵ": "カ", "ｹ": "ケ", "龍": "竜"})


def normalise_name(name: object) -> str:
    """A name for matching: NFKC, no spaces of any width, ヶ/ケ and ヵ/カ unified, 竜/龍 unified."""
    if name is None or name is pd.NA or (isinstance(name, float) and pd.isna(name)):
        return ""
    text = unicodedata.normalize("NFKC", str(name))
    text = re.sub(r"\s+", "", text).translate(_KANA_VARIANTS)
    return unicodedata.normalize("NFKC", text)


def _require_digits(code: str, n: int) -> None:
    if not re.fullmatch(rf"[0-9]{{{n}}}", code):
        raise ValueError(f"expected {n} digits, got {code!r}")


class AmbiguousMunicipality(LookupError):
    """A name that matches several municipalities; the message lists them with their codes."""


class UnknownMunicipality(LookupError):
    """A code or name that matches no municipality."""


def resolve_municipality(query: str, master: pd.DataFrame) -> str:
    """``lg_code6`` for a 5/6-digit JIS code, an insurer number, or a name (上尾市, 埼玉県上尾市).

    Raises :class:`AmbiguousMunicipality` (listing the candidates) or :class:`UnknownMunicipality`.
    """
    q = normalise_name(query)
    if re.fullmatch(r"\d{5,6}", q):
        return _resolve_code(q, master)
    full = master["pref_name"].map(normalise_name) + master["name"].map(normalise_name)
    names = master["name"].map(normalise_name)
    hits = master[(full == q) | (names == q)]
    if hits.empty:
        raise UnknownMunicipality(f"市町村が見つかりません: {query!r}")
    if len(hits) > 1:
        raise AmbiguousMunicipality(
            f"{query!r} は複数の市町村に該当します。コードか都道府県名付きで指定してください: "
            + ", ".join(f"{r.pref_name}{r.name} ({r.lg_code6})" for r in hits.itertuples())
        )
    return str(hits["lg_code6"].iloc[0])


def _resolve_code(q: str, master: pd.DataFrame) -> str:
    if len(q) == 6 and q in set(master["lg_code6"]):
        return q
    hit = master.loc[master["lg_code5"] == q[:5], "lg_code6"]
    if len(q) == 6 and not is_valid_insurer_no(q):
        hit = hit.iloc[0:0]
    if hit.empty:
        raise UnknownMunicipality(
            f"コード {q} に該当する市町村がありません (JIS コード5桁/6桁または保険者番号)"
        )
    return str(hit.iloc[0])


def candidates(names: Iterable[str], master: pd.DataFrame) -> pd.DataFrame:
    """Master rows whose normalised name is one of ``names`` (for error messages)."""
    wanted = {normalise_name(n) for n in names}
    return master[master["name"].map(normalise_name).isin(wanted)]
