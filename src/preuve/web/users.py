"""Console users, their browser sessions and API tokens, in the results store.

Passwords are hashed with argon2id (argon2-cffi); session secrets and API tokens are 256-bit random values of which
only the SHA-256 is stored (they are not guessable, so a fast hash suffices and lookups stay one indexed query).
Wrong passwords count per account: after ``max_failed_logins`` in a row the account refuses every password for
``lockout``, whoever types it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from preuve.store.db import Store
from preuve.store.models import ApiToken, Client, WebSession, WebUser

MIN_PASSWORD_LENGTH = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()  # argon2id with the library's current defaults (memory-hard)
# Verified when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Role(StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    CLIENT = "client"


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    client: str | None  # the client a client user is bound to

    @property
    def is_provider(self) -> bool:
        return self.role in (Role.ADMIN, Role.TECHNICIAN)

    def may_see(self, client_id: str) -> bool:
        return self.is_provider or self.client == client_id


@dataclass(frozen=True)
class UserInfo(User):
    created_at: datetime
    locked_until: datetime | None
    tokens: int
    sessions: int


class LoginOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # unknown name or wrong password: the same answer for both
    LOCKED = "locked"


@dataclass(frozen=True)
class Login:
    outcome: LoginOutcome
    user: User | None = None
    locked_until: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _user(row: WebUser) -> User:
    if row.id is None:  # pragma: no cover - rows read from the database always have an id
        raise RuntimeError("user row without id")
    return User(id=row.id, name=row.name, role=Role(row.role), client=row.client_id)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")


def add_user(store: Store, name: str, role: Role | str, password: str, client: str | None = None) -> User:
    """A new user; UserError for a bad name, a taken name, a client role without a known client, a short password."""
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}: use admin, technician or client") from None
    if not _NAME.match(name):
        raise UserError(f"{name!r} is not a user name: letters, digits, '.', '_', '@' or '-', up to 64 characters")
    if role is Role.CLIENT and not client:
        raise UserError("a client user needs --client CLIENT: the one client whose status they may see")
    if role is not Role.CLIENT and client:
        raise UserError(f"--client only applies to client users; a {role.value} sees every client")
    check_password(password)
    hashed = _hasher.hash(password)
    with store.session(write=True) as session:
        if client is not None and session.get(Client, client) is None:
            known = ", ".join(sorted(c.id for c in session.exec(select(Client)).all())) or "none yet"
            raise UserError(
                f"unknown client {client!r} (known: {known}); a client appears once its job file was loaded "
                "(by the daemon, or by any preuve command reading the configuration)"
            )
        if session.exec(select(WebUser).where(col(WebUser.name) == name)).one_or_none() is not None:
            raise UserError(f"a user named {name!r} already exists: `preuve users reset {name}` changes its password")
        row = WebUser(name=name, role=role.value, client_id=client, password_hash=hashed)
        session.add(row)
        session.flush()
        return _user(row)


def _row(session: Session, name: str) -> WebUser:
    row = session.exec(select(WebUser).where(col(WebUser.name) == name)).one_or_none()
    if row is None:
        raise UserError(f"no user named {name!r} (`preuve users list` shows them)")
    return row


def remove_user(store: Store, name: str) -> None:
    """Remove a user with their sessions and tokens: they are logged out at their next request."""
    with store.session(write=True) as session:
        row = _row(session, name)
        session.connection().execute(delete(WebSession).where(col(WebSession.user_id) == row.id))
        session.connection().execute(delete(ApiToken).where(col(ApiToken.user_id) == row.id))
        session.delete(row)


def reset_password(store: Store, name: str, password: str) -> None:
    """A new password; unlocks the account and ends its browser sessions (API tokens stay valid)."""
    check_password(password)
    hashed = _hasher.hash(password)
    with store.session(write=True) as session:
        row = _row(session, name)
        row.password_hash = hashed
        row.failed_logins = 0
        row.locked_until = None
        row.updated_at = _now()
        session.connection().execute(delete(WebSession).where(col(WebSession.user_id) == row.id))


def new_token(store: Store, name: str) -> str:
    """A new API token for ``name``; the only time it is seen (the store keeps its SHA-256)."""
    token = "preuve_" + secrets.token_urlsafe(32)
    with store.session(write=True) as session:
        row = _row(session, name)
        assert row.id is not None
        session.add(ApiToken(user_id=row.id, token_hash=digest(token), created_at=_now()))
    return token


def revoke_tokens(store: Store, name: str) -> int:
    with store.session(write=True) as session:
        row = _row(session, name)
        return int(session.connection().execute(delete(ApiToken).where(col(ApiToken.user_id) == row.id)).rowcount)


def list_users(store: Store) -> list[UserInfo]:
    now = _now()
    with store.session() as session:
        rows = session.exec(select(WebUser).order_by(col(WebUser.name))).all()
        tokens = session.exec(select(ApiToken.user_id)).all()
        sessions = session.exec(select(WebSession.user_id).where(col(WebSession.expires_at) > now)).all()
        return [
            UserInfo(
                **vars(_user(row)),
                created_at=row.created_at,
                locked_until=row.locked_until if row.locked_until and row.locked_until > now else None,
                tokens=sum(1 for t in tokens if t == row.id),
                sessions=sum(1 for s in sessions if s == row.id),
            )
            for row in rows
        ]


def authenticate(store: Store, name: str, password: str, *, max_failed: int, lockout: timedelta) -> Login:
    """Check a login. A locked account answers LOCKED even to the right password (a guesser learns nothing)."""
    now = _now()
    with store.session(write=True) as session:
        row = session.exec(select(WebUser).where(col(WebUser.name) == name)).one_or_none()
        if row is None:
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY_HASH, password)
            return Login(LoginOutcome.WRONG)
        if row.locked_until is not None and row.locked_until > now:
            return Login(LoginOutcome.LOCKED, locked_until=row.locked_until)
        try:
            _hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            row.failed_logins += 1
            if row.failed_logins >= max_failed:
                row.locked_until = now + lockout
                row.failed_logins = 0
                return Login(LoginOutcome.LOCKED, locked_until=row.locked_until)
            return Login(LoginOutcome.WRONG)
        row.failed_logins = 0
        row.locked_until = None
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        return Login(LoginOutcome.OK, user=_user(row))


def start_session(store: Store, user: User, lifetime: timedelta, address: str = "") -> str:
    """A new browser session for ``user``; returns the cookie's secret (stored only as its SHA-256)."""
    secret = secrets.token_urlsafe(32)
    now = _now()
    with store.session(write=True) as session:
        # Expired sessions of everyone are swept here: logins are rare, so this costs nothing.
        session.connection().execute(delete(WebSession).where(col(WebSession.expires_at) <= now))
        session.add(
            WebSession(id=digest(secret), user_id=user.id, created_at=now, expires_at=now + lifetime, address=address)
        )
    return secret


