"""API authentication: bearer tokens to principals, the first admin, token management.

A token is checked at each request; a request that lasts (a WebSocket following the event
log) watches its token instead (`revocation_watch`): revoking the token calls the watcher at
once, so a revoked token does not keep a live view of the site open.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

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
        self._watchers: dict[int, set[Callable[[], None]]] = {}
        # Revoked by this process: a request authenticated just before the revoke may start
        # watching just after it, and must still be told.
        self._revoked: set[int] = set()

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
        self._revoked.add(token_id)
        watchers = list(self._watchers.get(token_id, ()))
        for on_revoked in watchers:
            on_revoked()
        log.info(
            "token revoked id=%d user=%s open_streams_closed=%d", token_id, info.user, len(watchers)
        )
        return info

    @contextlib.contextmanager
    def revocation_watch(self, token_id: int, on_revoked: Callable[[], None]) -> Iterator[None]:
        """Call `on_revoked` (once, without blocking) when the token is revoked while the
        block runs, or at once if it was revoked since it was checked."""
        watchers = self._watchers.setdefault(token_id, set())
        watchers.add(on_revoked)
        try:
            if token_id in self._revoked:
                on_revoked()
            yield
        finally:
            watchers.discard(on_revoked)
            if not watchers:
                self._watchers.pop(token_id, None)
