"""Engine, sessions and schema migrations.

The schema is owned by Alembic (``serving/store/migrations``); ``migrate(url)`` upgrades a database to
the newest revision, and the service and the CLI call it on start, so a new database needs no manual step.
SQLite gets foreign keys switched on and a busy timeout, so that two writers wait rather than fail.
Engines hide statement parameters in their errors and logs: a failed insert must not write the appeal's
text or the caller's phone into a log line.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, busy_timeout_s: float = 30) -> Engine:
    """``busy_timeout_s``: how long a statement waits for a lock (SQLite) or a pooled connection."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # pragma: no cover - trivial
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # a worker runs up to 40 requests at once (the thread pool): 30 connections before one waits
    return create_engine(url, pool_pre_ping=True, pool_timeout=busy_timeout_s, pool_size=10, max_overflow=20,
                         hide_parameters=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database to the newest schema revision."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def ping(session: Session) -> None:
    """Raise when the database cannot answer (readiness)."""
    session.execute(text("SELECT 1"))
