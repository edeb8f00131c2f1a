"""Scripts: upload (each upload of a name is a new version), list, show, delete, and the
built-in scripts that ship with edgebox, loaded into the database at start.

Built-ins live in `edgebox/services/builtin_scripts/`. At start each one whose content differs
from its current version in the database becomes a new version, so an upgrade of edgebox
upgrades them while old results keep pointing to the version they ran. They cannot be deleted,
and no user script may take a built-in's name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from edgebox.domain.auth import Role
from edgebox.domain.errors import Conflict, Forbidden
from edgebox.domain.lifecycle import IllegalTransition
from edgebox.domain.models import NewEvent
from edgebox.domain.script_metadata import MetadataError, ScriptType
from edgebox.domain.script_runs import StoredScript
from edgebox.services.script_yaml import read_metadata
from edgebox.storage.script_store import NewScript, ScriptStore

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "edgebox.services.builtin_scripts"


@dataclass(frozen=True, slots=True)
class ScriptSource:
    """A built-in script's file name and text."""

    filename: str
    text: str


class ScriptService:
    def __init__(self, store: ScriptStore) -> None:
        self._store = store

    async def current(self, type_: ScriptType | None = None) -> list[StoredScript]:
        return await self._store.current(type_.value if type_ else None)

    async def get(self, name: str, version: int | None = None) -> tuple[StoredScript, str]:
        return await self._store.get(name, version)

    async def versions(self, name: str) -> list[StoredScript]:
        return await self._store.versions(name)

    async def upload(self, text: str, actor: str) -> StoredScript:
        """Store a user's script as the next version of its name (`MetadataError` if its
        header is wrong)."""
        metadata = await asyncio.to_thread(read_metadata, text)  # up to 1 MiB of YAML
        new = NewScript(metadata, text, _digest(text), builtin=False, created_by=actor)

        def events(script: StoredScript) -> list[NewEvent]:
            return [
                NewEvent(
                    "script.uploaded",
                    f"script {script.name} version {script.version} uploaded by {actor}",
                    data={"user": actor, "script": script.name, "version": script.version,
                          "type": script.type.value},
                )
            ]  # fmt: skip

        script = await self._store.add(new, events)
        log.info("script uploaded name=%s version=%d user=%s", script.name, script.version, actor)
        return script

    async def delete(self, name: str, actor: str, role: Role) -> StoredScript:
        """Hide a user's script (all versions). Built-ins cannot be deleted; an admin may
        delete any user script, anyone else only their own (the API lets only admins upload
        and delete: scripts run as root on the machines)."""

        def check(script: StoredScript) -> list[NewEvent]:
            if script.builtin:
                raise Conflict(f"{name} is a built-in script; built-in scripts cannot be deleted")
            if role is not Role.ADMIN and script.created_by != actor:
                raise Forbidden(
                    f"{name} was uploaded by {script.created_by or 'someone else'}; only they "
                    "or an admin may delete it"
                )
            return [
                NewEvent(
                    "script.deleted",
                    f"script {name} deleted by {actor}",
                    data={"user": actor, "script": name, "version": script.version},
                )
            ]

        return await self._store.delete(name, check)

    async def load_builtins(self, sources: Iterable[ScriptSource] | None = None) -> list[str]:
        """Bring the built-in scripts in the database up to date; return the names that got a
        new version. A file with a bad header is logged and skipped, never fatal."""
        if sources is None:
            sources = builtin_sources()
        stored = await self._store.builtin_digests()
        updated = []
        for source in sources:
            digest = _digest(source.text)
            try:
                metadata = read_metadata(source.text)
            except MetadataError as exc:
                log.error("built-in script %s is not valid: %s", source.filename, exc)
                continue
            if stored.get(metadata.name) == digest:
                continue
            new = NewScript(metadata, source.text, digest, builtin=True, created_by="edgebox")
            try:
                await self._store.add(new, lambda s: [])
            except (Conflict, IllegalTransition) as exc:
                log.error("built-in script %s not loaded: %s", metadata.name, exc)
                continue
            updated.append(metadata.name)
        if updated:
            log.info("built-in scripts updated names=%s", ",".join(updated))
        return updated


def builtin_sources() -> list[ScriptSource]:
    """The script files shipped in `edgebox/services/builtin_scripts/` (none if absent)."""
    try:
        root = resources.files(BUILTIN_PACKAGE)
    except ModuleNotFoundError:
        return []
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith(("_", ".")):
            continue
        if entry.name.endswith((".py", ".pyc", ".md", ".txt")):
            continue
        found.append(ScriptSource(entry.name, entry.read_text("utf-8")))
    return found


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
