"""Hotspots: clusters of appeals about the same problem in the same place within a time window.

Rules:
- an appeal is read as its title (twice: titles name the problem and the place densely) and the head
  of its text, normalised, with the public data's masked codes (A市, A3区) removed; features are
  character 2–3-grams, TF-IDF with sublinear tf, fitted on the appeals being clustered;
- appeals are compared only with appeals of the same place (the resolved street or district; appeals
  with none form one block), so a month is never compared all pairs;
- appeals are taken in time order; each joins the open cluster whose centroid is most similar, when
  that cosine similarity is at least ``threshold`` and the cluster's last appeal is at most
  ``window_days`` old; otherwise it opens a cluster. Centroids (not single links) keep a long chain
  of slightly different appeals from merging unrelated problems; clusters whose centroids are at
  least ``merge_threshold`` alike (``PLACE_MERGE`` when they name the same place) and whose time spans
  are within the window are then merged;
- a hotspot is a cluster with at least ``min_size`` appeals. Its title is the member closest to the
  centroid, its key phrases the heaviest jieba words of its members against the whole corpus, its
  place the most common named place (小区, 路, 村 …, or the resolved street when known), its trend the
  change between the first and second half of its life; key phrases are the words most of its titles share;
- hotspots rank by size, then by public support (likes) when known; each names its members' most common
  category at the level asked for (any level of the tree).
``find_hotspots`` is the entry point; the ledger (``serving.services.ledger``), the alerts and the
hotspots page call it on the appeals of a period (``serving.analytics.sources``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize as l2_normalize

from taxonomy.text import normalize

MASKED = re.compile(r"[A-Z]\d*[市区县]|西地省")
PLACE = re.compile(r"[\u4e00-\u9fa5A-Za-z0-9]{2,10}?(小区|花园|新城|家园|花苑|公寓|大厦|广场|大道|路|街|村|社区|学校|"
                   r"中学|小学|幼儿园|医院|公司|市场|项目|车贷)")
PLACE_STEM = 4  # characters of a place name kept before its suffix: the words before are usually not the name
TEXT_HEAD = 300
PLACE_MERGE = 0.25  # two clusters naming the same place merge at this centroid similarity
MIN_COMMON = 100  # an n-gram is boilerplate only when it is in more than this many appeals, however few there are


@dataclass(frozen=True)
class Appeal:
    id: str
    title: str
    text: str
    at: datetime
    place: str | None = None  # resolved street or district name, when known
    likes: int = 0
    category: str | None = None  # the ticket's category path, when known


@dataclass
class Hotspot:
    id: int
    size: int
    ticket_ids: list[str]
    title: str
    key_phrases: list[str]
    place: str | None
    first: datetime
    last: datetime
    trend: str
    weekly: list[int]
    likes: int = 0
    category: str | None = None  # its members' most common category, at the level asked for

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["first"], data["last"] = self.first.isoformat(), self.last.isoformat()
        return data


def document(appeal: Appeal) -> str:
    title = MASKED.sub("", normalize(appeal.title or ""))
    text = MASKED.sub("", normalize(appeal.text or ""))[:TEXT_HEAD]
    return f"{title}。{title}。{text}" if title else text


def vectors(appeals: list[Appeal], min_df: int = 2, max_df: float = 0.2) -> sp.csr_matrix:
    """Hashed character 2–3-gram TF-IDF rows (sublinear tf, smoothed idf, L2), in input order; n-grams in
    fewer than ``min_df`` appeals or more than ``max_df`` of them (boilerplate such as 请问, 领导) are dropped."""
    counts = HashingVectorizer(analyzer="char", ngram_range=(2, 3), n_features=2**21, alternate_sign=False,
                               norm=None, dtype=np.float32).transform([document(a) for a in appeals]).tocsr()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = (df >= min_df) & (df <= max(max_df * counts.shape[0], MIN_COMMON))
    idf = np.where(keep, np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0, 0.0).astype(np.float32)
    counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    counts.eliminate_zeros()
    return l2_normalize(counts)


def cluster(appeals: list[Appeal], threshold: float = 0.35, window_days: int = 30, merge_threshold: float = 0.4,
            chunk: int = 1024, matrix: sp.csr_matrix | None = None) -> list[list[int]]:
    """Member indexes of every cluster (singletons included). Appeals are compared only within their
    place (the resolved street or district; those with none form one block): a hotspot is one place's
    problem, and a month of a city is never compared all pairs — the work grows with the month times the
    busiest place's share of it, not with the square of the month."""
    if not appeals:
        return []
    matrix = vectors(appeals) if matrix is None else matrix
    blocks: dict[str | None, list[int]] = {}
    for i, appeal in enumerate(appeals):
        blocks.setdefault(appeal.place, []).append(i)
    if len(blocks) == 1:
        return _cluster_block(appeals, threshold, window_days, merge_threshold, chunk, matrix)
    out: list[list[int]] = []
    for members in blocks.values():
        found = _cluster_block([appeals[i] for i in members], threshold, window_days, merge_threshold, chunk,
                               matrix[members])
        out += [[members[j] for j in group] for group in found]
    return out


