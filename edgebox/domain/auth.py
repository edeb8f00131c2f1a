"""Roles, what each may do, and API tokens (random secrets stored only as hashes)."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "ebx_"  # noqa: S105 (a marker that makes leaked tokens easy to scan for)


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything, including users and tokens
    OPERATOR = "operator"  # act on machines
    VIEWER = "viewer"  # read


class Permission(enum.IntEnum):
    READ = 1
    OPERATE = 2
    ADMIN = 3


_GRANTS = {
    Role.VIEWER: Permission.READ,
    Role.OPERATOR: Permission.OPERATE,
    Role.ADMIN: Permission.ADMIN,
}


def allows(role: Role, needed: Permission) -> bool:
    return _GRANTS[role] >= needed


def new_token() -> str:
    """256 random bits. They are hashed with plain SHA-256: with that much entropy a slow
    password hash buys nothing, and the check stays cheap on every request."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    created_at: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user behind a token."""

    user: str
    role: Role
    token_id: int


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    user: str
    role: Role
    prefix: str  # the first characters, so a person can tell tokens apart
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
