"""Group appeals and repeats at intake (the rules are in ``taxonomy.groups``).

Rules:
- a group is one problem in one place: a new ticket is compared only with tickets of the same place
  (street or district, ``place``) and the same problem as the router read it — the same level-2
  category where both have one, else the same first level. Words alone do not separate problems in one
  place: the place's names dominate short appeals (a noise complaint and a parking complaint from one
  compound share more character n-grams than two wordings of the noise complaint);
- among those, it joins the group whose members most like it (the mean of its ``TOP_MEMBERS`` best
  similarities) reach ``similarity``; else it forms a group with the ungrouped tickets that reach it;
  else it stays alone. Ungrouped tickets that reach it join with it either way, earlier or later
  received (within ``window_days`` on both sides): appeals arrive out of order, and one problem in one
  place is one group;
- concurrent intakes at one place take turns on the group step, and a group's size is the count of
  its members, never a running sum;
- a repeat is the same caller (phone) with the same words (normalised) within ``duplicate_window_hours``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.store.locks import transaction_lock
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
                received_at: datetime, exclude_id: int | None = None) -> TicketRow | None:
    """The first ticket this caller opened with the same words within the window, if any (other than
    ``exclude_id``, the new ticket itself)."""
    if not phone or rules.duplicate_window_hours <= 0:
        return None
    since = received_at - timedelta(hours=rules.duplicate_window_hours)
    key = text_key(title, text)
    candidates = session.execute(select(TicketRow).where(
        TicketRow.caller_phone == phone, TicketRow.received_at >= since, TicketRow.received_at <= received_at,
        TicketRow.duplicate_of.is_(None), TicketRow.id != (exclude_id or 0)).order_by(TicketRow.id)).scalars()
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
    """Put a new ticket into its group (joining or forming one), with the ungrouped tickets of its place
    and problem that are like it; None when it stays alone. Concurrent intakes at one place take turns
    (``transaction_lock``), and the group's size is counted from its members."""
    place = place_of(ticket, rules)
    if place is None or not ticket.category_l1:  # no place, or not classified (received without a model)
        return None
    transaction_lock(session, f"group:{place}")
    window = timedelta(days=rules.window_days)
    since, until = ticket.received_at - window, ticket.received_at + window
    body = f"{ticket.title}。{ticket.text}"
    groups = session.execute(select(AppealGroupRow).where(
        AppealGroupRow.place_id == place, AppealGroupRow.last_at >= since,
        AppealGroupRow.opened_at <= until)).scalars().all()
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
    # ungrouped tickets like this one, earlier or later: appeals are not always received in order
    place_column = TicketRow.street_id if rules.place == "street" else TicketRow.district_id
    alone = session.execute(select(TicketRow).where(
        place_column == place, same_problem(ticket), TicketRow.group_id.is_(None), TicketRow.duplicate_of.is_(None),
        TicketRow.id != ticket.id, TicketRow.received_at >= since,
        TicketRow.received_at <= until).order_by(TicketRow.id.desc()).limit(500)).scalars().all()
    partners = []
    if alone:
        scores = _similarity(body, [f"{t.title}。{t.text}" for t in alone])
        partners = [t for t, score in zip(alone, scores) if score >= rules.similarity]
    if best is None:
        if not partners:
            return None
        first = min(partners, key=lambda t: (t.received_at, t.id))
        best = AppealGroupRow(place_id=place, title=first.title or first.text[:40], opened_at=first.received_at,
                              last_at=first.received_at, size=0)
        session.add(best)
        session.flush()
    joining = [*partners, ticket]
    for member in joining:
        member.group_id = best.id
    best.opened_at = min(best.opened_at, *(t.received_at for t in joining))
    best.last_at = max(best.last_at, *(t.received_at for t in joining))
    session.flush()
    best.size = session.scalar(select(func.count()).select_from(TicketRow).where(TicketRow.group_id == best.id))
    return best
