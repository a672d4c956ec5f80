"""Alembic environment: runs against the engine handed over in ``config.attributes['engine']``."""

from __future__ import annotations

from alembic import context

from serving.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # run from the alembic command line: build the engine from settings
    from serving.settings import Settings
    from serving.store.db import make_engine

    engine = make_engine(Settings().database_url)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
