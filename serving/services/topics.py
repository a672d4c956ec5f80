"""每月一题 chosen by the analysts: the store side (choosing, listing); the tracking is
``serving.analytics.topics``.

Rules: a topic names a node of the category tree (any level, by label or path) and a month; its title
defaults to the node's label; who chose it and when are kept.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.store.models import MAX_ID, TopicRow
from taxonomy import Taxonomy


class InvalidTopic(ValueError):
    """A topic the service cannot track: names the field."""

    def __init__(self, field: str, reason: str):
        self.field = field
        super().__init__(f"{field}: {reason}")


def choose_topic(session: Session, taxonomy: Taxonomy, month: str, category: str, title: str | None, chosen_by: str,
                 at: datetime) -> TopicRow:
    """Checked before anything is stored: a topic whose month cannot be tracked is never written."""
    year = int(month[:4]) if month[:4].isdigit() else 0
    if not 1900 <= year <= 2998:
        raise InvalidTopic("month", f"{month} is out of range (years 1900–2998)")
    node = taxonomy.categories.find(category)
    if node is None:
        raise InvalidTopic("category", f"{category!r} is not in the category tree")
    topic = TopicRow(month=month, category=node.label, level=node.level, title=title or node.label,
                     chosen_by=chosen_by, chosen_at=at)
    session.add(topic)
    session.commit()
    return topic


def list_topics(session: Session) -> list[TopicRow]:
    return list(session.execute(select(TopicRow).order_by(TopicRow.month, TopicRow.id)).scalars())


def get_topic(session: Session, topic_id: int) -> TopicRow | None:
    return session.get(TopicRow, topic_id) if 0 < topic_id <= MAX_ID else None
