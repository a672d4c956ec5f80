"""API keys: ``jsk_<prefix>_<secret>``; only a SHA-256 of the whole key is stored, so a leaked database
does not leak keys. Roles: intake, unit (bound to one unit), reviewer, callback, analyst, admin."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain.workflow import ROLES, Actor
from serving.store.models import ApiKeyRow, UnitRow


class KeyError_(ValueError):
    pass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, role: str, unit_id: str | None = None, key: str | None = None) -> str:
    if role not in ROLES:
        raise KeyError_(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "unit":
        if not unit_id:
            raise KeyError_("a unit key needs --unit")
        if session.get(UnitRow, unit_id) is None:
            raise KeyError_(f"unknown unit {unit_id!r}")
    elif unit_id:
        raise KeyError_("only a unit key is bound to a unit")
    key = key or f"jsk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"
    digest = hash_key(key)
    if session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest)) is None:
        session.add(ApiKeyRow(prefix=key[:12], secret_hash=digest, role=role, unit_id=unit_id,
                              created_at=datetime.now(timezone.utc)))
        session.commit()
    return key


def authenticate(session: Session, key: str) -> Actor | None:
    digest = hash_key(key)
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest, ApiKeyRow.revoked.is_(False)))
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    return Actor(role=row.role, unit_id=row.unit_id, key_id=row.id)
