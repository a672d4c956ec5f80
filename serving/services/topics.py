"""每月一题 chosen by the analysts: the store side (choosing, listing); the tracking is
``serving.analytics.topics``.

Rules: a topic names a node of the category tree (any level, by label or path) and a month; its title
defaults to the node's label; who chose it and when are kept.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.store.models import TopicRow
from taxonomy import Taxonomy


class UnknownCategory(ValueError):
    pass


def choose_topic(session: Session, taxonomy: Taxonomy, month: str, category: str, title: str | None, chosen_by: str,
                 at: datetime) -> TopicRow:
    node = taxonomy.categories.find(category)
    if node is None:
        raise UnknownCategory(f"{category!r} is not in the category tree")
    topic = TopicRow(month=month, category=node.label, level=node.level, title=title or node.label,
                     chosen_by=chosen_by, chosen_at=at)
    session.add(topic)
    session.commit()
    return topic


def list_topics(session: Session) -> list[TopicRow]:
    return list(session.execute(select(TopicRow).order_by(TopicRow.month, TopicRow.id)).scalars())


def get_topic(session: Session, topic_id: int) -> TopicRow | None:
    return session.get(TopicRow, topic_id)
