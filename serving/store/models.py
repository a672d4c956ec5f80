"""Tables. Every state change of a ticket is an ``events`` row; ``tickets`` and ``ticket_units`` hold the
current state for fast listing, written in the same transaction as the events that change it (the
workflow, ``serving.domain.workflow.apply``, yields both). Scores and analyses read the events."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger id names no row (the API answers 404, not a database error)

class UTCDateTime(TypeDecorator):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: jiesu stores only timezone-aware timestamps")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class UnitRow(Base):
    __tablename__ = "units"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    district_code: Mapped[str | None] = mapped_column(String(12), index=True)
    department_id: Mapped[str | None] = mapped_column(String(64))
    service: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="profile")  # profile | import
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    merged_into: Mapped[str | None] = mapped_column(String(64))  # a merged unit's successor
    history: Mapped[list] = mapped_column(JSON, default=list)  # {kind: added|renamed|merged, at, …}


class RegistryStateRow(Base):
    """One row: the unit registry's version, raised on every change, so every worker sees the change."""

    __tablename__ = "registry_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class TicketRow(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    received_by: Mapped[str | None] = mapped_column(String(64), index=True)  # the intake key's actor name
    channel: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    caller_name: Mapped[str | None] = mapped_column(String(100))
    caller_phone: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(200))
    category_l1: Mapped[str | None] = mapped_column(String(100), index=True)  # the path's levels, for slicing
    category_l2: Mapped[str | None] = mapped_column(String(200))
    category_l3: Mapped[str | None] = mapped_column(String(300))
    category_confidence: Mapped[float] = mapped_column(Float)
    urgency: Mapped[int] = mapped_column(Integer)
    appeal_type: Mapped[str] = mapped_column(String(8))
    district_id: Mapped[str | None] = mapped_column(String(64))
    street_id: Mapped[str | None] = mapped_column(String(64))
    department_id: Mapped[str | None] = mapped_column(String(64))  # the sector department that owns it
    company_id: Mapped[str | None] = mapped_column(String(64))  # the utility, for its own service
    primary_unit_id: Mapped[str | None] = mapped_column(String(64), index=True)
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolve_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the current primary's 签收
    resolved: Mapped[bool | None] = mapped_column(Boolean)  # the latest 回访; None: not evaluated
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    group_appeal: Mapped[bool] = mapped_column(Boolean, default=False)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("appeal_groups.id"), index=True)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)  # a repeat of that ticket
    long_standing: Mapped[bool] = mapped_column(Boolean, default=False)
    unreasonable: Mapped[bool] = mapped_column(Boolean, default=False)
    classification: Mapped[dict] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    units: Mapped[list["TicketUnitRow"]] = relationship(back_populates="ticket", cascade="all, delete-orphan",
                                                        order_by="TicketUnitRow.id")
    events: Mapped[list["EventRow"]] = relationship(back_populates="ticket", order_by="EventRow.id")

    __mapper_args__ = {"version_id_col": version}  # two concurrent actions: the second fails, never both win


class AppealGroupRow(Base):
    """群体性诉求: appeals about one problem in one place; membership is recorded as events too."""

    __tablename__ = "appeal_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    place_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)


class TopicRow(Base):
    """每月一题: a problem chosen for a month, tracked against the months before and after."""

    __tablename__ = "topics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    category: Mapped[str] = mapped_column(String(300))
    level: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    chosen_by: Mapped[str] = mapped_column(String(80))
    chosen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxRow(Base):
    """A message to a citizen and its delivery: queued → sent, or failed after the last retry."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # reply | survey
    recipient: Mapped[str] = mapped_column(String(40))  # the phone the appeal was filed with
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LedgerEntryRow(Base):
    """城市问题台账: a recurring problem, tracked until it is closed."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(String(200))
    owner_unit_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | closed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    ticket_ids: Mapped[list] = mapped_column(JSON, default=list)
    history: Mapped[list] = mapped_column(JSON, default=list)  # every change: {kind, at, actor, ticket_ids?, …}


class TicketUnitRow(Base):
    __tablename__ = "ticket_units"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(12))  # primary | co | whistled
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    ticket: Mapped[TicketRow] = relationship(back_populates="units")


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    ticket: Mapped[TicketRow] = relationship(back_populates="events")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # names the key; no part of it
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CorrectionRow(Base):
    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(200))
    urgency: Mapped[int] = mapped_column(Integer)
    appeal_type: Mapped[str] = mapped_column(String(8))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    district_id: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(64))
    company: Mapped[str | None] = mapped_column(String(64))  # "none": the reviewer dispatched no company
    predicted: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


Index("ix_ticket_units_unit_active", TicketUnitRow.unit_id, TicketUnitRow.active)
