"""API keys of the service: created with a random token shown once, stored as its SHA-256 only.

A token reads ``rk_<key_id>_<secret>``: the key id is public (it names the key in
lists and in the audit log), the secret is 32 random bytes in URL-safe base64.
Only ``sha256(token)`` reaches the database, so a copy of the store opens nothing.
Roles (:data:`KEY_ROLES`): ``upstream`` scores payloads, ``teacher`` sees one
school, ``analyst`` reads summaries and every score, ``admin`` does everything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select, update

from risk.store.db import Store, StoreError
from risk.store.models import KEY_ROLES, ApiKey, Score
from risk.store.runs import utc_now

__all__ = ["KeyRecord", "NewKey", "create_key", "find_key", "list_keys", "revoke_key", "school_has_scores",
           "token_hash"]

TOKEN_PREFIX = "rk_"


@dataclass(frozen=True)
class KeyRecord:
    """A stored key without its secret."""

    key_id: str
    role: str
    school_id: str | None
    label: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``token`` exists only here; the store keeps its hash."""

    record: KeyRecord
    token: str


def token_hash(token: str) -> str:
    """Hex SHA-256 of the token's UTF-8 bytes (64 characters)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_key(store: Store, role: str, *, school_id: str | None = None, label: str = "",
               known_schools: Collection[str] = ()) -> NewKey:
    """Create a key; returns it with its token (show the token once: it cannot be recovered).

    A teacher key's school must be known: in ``known_schools`` (the validated schools
    table, which lists a school before its first scoring run) or named by a stored score.

    Raises
    ------
    StoreError
        When the role is unknown, a teacher key has no school, another role has one,
        or the teacher's school is not known.
    """
    if role not in KEY_ROLES:
        raise StoreError(f"Key role {role!r} is not one of {', '.join(KEY_ROLES)}.")
    if (role == "teacher") != bool(school_id):
        raise StoreError("A teacher key needs --school (its school id), and only a teacher key takes one.")
    if school_id and school_id not in known_schools and not school_has_scores(store, school_id):
        raise StoreError(f"There is no school {school_id!r}: the validated schools table does not list it and no "
                         "stored score names it; check the id.")
    key_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(key_id=key_id, token_sha256=token_hash(token), role=role, school_id=school_id or None,
                 label=label.strip()[:200], created_at=utc_now(), revoked_at=None)
    with store.writing(f"key {key_id}") as conn:
        conn.execute(ApiKey.__table__.insert(), [_values(row)])
    return NewKey(_record(row), token)


def school_has_scores(store: Store, school_id: str) -> bool:
    """Whether any stored score names ``school_id`` (one indexed look-up)."""
    s = Score.__table__.c
    with store.engine.connect() as conn:
        return conn.execute(select(s.school_id).where(s.school_id == school_id).limit(1)).first() is not None


def find_key(store: Store, token: str) -> KeyRecord | None:
    """The key whose token this is (revoked ones included), or None when no key has it."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    k = ApiKey.__table__.c
    with store.engine.connect() as conn:
        row = conn.execute(select(ApiKey.__table__).where(k.token_sha256 == token_hash(token))).first()
    return None if row is None else KeyRecord(row.key_id, row.role, row.school_id, row.label, row.created_at,
                                              row.revoked_at)


def list_keys(store: Store) -> list[KeyRecord]:
    """Every key, oldest first (no secrets: the store has none)."""
    k = ApiKey.__table__.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(ApiKey.__table__).order_by(k.created_at, k.key_id)).all()
    return [KeyRecord(r.key_id, r.role, r.school_id, r.label, r.created_at, r.revoked_at) for r in rows]


def revoke_key(store: Store, key_id: str) -> KeyRecord:
    """Revoke a key (kept for the audit log's sake); revoking twice keeps the first time.

    Raises
    ------
    StoreError
        When there is no key ``key_id``.
    """
    k = ApiKey.__table__.c
    with store.writing(f"the revocation of key {key_id}") as conn:
        conn.execute(update(ApiKey.__table__).where(k.key_id == key_id, k.revoked_at.is_(None))
                     .values(revoked_at=utc_now()))
        row = conn.execute(select(ApiKey.__table__).where(k.key_id == key_id)).first()
    if row is None:
        raise StoreError(f"There is no key {key_id!r}; `risk keys list` shows the keys.")
    return KeyRecord(row.key_id, row.role, row.school_id, row.label, row.created_at, row.revoked_at)


def _values(row: ApiKey) -> dict:
    return {c.name: getattr(row, c.name) for c in ApiKey.__table__.columns}


def _record(row: ApiKey) -> KeyRecord:
    return KeyRecord(row.key_id, row.role, row.school_id, row.label, row.created_at, row.revoked_at)