def _cluster_block(appeals: list[Appeal], threshold: float, window_days: int, merge_threshold: float, chunk: int,
                   matrix: sp.csr_matrix) -> list[list[int]]:
    """The clusters of one place's appeals.

    Pass 1, in time order: an appeal's candidate clusters are those of earlier appeals within the
    window that look alike (one sparse product per chunk), and it joins the candidate whose centroid is
    closest, if close enough. Pass 2 merges clusters whose centroids are close and whose time spans
    overlap or lie within the window, which joins the same problem told in other words."""
    order = sorted(range(len(appeals)), key=lambda i: appeals[i].at)
    times = np.array([appeals[i].at.timestamp() for i in order])
    matrix = matrix[order]
    window = window_days * 86400.0
    owner = np.full(len(order), -1)
    sums: list[tuple[np.ndarray, np.ndarray]] = []  # per cluster: sorted columns, summed weights
    unit: list[tuple[np.ndarray, np.ndarray]] = []  # the same, L2-normalised: the centroid
    last: list[float] = []
    first_seen: list[float] = []
    for start in range(0, len(order), chunk):
        stop = min(start + chunk, len(order))
        lo = int(np.searchsorted(times, times[start] - window, side="left"))
        near = (matrix[start:stop] @ matrix[lo:stop].T).tocsr()
        for row in range(start, stop):
            a, b = near.indptr[row - start], near.indptr[row - start + 1]
            cols, vals = near.indices[a:b] + lo, near.data[a:b]
            earlier = (cols < row) & (vals >= threshold * 0.75)
            candidates = {int(owner[j]) for j in cols[earlier]}
            v_cols = matrix.indices[matrix.indptr[row]:matrix.indptr[row + 1]]
            v_vals = matrix.data[matrix.indptr[row]:matrix.indptr[row + 1]]
            best, best_score = -1, threshold
            for c in candidates:
                if times[row] - last[c] <= window:
                    score = _dot(v_cols, v_vals, *unit[c])
                    if score >= best_score:
                        best, best_score = c, score
            if best < 0:
                best = len(sums)
                order_cols = np.argsort(v_cols)
                sums.append((v_cols[order_cols], v_vals[order_cols]))
                unit.append(sums[-1])
                last.append(times[row])
                first_seen.append(times[row])
            else:
                sums[best] = _add(*sums[best], v_cols, v_vals)
                unit[best] = (sums[best][0], sums[best][1] / (np.linalg.norm(sums[best][1]) or 1.0))
                last[best] = times[row]
            owner[row] = best
    groups: dict[int, list[int]] = {}
    for row, c in enumerate(owner):
        groups.setdefault(int(c), []).append(row)
    clusters = [groups[c] for c in range(len(sums))]
    places = [{p for r in g if len(g) >= 2 for p in _place_keys(appeals[order[r]])} for g in clusters]
    merged = _merge(clusters, unit, first_seen, last, merge_threshold, window, places)
    return [[order[r] for r in group] for group in merged]


def _dot(cols_a, vals_a, cols_b, vals_b) -> float:
    _, ia, ib = np.intersect1d(cols_a, cols_b, assume_unique=True, return_indices=True)
    return float(vals_a[ia] @ vals_b[ib])


def _add(cols_a, vals_a, cols_b, vals_b):
    cols = np.concatenate([cols_a, cols_b])
    vals = np.concatenate([vals_a, vals_b])
    unique, inverse = np.unique(cols, return_inverse=True)
    return unique, np.bincount(inverse, weights=vals).astype(np.float32)


def _place_keys(appeal: Appeal) -> set[str]:
    return {appeal.place} if appeal.place else set(_places(appeal.title, short=True))


