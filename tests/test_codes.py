"""Municipality codes, insurer numbers and name matching (``kofukin.codes``): properties and known values.

Property tests run over every 5-digit code or over the real master (sampled by hypothesis); the known values
are real: 小野町 is insurer 075226 but JIS 075221, 上尾市 is 112194, 府中市 exists in 東京都 and 広島県.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofukin import reference
from kofukin.codes import (
    AmbiguousMunicipality,
    UnknownMunicipality,
    candidates,
    insurer_check_digit,
    insurer_no_from_code5,
    is_valid_insurer_no,
    is_valid_lg_code6,
    jis_check_digit,
    lg_code6_from5,
    normalise_code,
    normalise_name,
    resolve_municipality,
)

CODE5 = st.text(alphabet="0123456789", min_size=5, max_size=5)
SPACES = st.sampled_from([" ", "\u3000", "\t", ""])  # half-width, full-width (U+3000), tab, none


@cache
def _master() -> pd.DataFrame:
    return reference.load_master()


@cache
def _unique_names() -> frozenset[str]:
    names = _master()["name"].map(normalise_name)
    return frozenset(names[~names.duplicated(keep=False)])


ROWS = st.integers(min_value=0, max_value=1740).map(lambda i: _master().iloc[i])


# --- check digits --------------------------------------------------------------------------------------


def test_every_master_code_has_a_valid_jis_check_digit() -> None:
    codes = list(_master()["lg_code6"]) + list(reference.load_prefectures()["lg_code6"])
    assert len(codes) == 1788
    bad = [c for c in codes if jis_check_digit(c[:5]) != c[5] or not is_valid_lg_code6(c)]
    assert bad == []
    # Remainders 0 (→ check 1) and 1 (→ check 0) both occur, which singles out this variant of the rule.
    remainders = [sum(int(d) * w for d, w in zip(c[:5], (6, 5, 4, 3, 2), strict=True)) % 11 for c in codes]
    assert (remainders.count(0), remainders.count(1)) == (168, 167)


def test_known_codes() -> None:
    assert jis_check_digit("01100") == "2" and lg_code6_from5("01100") == "011002"
    assert lg_code6_from5("11219") == "112194"
    assert lg_code6_from5("07522") == "075221"  # 小野町, JIS
    assert insurer_check_digit("07522") == "6"
    assert insurer_no_from_code5("07522") == "075226"  # 小野町, 保険者番号
    assert is_valid_insurer_no("075226") and not is_valid_lg_code6("075226")
    assert is_valid_lg_code6("075221") and not is_valid_insurer_no("075221")
    assert insurer_check_digit("11219") == "3"


@given(CODE5)
def test_jis_check_digit_makes_a_valid_code_and_only_one(code5: str) -> None:
    check = jis_check_digit(code5)
    assert len(check) == 1 and check in "0123456789"
    assert is_valid_lg_code6(code5 + check)
    assert [d for d in "0123456789" if is_valid_lg_code6(code5 + d)] == [check]


@given(CODE5)
def test_insurer_number_is_valid_and_only_one(code5: str) -> None:
    number = insurer_no_from_code5(code5)
    assert number[:5] == code5 and is_valid_insurer_no(number)
    assert [d for d in "0123456789" if is_valid_insurer_no(code5 + d)] == [number[5]]


@given(CODE5, st.integers(min_value=0, max_value=4), st.integers(min_value=1, max_value=9))
def test_insurer_check_digit_catches_every_single_digit_error(code5: str, pos: int, delta: int) -> None:
    """Weights 2,1,2,1,2 with digit sums (Luhn): doubling permutes 0–9, so one wrong digit always shows."""
    wrong = code5[:pos] + str((int(code5[pos]) + delta) % 10) + code5[pos + 1 :]
    assert insurer_check_digit(wrong) != insurer_check_digit(code5)


@given(st.text(max_size=7).filter(lambda s: not (len(s) == 5 and s.isascii() and s.isdigit())))
def test_check_digits_reject_anything_but_five_ascii_digits(text: str) -> None:
    if len(text) == 5 and text.isdigit():  # non-ASCII digits: see the xfail test below
        return
    with pytest.raises(ValueError):
        jis_check_digit(text)
    with pytest.raises(ValueError):
        insurer_check_digit(text)


def test_full_width_digits_are_rejected_by_check_digit_functions() -> None:
    with pytest.raises(ValueError):
        jis_check_digit("０１１００")  # would otherwise give lg_code6_from5 = "０１１００2"


# --- normalise_code ------------------------------------------------------------------------------------


def test_normalise_code_known_values() -> None:
    assert normalise_code(11002) == "011002"  # Excel turned 011002 into a number
    assert normalise_code(11002.0) == "011002"
    assert normalise_code(1100.0) == "001100"
    assert normalise_code(1100.0, width=5) == "01100"  # 北海道's 5-digit 01100 read as a float
    assert normalise_code("011002") == "011002"
    assert normalise_code(" 11002 ") == "011002"
    assert normalise_code("０１１００２") == "011002"  # full-width
    assert normalise_code(75226) == "075226"
    assert normalise_code(None) == "" and normalise_code(float("nan")) == ""
    assert normalise_code("1234567") == "1234567"  # longer than the width: left alone
    assert normalise_code("大雪地区") == "大雪地区"


@given(st.integers(min_value=0, max_value=999_999))
def test_normalise_code_restores_leading_zeros(n: int) -> None:
    expected = f"{n:06d}"
    assert normalise_code(n) == expected
    assert normalise_code(float(n)) == expected
    assert normalise_code(str(n)) == expected
    assert normalise_code(expected) == expected
    full_width = str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert normalise_code(full_width) == expected
    assert normalise_code(normalise_code(n)) == expected  # idempotent


@given(st.integers(min_value=0, max_value=99_999))
def test_normalise_code_width_five(n: int) -> None:
    assert normalise_code(n, width=5) == f"{n:05d}"
    assert normalise_code(float(n), width=5) == f"{n:05d}"


def test_normalise_code_treats_pd_na_as_missing() -> None:
    assert normalise_code(pd.NA) == ""
    assert normalise_name(pd.NA) == ""


# --- normalise_name ------------------------------------------------------------------------------------


def test_normalise_name_known_values() -> None:
    assert normalise_name("関ヶ原町") == normalise_name("関ケ原町") == "関ケ原町"
    assert normalise_name("岐阜県　関ヶ原町") == "岐阜県関ケ原町"  # full-width space
    assert normalise_name(" 上尾市 ") == "上尾市"
    assert normalise_name("ｾｷｶﾞﾊﾗﾁｮｳ") == "セキガハラチョウ"  # half-width kana as in the master
    assert normalise_name("龍ケ崎市") == normalise_name("竜ケ崎市")
    assert normalise_name(None) == "" and normalise_name(float("nan")) == ""


def test_normalise_name_is_idempotent_on_exotic_input() -> None:
    for text in ("ｹ ﾞ", "t¨"):
        assert normalise_name(normalise_name(text)) == normalise_name(text)


# Characters of real names and their variants: the master's names (kanji, kana), ヶ/ヵ/龍, ASCII, spaces.
NAME_TEXT = st.text(
    alphabet=st.sampled_from(sorted(set("".join(_master()["name"])) | set("ヶヵ龍 \u3000\tAz09-"))),
    max_size=12,
)


@given(NAME_TEXT)
def test_normalise_name_is_idempotent(text: str) -> None:
    once = normalise_name(text)
    assert normalise_name(once) == once
    assert not any(ch.isspace() for ch in once)


@settings(max_examples=200)
@given(ROWS, SPACES, SPACES, st.booleans())
def test_normalise_name_ignores_spaces_and_ke_variants(row: pd.Series, s1: str, s2: str, ke: bool) -> None:
    name = row["name"].replace("ケ", "ヶ") if ke else row["name"]
    assert normalise_name(f"{s1}{row['pref_name']}{s2}{name}{s1}") == normalise_name(
        row["pref_name"] + row["name"]
    )


# --- resolve_municipality ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ROWS)
def test_resolve_every_form_of_a_master_row(row: pd.Series) -> None:
    master = _master()
    code6, code5 = row["lg_code6"], row["lg_code5"]
    assert resolve_municipality(code6, master) == code6
    assert resolve_municipality(code5, master) == code6
    assert resolve_municipality(insurer_no_from_code5(code5), master) == code6
    assert resolve_municipality(row["pref_name"] + row["name"], master) == code6
    assert resolve_municipality(f"{row['pref_name']}\u3000{row['name']}", master) == code6
    if normalise_name(row["name"]) in _unique_names():
        assert resolve_municipality(row["name"], master) == code6
    else:
        with pytest.raises(AmbiguousMunicipality):
            resolve_municipality(row["name"], master)


def test_resolve_known_municipalities() -> None:
    master = _master()
    for query in ("上尾市", "埼玉県上尾市", "埼玉県 上尾市", "11219", "112194", "112193", "１１２１９４"):
        assert resolve_municipality(query, master) == "112194", query
    assert resolve_municipality("075226", master) == "075221"  # 小野町 by insurer number
    assert resolve_municipality("075221", master) == "075221"
    assert resolve_municipality("07522", master) == "075221"
    assert resolve_municipality("関ヶ原町", master) == "213624"
    assert resolve_municipality("東京都府中市", master) == "132063"
    assert resolve_municipality("広島県府中市", master) == "342084"


def test_ambiguous_name_lists_every_candidate_with_its_code() -> None:
    with pytest.raises(AmbiguousMunicipality) as err:
        resolve_municipality("府中市", _master())
    message = str(err.value)
    assert "東京都府中市 (132063)" in message and "広島県府中市 (342084)" in message
    with pytest.raises(AmbiguousMunicipality, match=r"北海道伊達市 \(012335\).*福島県伊達市 \(072133\)"):
        resolve_municipality("伊達市", _master())
    assert isinstance(err.value, LookupError)


@pytest.mark.parametrize(
    "query", ["存在しない市", "上尾", "999999", "99999", "112195", "010006", "11219X", ""]
)
def test_unknown_queries_raise(query: str) -> None:
    with pytest.raises(UnknownMunicipality):
        resolve_municipality(query, _master())


def test_candidates_lists_namesakes() -> None:
    got = candidates(["府中市", "関ヶ原町"], _master())
    assert sorted(got["lg_code6"]) == ["132063", "213624", "342084"]
