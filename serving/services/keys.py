"""API keys. A key is ``jsk_<random>``; only a SHA-256 of the whole key is stored (no piece of it), so a
leaked database does not leak keys, and a key is named by its number. Roles: intake, unit (bound to one
unit), reviewer, callback, analyst, admin.

Rules: a key may carry a label (who holds it) and an expiry; an expired or revoked key is refused at
once (every request authenticates against the store); revoking is kept with its time, never deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.domain.workflow import ROLES, Actor
from serving.store.models import MAX_ID, ApiKeyRow, UnitRow


class KeyError_(ValueError):
    pass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_key(session: Session, role: str, unit_id: str | None = None, key: str | None = None,
               label: str | None = None, expires_at: datetime | None = None) -> str:
    """A new key of ``role`` (printed once; only its hash is kept). ``key``: a given secret (the bootstrap
    admin key); creating it again is a no-op."""
    return issue_key(session, role, unit_id, key, label, expires_at)[0]


def issue_key(session: Session, role: str, unit_id: str | None = None, key: str | None = None,
              label: str | None = None, expires_at: datetime | None = None) -> tuple[str, ApiKeyRow]:
    """``create_key``, with the key's row."""
    if role not in ROLES:
        raise KeyError_(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "unit":
        if not unit_id:
            raise KeyError_("a unit key needs --unit")
        if session.get(UnitRow, unit_id) is None:
            raise KeyError_(f"unknown unit {unit_id!r}")
    elif unit_id:
        raise KeyError_("only a unit key is bound to a unit")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise KeyError_("expires_at: give a timezone")
        if expires_at <= _now():
            raise KeyError_("expires_at: must be in the future")
    key = key or f"jsk_{secrets.token_urlsafe(30)}"
    digest = hash_key(key)
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest))
    if row is None:
        row = ApiKeyRow(secret_hash=digest, role=role, unit_id=unit_id, label=label, expires_at=expires_at,
                        created_at=_now())
        session.add(row)
        session.commit()
    return key, row


def authenticate(session: Session, key: str, at: datetime | None = None) -> Actor | None:
    digest = hash_key(key)
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest, ApiKeyRow.revoked.is_(False)))
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    if row.expires_at is not None and row.expires_at <= (at or _now()):
        return None
    return Actor(role=row.role, unit_id=row.unit_id, key_id=row.id)


def list_keys(session: Session, include_revoked: bool = False) -> list[ApiKeyRow]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.id)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked.is_(False))
    return list(session.execute(query).scalars())


def revoke_key(session: Session, key_id: int) -> ApiKeyRow:
    """Revoke key ``key_id``; refused from the next request on. Revoking twice is a no-op."""
    row = session.get(ApiKeyRow, key_id) if 0 < key_id <= MAX_ID else None
    if row is None:
        raise LookupError(f"key {key_id} not found")
    if not row.revoked:
        row.revoked, row.revoked_at = True, _now()
        session.commit()
    return row


def key_record(row: ApiKeyRow, at: datetime | None = None) -> dict:
    at = at or _now()
    state = "revoked" if row.revoked else "expired" if row.expires_at and row.expires_at <= at else "active"
    return {"id": row.id, "role": row.role, "unit_id": row.unit_id, "label": row.label, "created_at": row.created_at,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at, "state": state}
