"""Users and API tokens. Tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

import sqlite3

from edgebox.domain.auth import Principal, Role, TokenInfo
from edgebox.domain.errors import Conflict, NotFound
from edgebox.domain.models import NewEvent
from edgebox.storage.database import Database
from edgebox.storage.writer import Tx

_TOKENINFO_COLUMNS = (
    "t.id, t.name, u.username, u.role, t.prefix, t.created_at, t.last_used_at, t.revoked_at"
)


def _token_info(row: sqlite3.Row) -> TokenInfo:
    return TokenInfo(row[0], row[1], row[2], Role(row[3]), row[4], row[5], row[6], row[7])


class AuthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def user_count(self) -> int:
        row = await self._db.fetchone("SELECT count(*) FROM users")
        return int(row[0]) if row else 0

    async def principal_for(self, token_hash: str) -> Principal | None:
        row = await self._db.fetchone(
            "SELECT u.username, u.role, t.id FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
            (token_hash,),
        )
        return Principal(row[0], Role(row[1]), row[2]) if row else None

    async def list_tokens(self, include_revoked: bool = False) -> list[TokenInfo]:
        where = "" if include_revoked else "WHERE t.revoked_at IS NULL"
        rows = await self._db.fetchall(
            f"SELECT {_TOKENINFO_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id "
            f"{where} ORDER BY t.id"
        )
        return [_token_info(r) for r in rows]

    async def create_token(
        self,
        *,
        username: str,
        role: Role | None,
        name: str,
        token_hash: str,
        prefix: str,
        only_if_no_users: bool = False,
    ) -> TokenInfo | None:
        """Create a token for `username`, creating the user with `role` if it is new.

        With `only_if_no_users`, nothing happens (None) when any user exists: the first-start
        admin is created once even if two starts race.
        """

        def job(tx: Tx) -> TokenInfo | None:
            conn = tx.conn
            if only_if_no_users and conn.execute("SELECT count(*) FROM users").fetchone()[0]:
                return None
            user = conn.execute(
                "SELECT id, role FROM users WHERE username = ?", (username,)
            ).fetchone()
            if user is None:
                if role is None:
                    raise NotFound("user", username)
                user_id = conn.execute(
                    "INSERT INTO users (username, role, created_at) VALUES (?, ?, ?)",
                    (username, role.value, tx.now),
                ).lastrowid
                tx.emit(NewEvent("user.created", f"user {username} created as {role.value}"))
            elif role is not None and Role(user[1]) != role:
                raise Conflict(
                    f"user {username} exists with role {user[1]}; a token takes its user's role"
                )
            else:
                user_id = user[0]
            token_id = conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, name, token_hash, prefix, tx.now),
            ).lastrowid
            tx.emit(NewEvent("token.created", f"token {name!r} created for {username}"))
            row = conn.execute(
                f"SELECT {_TOKENINFO_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.id = ?",
                (token_id,),
            ).fetchone()
            return _token_info(row)

        return await self._db.write(job)

    async def revoke_token(self, token_id: int) -> TokenInfo:
        def job(tx: Tx) -> TokenInfo:
            conn = tx.conn
            cursor = conn.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (tx.now, token_id),
            )
            row = conn.execute(
                f"SELECT {_TOKENINFO_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.id = ?",
                (token_id,),
            ).fetchone()
            if row is None:
                raise NotFound("token", str(token_id))
            if cursor.rowcount == 0:
                raise Conflict(f"token {token_id} is already revoked")
            tx.emit(NewEvent("token.revoked", f"token {row[1]!r} of {row[2]} revoked"))
            return _token_info(row)

        return await self._db.write(job)

    async def touch(self, token_id: int) -> None:
        def job(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (tx.now, token_id)
            )

        await self._db.write(job)