def end_session(store: Store, secret: str) -> None:
    with store.connection(write=True) as connection:
        connection.execute(delete(WebSession).where(col(WebSession.id) == digest(secret)))


def session_user(store: Store, secret: str) -> User | None:
    """The user of a live session, or None (unknown, expired, or the user was removed)."""
    with store.session() as session:
        found = session.exec(
            select(WebUser)
            .join(WebSession, col(WebSession.user_id) == col(WebUser.id))
            .where(col(WebSession.id) == digest(secret), col(WebSession.expires_at) > _now())
        ).one_or_none()
        return _user(found) if found is not None else None


TOKEN_USE_RESOLUTION = timedelta(minutes=1)  # last_used_at is rewritten at most this often (no write per request)


def token_user(store: Store, token: str) -> User | None:
    hashed = digest(token)
    now = _now()
    with store.session() as session:
        pair = session.exec(
            select(WebUser, ApiToken)
            .join(ApiToken, col(ApiToken.user_id) == col(WebUser.id))
            .where(col(ApiToken.token_hash) == hashed)
        ).one_or_none()
    if pair is None:
        return None
    user, row = pair
    if row.last_used_at is None or row.last_used_at < now - TOKEN_USE_RESOLUTION:
        with store.connection(write=True) as connection:
            connection.execute(update(ApiToken).where(col(ApiToken.token_hash) == hashed).values(last_used_at=now))
    return _user(user)
