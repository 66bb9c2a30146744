"""Web users and their sessions: argon2 password hashes, lock-out, server-side sessions with a CSRF token.

A user has one of the service's roles (:data:`yibao.service.auth.ROLES`); an ``institution`` user is
bound to its ``fixmedins_code`` and an ``insured`` user to its own ``psn_no``. Passwords are kept only
as argon2id hashes. After :data:`MAX_FAILURES` wrong passwords in a row the account is locked for
:data:`LOCK_MINUTES` minutes (a right password does not open it early). A session is a random token in
a cookie; the store keeps only its SHA-256, with the session's CSRF token and expiry, so logging out
or expiring ends it on the server, and a stolen database gives no usable cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, DateTime, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from yibao.errors import Problem
from yibao.service import registry  # the person must exist
from yibao.service.auth import ROLES, Principal
from yibao.service.errors import ServiceError
from yibao.store.base import Base

MAX_FAILURES = 5
LOCK_MINUTES = 15
SESSION_HOURS = 8  # one working day; idle sessions end sooner (SESSION_IDLE_MINUTES)
SESSION_IDLE_MINUTES = 30
MIN_PASSWORD = 10
USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,40}$")
_HASHER = PasswordHasher()  # argon2id, the library's defaults (RFC 9106 low-memory profile)


@cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist costs as long as a real check: no timing oracle."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class WebUser(Base):
    __tablename__ = "web_users"

    username: Mapped[str] = mapped_column(String(40), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    fixmedins_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    psn_no: Mapped[str | None] = mapped_column(String(40), nullable=True)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(40), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


@dataclass(frozen=True)
class WebPrincipal(Principal):
    """A logged-in web user: the service's Principal plus the insured person's own psn_no."""

    psn_no: str | None = None
    csrf: str = ""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_new_user(username: str, password: str, role: str, fixmedins_code: str | None,
                   psn_no: str | None) -> None:
    problems = []
    if not USERNAME.match(username):
        problems.append(Problem("WEB001", "username", "用户名须为 2–40 个字母、数字或 _ . -"))
    if role not in ROLES:
        problems.append(Problem("WEB002", "role", f"未知角色 {role!r}; 可用: {', '.join(ROLES)}"))
    if (role == "institution") != bool(fixmedins_code):
        problems.append(Problem("WEB003", "fixmedins_code", "机构用户须且只有机构用户须给出机构编码 fixmedins_code"))
    if (role == "insured") != bool(psn_no):
        problems.append(Problem("WEB004", "psn_no", "参保人用户须且只有参保人用户须给出人员编号 psn_no"))
    if len(password) < MIN_PASSWORD:
        problems.append(Problem("WEB005", "password", f"密码至少 {MIN_PASSWORD} 个字符"))
    if problems:
        raise ServiceError(problems)


def add_user(session: Session, username: str, password: str, role: str, *, fixmedins_code: str | None = None,
             psn_no: str | None = None, now: datetime | None = None) -> WebUser:
    check_new_user(username, password, role, fixmedins_code, psn_no)
    if session.get(WebUser, username) is not None:
        raise ServiceError(Problem("WEB006", "username", f"用户 {username} 已存在"))
    if psn_no is not None:
        registry.person(session, psn_no)
    user = WebUser(username=username, password_hash=_HASHER.hash(password), role=role,
                   fixmedins_code=fixmedins_code or None, psn_no=psn_no or None, failed_count=0,
                   locked_until=None, disabled=False, created_at=now or datetime.now())
    session.add(user)
    return user


@dataclass(frozen=True)
class LoginResult:
    user: WebUser | None
    outcome: str  # ok | bad | locked | just_locked
    locked_until: datetime | None = None


def check_password(session: Session, username: str, password: str, now: datetime) -> LoginResult:
    """Verify and count: the caller commits (failures must be recorded even though login fails)."""
    user = session.get(WebUser, username) if USERNAME.match(username or "") else None
    if user is None or user.disabled:
        _verify(_dummy_hash(), password)
        return LoginResult(None, "bad")
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(user, "locked", user.locked_until)
    if not _verify(user.password_hash, password):
        user.failed_count = (user.failed_count or 0) + 1
        if user.failed_count >= MAX_FAILURES:
            user.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            user.failed_count = 0
            return LoginResult(user, "just_locked", user.locked_until)
        return LoginResult(user, "bad")
    user.failed_count, user.locked_until = 0, None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return LoginResult(user, "ok")


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def open_session(session: Session, username: str, now: datetime) -> tuple[str, str]:
    """A new session for the user: (cookie token, CSRF token). Expired sessions are swept here."""
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(WebSession(token_sha256=token_hash(token), username=username, csrf=csrf, created_at=now,
                           seen_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
    return token, csrf


def principal_of(session: Session, token: str | None, now: datetime) -> WebPrincipal | None:
    """The session's user if the token is live (not expired, not idle too long, user not disabled)."""
    if not token:
        return None
    row = session.get(WebSession, token_hash(token))
    if row is None or row.expires_at <= now or row.seen_at + timedelta(minutes=SESSION_IDLE_MINUTES) <= now:
        return None
    user = session.get(WebUser, row.username)
    if user is None or user.disabled:
        return None
    if now - row.seen_at > timedelta(minutes=1):  # keep the idle clock without a write per request
        row.seen_at = now
    return WebPrincipal(user.username, user.role, user.fixmedins_code, psn_no=user.psn_no, csrf=row.csrf)


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_sha256 == token_hash(token)))


def same_token(given: str | None, expected: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def users(session: Session) -> list[WebUser]:
    return list(session.scalars(select(WebUser).order_by(WebUser.username)))
