"""Peers: the official 同条件 group and the k nearest municipalities on standardised covariates.

The municipal reports compare a municipality with its 同条件 group — same 規模区分 (by 第1号被保険者数) and
same 過疎 status (:func:`official_peer_group`). That group is coarse: 規模区分 3 runs from 10,000 to 50,000
第1号, and a town just over a class boundary has no peers just under it. :func:`nearest_peers` finds the k
municipalities closest on four covariates instead:

* ln(population), ln(第1号被保険者数) — size, on a log scale because the range is 1 : 10,000;
* 第1号被保険者 / population — ageing;
* 過疎 (0/1).

Each covariate is standardised over all municipalities scored in the year (z = (x − mean) / SD, population
SD, ddof = 0; a covariate with no variation contributes 0) and the distance is Euclidean on the z-scores, so
one SD on any covariate weighs the same. The two size measures are strongly correlated, so size counts about
twice — deliberately: size drives both the scoring capacity and the 規模区分. With ``within_prefecture`` the
candidates are the prefecture's municipalities, still on the national z-scores (distances stay comparable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kofukin.memo import by_identity
from kofukin.summary import PEER_KEYS, scored_rows

COVARIATES: tuple[str, ...] = ("log_population", "share_1go", "log_1go", "kaso01")
COVARIATE_JA = {
    "log_population": "人口（対数）",
    "share_1go": "第1号被保険者割合",
    "log_1go": "第1号被保険者数（対数）",
    "kaso01": "過疎",
}


@by_identity
def peer_covariates(panel: pd.DataFrame, year: str) -> pd.DataFrame:
    """The year's scored municipalities with the four covariates and their z-scores (``z_<covariate>``)."""
    rows = scored_rows(panel, year).copy().reset_index(drop=True)
    pop = rows["population"].astype(float)
    n1 = rows["n_insured_1go"].astype(float)
    if (pop <= 0).any() or (n1 <= 0).any():
        raise ValueError("population and 第1号被保険者数 must be positive")
    rows["log_population"] = np.log(pop)
    rows["log_1go"] = np.log(n1)
    rows["share_1go"] = n1 / pop
    rows["kaso01"] = rows["kaso"].astype(bool).astype(float)
    for c in COVARIATES:
        sd = rows[c].std(ddof=0)
        rows[f"z_{c}"] = (rows[c] - rows[c].mean()) / sd if sd > 0 else 0.0
    return rows


_OUT = [
    "lg_code6",
    "name",
    "pref_code",
    "pref_name",
    "population",
    "n_insured_1go",
    "share_1go",
    "size_class",
    "kaso",
    "grand_total",
]


def nearest_peers(
    panel: pd.DataFrame, year: str, lg_code6: str, k: int = 10, within_prefecture: bool = False
) -> pd.DataFrame:
    """The ``k`` municipalities nearest to ``lg_code6`` (itself excluded), with distances.

    Returns ``peer_rank`` (1 = nearest; ties broken by code), the peer's ids and attributes, ``distance``
    (Euclidean on z-scores, see the module docstring) and ``same_official_group`` (same 規模区分 and 過疎).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    cov = peer_covariates(panel, year)
    me = cov[cov["lg_code6"] == lg_code6]
    if me.empty:
        raise ValueError(f"{lg_code6} has no scores in {year}")
    me = me.iloc[0]
    cand = cov[cov["lg_code6"] != lg_code6]
    if within_prefecture:
        cand = cand[cand["pref_code"] == me["pref_code"]]
    z = cand[[f"z_{c}" for c in COVARIATES]].to_numpy(float)
    z0 = me[[f"z_{c}" for c in COVARIATES]].to_numpy(float)
    out = cand[_OUT].copy()
    out["distance"] = np.sqrt(((z - z0) ** 2).sum(axis=1))
    out["same_official_group"] = (cand["size_class"] == me["size_class"]) & (
        cand["kaso"].astype(bool) == bool(me["kaso"])
    )
    out["_d"] = out["distance"].round(9)  # ties (equal up to rounding) go by code, as in the table version
    out = out.sort_values(["_d", "lg_code6"], kind="stable").head(k).drop(columns="_d").reset_index(drop=True)
    out.insert(0, "peer_rank", np.arange(1, len(out) + 1))
    out.insert(0, "fiscal_year", year)
    out.insert(1, "of_lg_code6", lg_code6)
    return out


def nearest_peers_table(panel: pd.DataFrame, year: str, k: int = 10) -> pd.DataFrame:
    """:func:`nearest_peers` for every municipality of the year at once (national candidates; vectorised)."""
    cov = peer_covariates(panel, year)
    z = cov[[f"z_{c}" for c in COVARIATES]].to_numpy(float)
    n = len(cov)
    k_eff = min(k, n - 1)
    if k_eff < 1:
        return pd.DataFrame()
    codes = cov["lg_code6"].to_numpy()
    # Squared distances; the diagonal (self) is pushed out; ties are resolved by code order (rows are sorted).
    order = np.argsort(codes, kind="stable")
    z, codes = z[order], codes[order]
    cov = cov.iloc[order].reset_index(drop=True)
    d2 = np.zeros((n, n))
    for j in range(z.shape[1]):  # one covariate at a time: n × n, not n × n × 4, in memory
        d2 += (z[:, None, j] - z[None, :, j]) ** 2
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(np.round(np.sqrt(d2), 9), axis=1, kind="stable")[:, :k_eff]
    rows = np.repeat(np.arange(n), k_eff)
    cols = nearest.ravel()
    out = cov.iloc[cols][_OUT].reset_index(drop=True)
    out.insert(0, "fiscal_year", year)
    out.insert(1, "of_lg_code6", codes[rows])
    out.insert(2, "peer_rank", np.tile(np.arange(1, k_eff + 1), n))
    out["distance"] = np.sqrt(d2[rows, cols])
    same = (cov["size_class"].to_numpy()[rows] == cov["size_class"].to_numpy()[cols]) & (
        cov["kaso"].astype(bool).to_numpy()[rows] == cov["kaso"].astype(bool).to_numpy()[cols]
    )
    out["same_official_group"] = same
    return out


def official_peer_group(panel: pd.DataFrame, year: str, lg_code6: str) -> pd.DataFrame:
    """The 同条件 group of ``lg_code6`` (same 規模区分 and 過疎 status), itself included and marked.

    Sorted by the grand total, with the competition rank in the group (``rank_peer``) — the ranking the
    municipal reports quote (富良野市: 115/285).
    """
    rows = scored_rows(panel, year)
    me = rows[rows["lg_code6"] == lg_code6]
    if me.empty:
        raise ValueError(f"{lg_code6} has no scores in {year}")
    me = me.iloc[0]
    sel = (rows[PEER_KEYS[0]] == me[PEER_KEYS[0]]) & (
        rows[PEER_KEYS[1]].astype(bool) == bool(me[PEER_KEYS[1]])
    )
    g = rows.loc[sel, [c for c in _OUT if c != "share_1go"] + ["suishin_total", "shien_total"]].copy()
    g["rank_peer"] = g["grand_total"].rank(method="min", ascending=False).astype("int64")
    g["n_peer"] = len(g)
    g["is_self"] = g["lg_code6"] == lg_code6
    return g.sort_values(["rank_peer", "lg_code6"], kind="stable").reset_index(drop=True)


__all__ = [
    "COVARIATES",
    "COVARIATE_JA",
    "nearest_peers",
    "nearest_peers_table",
    "official_peer_group",
    "peer_covariates",
]
