"""Persistence: SQLAlchemy 2 models, sessions, and Alembic migrations (SQLite by default, PostgreSQL supported)."""
