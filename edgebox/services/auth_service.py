"""API authentication: bearer tokens to principals, the first admin, token management."""

from __future__ import annotations

import contextlib
import logging

from edgebox.domain.auth import Principal, Role, TokenInfo, hash_token, new_token
from edgebox.domain.errors import StorageUnavailable
from edgebox.services.clock import Clock
from edgebox.storage.auth_store import AuthStore

log = logging.getLogger(__name__)

# last_used_at is a hint for people, not an audit trail: write it at most this often per token
# so that reads never turn into a write per request.
TOUCH_INTERVAL = 60.0


class AuthService:
    def __init__(self, store: AuthStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._touched: dict[int, float] = {}

    async def authenticate(self, token: str) -> Principal | None:
        principal = await self._store.principal_for(hash_token(token))
        if principal is None:
            return None
        now = self._clock.monotonic()
        last = self._touched.get(principal.token_id)
        if last is None or now - last >= TOUCH_INTERVAL:
            self._touched[principal.token_id] = now
            # A hint for people: a read must not fail because the hint cannot be written.
            with contextlib.suppress(StorageUnavailable):
                await self._store.touch(principal.token_id)
        return principal

    async def bootstrap_admin(self) -> str | None:
        """On the very first start, create user `admin` and return its token (else None)."""
        if await self._store.user_count():
            return None
        token = new_token()
        created = await self._store.create_token(
            username="admin",
            role=Role.ADMIN,
            name="bootstrap",
            token_hash=hash_token(token),
            prefix=token[:8],
            only_if_no_users=True,
        )
        return token if created is not None else None

    async def create_token(
        self, name: str, username: str, role: Role | None
    ) -> tuple[TokenInfo, str]:
        token = new_token()
        info = await self._store.create_token(
            username=username, role=role, name=name, token_hash=hash_token(token), prefix=token[:8]
        )
        assert info is not None
        log.info("token created id=%d user=%s name=%s", info.id, username, name)
        return info, token

    async def list_tokens(self, include_revoked: bool = False) -> list[TokenInfo]:
        return await self._store.list_tokens(include_revoked)

    async def revoke(self, token_id: int) -> TokenInfo:
        info = await self._store.revoke_token(token_id)
        self._touched.pop(token_id, None)
        log.info("token revoked id=%d user=%s", token_id, info.user)
        return info