def _merge(groups, unit, first, last, threshold, window, places) -> list[list[int]]:
    """Union clusters (of two or more) whose spans are within the window and whose centroids are alike:
    ``threshold`` alike, or ``PLACE_MERGE`` alike when they name the same place."""
    big = [c for c, g in enumerate(groups) if len(g) >= 2]
    if len(big) < 2:
        return groups
    width = max(int(unit[c][0].max()) + 1 for c in big)
    rows = [sp.csr_matrix((unit[c][1], unit[c][0], [0, len(unit[c][0])]), shape=(1, width)) for c in big]
    centroids = sp.vstack(rows).tocsr()
    similar = (centroids @ centroids.T).tocoo()
    parent = list(range(len(groups)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, value in zip(similar.row, similar.col, similar.data):
        ca, cb = big[a], big[b]
        alike = value >= threshold or (value >= PLACE_MERGE and places[ca] & places[cb])
        if a < b and alike and first[cb] - last[ca] <= window and first[ca] - last[cb] <= window:
            parent[find(ca)] = find(cb)
    out: dict[int, list[int]] = {}
    for c, group in enumerate(groups):
        out.setdefault(find(c), []).extend(group)
    return [sorted(g) for g in out.values()]


def _weekly(dates: list[datetime]) -> list[int]:
    start = min(dates)
    counts = Counter((d - start).days // 7 for d in dates)
    return [counts.get(w, 0) for w in range(max(counts) + 1)]


def _trend(weekly: list[int]) -> str:
    if len(weekly) < 2:
        return "new"
    half = len(weekly) // 2
    first, second = sum(weekly[:half]) / max(half, 1), sum(weekly[half:]) / max(len(weekly) - half, 1)
    if second > first * 1.5:
        return "rising"
    if second < first / 1.5:
        return "falling"
    return "steady"


def describe(appeals: list[Appeal], groups: list[list[int]], matrix: sp.csr_matrix, min_size: int = 3,
             top: int | None = None, phrases: int = 5, level: int = 1) -> list[Hotspot]:
    """Turn clusters into ranked hotspots with their evidence (``matrix`` from ``vectors``)."""
    big = sorted((g for g in groups if len(g) >= min_size),
                 key=lambda g: (-len(g), -sum(appeals[m].likes for m in g), min(appeals[m].at for m in g)))
    if top:
        big = big[:top]
    hotspots = []
    for rank, members in enumerate(big, start=1):
        rows = matrix[members]
        centroid = np.asarray(rows.mean(axis=0)).ravel()
        closest = appeals[members[int(np.argmax(rows @ centroid))]]
        title = closest.title or normalize(closest.text)[:40]  # phone appeals often have no title
        places = Counter(a.place for a in (appeals[m] for m in members) if a.place)
        if not places:
            places = Counter(p for m in members for p in set(_places(appeals[m].title)))
        dates = [appeals[m].at for m in members]
        weekly = _weekly(dates)
        categories = Counter("/".join(appeals[m].category.split("/")[:level]) for m in members if appeals[m].category)
        hotspots.append(Hotspot(
            id=rank, size=len(members), category=categories.most_common(1)[0][0] if categories else None,
            ticket_ids=[appeals[m].id for m in sorted(members, key=lambda m: appeals[m].at)],
            title=title, key_phrases=_key_phrases([appeals[m] for m in members], phrases),
            place=places.most_common(1)[0][0] if places else None, first=min(dates), last=max(dates),
            trend=_trend(weekly), weekly=weekly, likes=sum(appeals[m].likes for m in members)))
    return hotspots


_ASKING = re.compile(r"^(?:关于|投诉|举报|反映|咨询|请求|请问|建议|希望|要求|再次|强烈|解决|不要让|要让|请)+")


def _places(title: str, short: bool = False) -> list[str]:
    """Named places in a title (小区, 路, 村 …), without the verbs that often run into them (投诉…小区);
    ``short`` keeps only the last characters of the name, to compare places written at different lengths
    (朝阳区南磨房地区和馨家园 and 和馨家园 are one place)."""
    found = []
    for match in PLACE.finditer(MASKED.sub("", normalize(title))):
        suffix = match.group(1)
        stem = _ASKING.sub("", match.group(0)[: -len(suffix)])
        if short:
            stem = stem[-PLACE_STEM:]
        if len(stem) >= 2:
            found.append(stem + suffix)
    return found


def _key_phrases(members: list[Appeal], limit: int) -> list[str]:
    """The words most shared by the members' titles (jieba), longest first among equals."""
    import jieba

    counts = Counter()
    for appeal in members:
        title = MASKED.sub("", normalize(appeal.title or appeal.text[:60]))
        counts.update({w for w in jieba.lcut(title) if len(w) > 1 and not w.isdigit() and not _ASKING.fullmatch(w)})
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))[:limit]]


def find_hotspots(appeals: list[Appeal], threshold: float = 0.35, window_days: int = 30, min_size: int = 3,
                  top: int | None = None, merge_threshold: float = 0.4, level: int = 1) -> list[Hotspot]:
    """``level``: the category level each hotspot names (its members' most common path cut there)."""
    if not appeals:
        return []
    matrix = vectors(appeals)
    groups = cluster(appeals, threshold, window_days, merge_threshold, matrix=matrix)
    return describe(appeals, groups, matrix, min_size, top, level=level)


__all__ = ["Appeal", "Hotspot", "cluster", "describe", "find_hotspots", "document", "vectors"]
