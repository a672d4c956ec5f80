"""Group appeals and repeats at intake (the rules are in ``taxonomy.groups``).

Rules:
- a group is one problem in one place: a new ticket is compared only with tickets of the same place
  (street or district, ``place``) and the same problem as the router read it — the same level-2
  category where both have one, else the same first level. Words alone do not separate problems in one
  place: the place's names dominate short appeals (a noise complaint and a parking complaint from one
  compound share more character n-grams than two wordings of the noise complaint);
- among those, it joins the group whose members most like it (the mean of its ``TOP_MEMBERS`` best
  similarities) reach ``similarity``; else it forms a group with the most similar ungrouped ticket
  that reaches it; else it stays alone;
- a repeat is the same caller (phone) with the same words (normalised) within ``duplicate_window_hours``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.store.models import AppealGroupRow, TicketRow
from taxonomy.groups import GroupRules
from taxonomy.text import normalize

MEMBERS_COMPARED = 50  # the latest members of a group stand for it; older ones add little and cost time
TOP_MEMBERS = 3  # an appeal is compared with the group's members most like it: a group may word one problem several ways
_HASHER = HashingVectorizer(analyzer="char", ngram_range=(2, 3), n_features=2**20, alternate_sign=False,
                            binary=True, norm="l2")


def text_key(title: str, text: str) -> str:
    return hashlib.sha256(normalize(f"{title}\x1f{text}").encode()).hexdigest()


def find_repeat(session: Session, rules: GroupRules, phone: str | None, title: str, text: str,
                received_at: datetime) -> TicketRow | None:
    """The first ticket this caller opened with the same words within the window, if any."""
    if not phone or rules.duplicate_window_hours <= 0:
        return None
    since = received_at - timedelta(hours=rules.duplicate_window_hours)
    key = text_key(title, text)
    candidates = session.execute(select(TicketRow).where(
        TicketRow.caller_phone == phone, TicketRow.received_at >= since, TicketRow.received_at <= received_at,
        TicketRow.duplicate_of.is_(None)).order_by(TicketRow.id)).scalars()
    return next((t for t in candidates if text_key(t.title, t.text) == key), None)


def _similarity(text: str, others: list[str]) -> np.ndarray:
    matrix = _HASHER.transform([text, *others])
    return np.asarray((matrix[1:] @ matrix[0].T).todense()).ravel()


def place_of(ticket: TicketRow, rules: GroupRules) -> str | None:
    return ticket.street_id if rules.place == "street" else ticket.district_id


def same_problem(ticket: TicketRow):
    """The condition on other tickets: the same level-2 category where the ticket has one (tickets read
    only to the first level match on it), else the same first level."""
    if ticket.category_l2:
        return (TicketRow.category_l2 == ticket.category_l2) | (
            TicketRow.category_l2.is_(None) & (TicketRow.category_l1 == ticket.category_l1))
    return TicketRow.category_l1 == ticket.category_l1


def assign_group(session: Session, rules: GroupRules, ticket: TicketRow) -> AppealGroupRow | None:
    """Put a new ticket into its group (joining or forming one); None when it stays alone."""
    place = place_of(ticket, rules)
    if place is None or not ticket.category_l1:  # no place, or not classified (received without a model)
        return None
    since = ticket.received_at - timedelta(days=rules.window_days)
    body = f"{ticket.title}。{ticket.text}"
    groups = session.execute(select(AppealGroupRow).where(
        AppealGroupRow.place_id == place, AppealGroupRow.last_at >= since)).scalars().all()
    best, best_score = None, rules.similarity
    for group in groups:
        members = session.execute(select(TicketRow.title, TicketRow.text).where(
            TicketRow.group_id == group.id, same_problem(ticket)).order_by(TicketRow.id.desc())
            .limit(MEMBERS_COMPARED)).all()
        if members:
            similar = np.sort(_similarity(body, [f"{t}。{x}" for t, x in members]))[-TOP_MEMBERS:]
            score = float(similar.mean())
            if score >= best_score:
                best, best_score = group, score
    if best is None:
        place_column = TicketRow.street_id if rules.place == "street" else TicketRow.district_id
        alone = session.execute(select(TicketRow).where(
            place_column == place, same_problem(ticket), TicketRow.group_id.is_(None), TicketRow.duplicate_of.is_(None),
            TicketRow.id != ticket.id, TicketRow.received_at >= since,
            TicketRow.received_at <= ticket.received_at).order_by(TicketRow.id.desc()).limit(500)).scalars().all()
        if not alone:
            return None
        scores = _similarity(body, [f"{t.title}。{t.text}" for t in alone])
        if scores.max() < rules.similarity:
            return None
        partner = alone[int(scores.argmax())]
        best = AppealGroupRow(place_id=place, title=partner.title or partner.text[:40], opened_at=partner.received_at,
                              last_at=partner.received_at, size=1)
        session.add(best)
        session.flush()
        partner.group_id = best.id
    ticket.group_id = best.id
    best.size += 1
    best.last_at = max(best.last_at, ticket.received_at)
    return best
