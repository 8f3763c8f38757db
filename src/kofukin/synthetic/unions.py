"""広域連合 of the synthetic panel: the real 大雪地区広域連合 and 37 invented 広域連合.

MHLW's file has about 38 rows for 広域連合 / 一部事務組合 insurers (1,797 − 18 header rows − 1,741), and about
206 municipalities belong to one. Only one membership is known here (大雪地区広域連合: 東川町, 美瑛町,
東神楽町, ``unions.csv``), so the other 37 are invented — and named ``合成第NN広域連合（県名）`` so that nobody
takes them for real ones. Each is a run of neighbouring small municipalities: same prefecture, consecutive
codes, 町村 (or a 市 with fewer than 10,000 elderly), never one of the municipalities with published figures.

Union insurer numbers are ``pref_code + "8" + NN + check digit`` (保険者番号 rule). No municipality code has
an 8 in the third digit, so they never collide with a member's own number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kofukin.codes import insurer_check_digit
from kofukin.reference import load_master, load_prefectures, load_unions
from kofukin.synthetic.rng import stream

N_UNIONS = 38
N_MEMBERS = 206
MIN_SIZE = 3
UNION_COLUMNS = ["union_insurer_no", "union_name", "pref_code", "member_lg_code6", "member_name"]


def union_insurer_no(pref_code: str, k: int) -> str:
    code5 = f"{pref_code}8{k:02d}"
    return code5 + insurer_check_digit(code5)


def synthetic_union_name(index: int, pref_name: str) -> str:
    return f"合成第{index:02d}広域連合（{pref_name}）"


def generate_unions(seed: int, attributes_r8: pd.DataFrame, exclude: set[str]) -> pd.DataFrame:
    """Memberships, one row per member: ``union_insurer_no, union_name, pref_code, member_lg_code6, member_name``.

    ``attributes_r8`` gives the R8 size class (to keep unions to small municipalities); ``exclude`` lists
    municipalities that must stay single insurers (those with published figures).
    """
    master = load_master().sort_values("lg_code6").reset_index(drop=True)
    real = load_unions()
    used = set(real["member_lg_code6"]) | set(exclude)
    size_class = attributes_r8.set_index("lg_code6")["size_class"]
    small = master["kind"].isin(["machi", "mura"]) | (
        (master["kind"] == "shi") & (master["lg_code6"].map(size_class) <= 2)
    )
    eligible = small & ~master["lg_code6"].isin(used)
    rng = stream(seed, "unions")
    placed = _place(rng, master, eligible.to_numpy(), _sizes(rng))
    return _number(master, real, placed)


def _sizes(rng: np.random.Generator) -> list[int]:
    """37 sizes of at least 3 adding up to 206 − 3 (大雪's three), largest first."""
    n_syn, total = N_UNIONS - 1, N_MEMBERS - 3
    extra = rng.multinomial(total - MIN_SIZE * n_syn, np.full(n_syn, 1 / n_syn))
    return sorted((MIN_SIZE + extra).tolist(), reverse=True)


def _place(
    rng: np.random.Generator, master: pd.DataFrame, eligible: np.ndarray, sizes: list[int]
) -> list[list[int]]:
    """Runs of consecutive eligible municipalities (row positions), prefecture drawn by its eligible count."""
    free = eligible.copy()
    pref = master["pref_code"].to_numpy()
    runs: list[list[int]] = []
    for size in sizes:
        starts = _starts(free, pref, size)
        if not starts:
            raise RuntimeError(f"no room for a union of {size} members")
        by_pref = pd.Series(starts).groupby(pref[starts]).apply(list)
        weight = np.array([free[pref == p].sum() for p in by_pref.index], dtype=float)
        p = by_pref.index[rng.choice(len(by_pref), p=weight / weight.sum())]
        start = by_pref[p][rng.integers(len(by_pref[p]))]
        members = list(range(start, start + size))
        free[members] = False
        runs.append(members)
    return runs


def _starts(free: np.ndarray, pref: np.ndarray, size: int) -> list[int]:
    """Positions where ``size`` consecutive municipalities of one prefecture are all still free."""
    if len(free) < size:
        return []
    run = np.concatenate([[0], np.cumsum(free)])
    i = np.arange(len(free) - size + 1)
    ok = (run[i + size] - run[i] == size) & (pref[i] == pref[i + size - 1])
    return np.flatnonzero(ok).tolist()


def _number(master: pd.DataFrame, real: pd.DataFrame, runs: list[list[int]]) -> pd.DataFrame:
    """Insurer numbers per prefecture (real union first) and global 合成第NN numbering in code order."""
    pref_names = load_prefectures().set_index("pref_code")["pref_name"]
    rows = []
    for name, g in real.groupby("union_name", sort=False):
        rows.append(
            (g["pref_code"].iloc[0], g["member_lg_code6"].min(), name, list(g["member_lg_code6"]), True)
        )
    for run in runs:
        codes = master["lg_code6"].iloc[run].tolist()
        rows.append((master["pref_code"].iloc[run[0]], codes[0], None, codes, False))
    rows.sort(key=lambda r: (r[0], not r[4], r[1]))
    names = master.set_index("lg_code6")["name"]
    out, per_pref, syn_index = [], {}, 0
    for pref_code, _, name, members, is_real in rows:
        per_pref[pref_code] = per_pref.get(pref_code, 0) + 1
        if not is_real:
            syn_index += 1
            name = synthetic_union_name(syn_index, pref_names[pref_code])
        number = union_insurer_no(pref_code, per_pref[pref_code])
        out += [(number, name, pref_code, code, names[code]) for code in sorted(members)]
    df = pd.DataFrame(out, columns=UNION_COLUMNS)
    assert not set(df["union_insurer_no"].str[:5]) & set(master["lg_code5"]), "union numbers collide"
    return df
