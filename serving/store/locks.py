"""Work done once per deployment, however many worker processes serve it.

Rules this module implements:
- ``deployment_lock(engine, name)`` serialises a step across the processes of one deployment (schema
  migration, syncing the unit registry, seeding the bootstrap key at start): a PostgreSQL session-level
  advisory lock, held on its own connection for the duration of the block; SQLite is one process, so a
  lock within the process is enough;
- ``Leader(engine, name)`` elects one process for background work (the 督办 sweep, the outbox's
  deliveries): ``held()`` takes the PostgreSQL advisory lock without waiting and keeps it on its own
  connection while the process lives, so exactly one process of the deployment holds it; when that process dies its connection closes, the
  lock is released and another process's next ``held()`` takes over. A lost connection gives up the
  lead and is retried on the next call;
- lock ids are derived from the name, stable across processes and versions (not Python's ``hash``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

logger = logging.getLogger("jiesu")
_LOCAL: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def lock_id(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"jiesu:{name}".encode()).digest()[:8], "big", signed=True)


def is_postgres(bind) -> bool:
    """Whether an engine or connection speaks to PostgreSQL (advisory locks, ``SKIP LOCKED``)."""
    return bind.dialect.name == "postgresql"


@contextmanager
def deployment_lock(engine: Engine, name: str) -> Iterator[None]:
    if not is_postgres(engine):
        with _LOCAL_GUARD:
            lock = _LOCAL.setdefault(name, threading.Lock())
        with lock:
            yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(name)})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id(name)})
            connection.commit()


class Leader:
    def __init__(self, engine: Engine, name: str):
        self.engine, self.name = engine, name
        self._connection: Connection | None = None

    def held(self) -> bool:
        """Whether this process leads now (taking the lead if nobody holds it)."""
        if not is_postgres(self.engine):
            return True
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
                got = self._connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                               {"k": lock_id(self.name)}).scalar()
                self._connection.commit()
                if not got:
                    self._drop()
                    return False
                logger.info("this process leads %s", self.name)
                return True
            self._connection.execute(text("SELECT 1")).scalar()  # the lock lives as long as this connection
            self._connection.commit()
            return True
        except Exception:  # noqa: BLE001 - a lost connection loses the lead; the next call tries again
            logger.warning("lost the lead of %s; retrying on the next sweep", self.name)
            self._drop()
            return False

    def _drop(self) -> None:
        if self._connection is not None:
            try:  # close the database session itself (not back to the pool): that releases the lock
                self._connection.invalidate()
                self._connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._connection = None

    def release(self) -> None:
        self._drop()


def transaction_lock(session: Session, name: str) -> None:
    """Serialise one step across concurrent transactions until the current one ends (PostgreSQL: a
    transaction-level advisory lock). SQLite needs none: its writers take turns on the whole database,
    and the callers have written before they ask."""
    if is_postgres(session.get_bind()):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(name)})
