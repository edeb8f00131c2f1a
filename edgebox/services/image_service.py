"""The image cache: import signed images, keep them within a budget, hand them to deploys.

An import runs in two halves. `import_image()` answers at once: it reads the signed manifest
from the source, refuses it unless a trusted key signed exactly these bytes, makes room under
the budget (evicting least recently used images, never a pinned or held one) and records the
image as `importing`. The files then come in the background (`run()`), each resumable and
verified (services/image_download.py), and the image becomes `ready` only when every file is
in the store; a failure leaves it `failed` with the reason, and importing it again resumes.
Imports still `importing` when edgebox stops resume when it starts again.

A deploying machine holds the image it writes (`acquire(image, holder)`, `release(holder)`):
a held or pinned image is never evicted or deleted. Progress (bytes done of total, rate) is
kept in memory for the API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from edgebox.domain.errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from edgebox.domain.image_eviction import CachedImage, plan_eviction
from edgebox.domain.image_manifest import ManifestError, parse_envelope
from edgebox.domain.models import EventLevel, NewEvent
from edgebox.domain.settings import ImageSettings
from edgebox.services.clock import Clock
from edgebox.services.image_download import ContentMismatch, download
from edgebox.services.image_signing import TrustedKeys, UntrustedImage
from edgebox.services.image_sources import (
    FetchError,
    HttpSource,
    ImageSource,
    LocalSource,
    source_from_json,
)
from edgebox.services.image_verify import FileCheck, check_image
from edgebox.services.local_files import check_regular_or_directory
from edgebox.storage.image_files import ImageFiles
from edgebox.storage.image_store import ImageRecord, ImageState, ImageStore

log = logging.getLogger(__name__)

MAX_IMPORTS = 2
_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)


class ImageRefused(Conflict):
    """An image that will not be imported (unsigned, untrusted, tampered, no room)."""


@dataclass(slots=True)
class ImportProgress:
    total: int
    started: float  # monotonic
    done: int = 0

    def add(self, n: int) -> None:
        self.done = max(0, self.done + n)


@dataclass(frozen=True, slots=True)
class ProgressView:
    done: int
    total: int
    bytes_per_second: int


@dataclass(frozen=True, slots=True)
class VerifyReport:
    image: ImageRecord
    ok: bool
    signature: str  # "ok" or why not
    files: tuple[FileCheck, ...]


def _event(
    kind: str, image: ImageRecord, message: str, level: EventLevel = EventLevel.INFO, **data: Any
) -> NewEvent:
    return NewEvent(
        f"image.{kind}", message, level=level, data={"image": image.id, "name": image.name, **data}
    )


class ImageService:
    def __init__(
        self,
        settings: ImageSettings,
        *,
        store: ImageStore,
        files: ImageFiles,
        trusted: TrustedKeys,
        clock: Clock,
        retry_backoff: float = 1.0,
    ) -> None:
        self._settings = settings
        self._store = store
        self.files = files
        self._trusted = trusted
        self._clock = clock
        self._backoff = retry_backoff
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._space = asyncio.Lock()  # one reservation of cache space at a time
        self._slots = asyncio.Semaphore(MAX_IMPORTS)
        self._active: dict[str, asyncio.Task[None]] = {}
        self._file_locks: dict[str, asyncio.Lock] = {}
        self._progress: dict[str, ImportProgress] = {}

    # -- queries -------------------------------------------------------------------------

    async def list(self) -> list[ImageRecord]:
        return await self._store.all()

    async def resolve(self, ref: str) -> ImageRecord:
        """An image by id, unique id prefix (8+ hex digits) or name (the newest of it)."""
        found = await self._store.find(ref.strip())
        exact = [i for i in found if ref in (i.id, i.name)]
        if exact:
            return exact[0]
        if not found:
            raise NotFound("image", ref)
        if len({i.id for i in found}) > 1:
            ids = ", ".join(i.id[:12] for i in found)
            raise Conflict(f"{ref!r} matches several images ({ids}); give more of the id")
        return found[0]

    def progress(self, image_id: str) -> ProgressView | None:
        """How far an import in progress is (None: no download running for it)."""
        progress = self._progress.get(image_id)
        if progress is None:
            return None
        elapsed = max(self._clock.monotonic() - progress.started, 1e-3)
        return ProgressView(progress.done, progress.total, round(progress.done / elapsed))

    async def ready_file(self, sha256: str) -> Path | None:
        """The path of a complete file that a ready image lists (what may be served)."""
        path = self.files.path(sha256)
        if not await self._store.file_is_ready(sha256) or not path.is_file():
            return None
        return path

    async def signed_manifest(self, name: str) -> str | None:
        """The envelope of the newest ready image of `name` (for a downstream edgebox)."""
        for image in await self._store.find(name):
            if image.name == name and image.state == ImageState.READY:
                return image.envelope
        return None

    # -- import ------------------------------------------------------------------------

    def source(self, spec: Mapping[str, str]) -> ImageSource:
        """A source from the API's words: {"path"}, {"url"} or {"upstream", "name"}."""
        if set(spec) == {"path"}:
            path = Path(spec["path"])
            if not path.is_absolute():
                raise InvalidInput("path", f"{path} is not an absolute path on the edgebox")
            try:
                check_regular_or_directory(path)
            except ValueError as exc:
                raise InvalidInput("path", str(exc)) from None
            return LocalSource(path)
        try:
            if set(spec) == {"url"}:
                return HttpSource.for_url(self._http(), spec["url"])
            if set(spec) == {"upstream", "name"}:
                return HttpSource.for_upstream(self._http(), spec["upstream"], spec["name"])
        except ValueError as exc:
            raise InvalidInput(next(iter(spec)), str(exc)) from None
        raise InvalidInput("source", "give one of: path, url, or upstream with name")

    async def import_image(self, source: ImageSource, by: str) -> tuple[ImageRecord, bool]:
        """Check and record an import; return (the image, whether a download starts)."""
        try:
            raw = await source.read_manifest()
        except FetchError as exc:
            raise ImageRefused(f"cannot read the image manifest: {exc}") from None
        try:
            signed = parse_envelope(raw)
            key = self._trusted.verify(signed)
        except (ManifestError, UntrustedImage) as exc:
            await self._refused(source, str(exc))
            raise ImageRefused(str(exc)) from None
        manifest = signed.manifest
        async with self._space:
            images = await self._store.all()
            known = next((i for i in images if i.id == signed.image_id), None)
            if known is not None and known.state != ImageState.FAILED:
                return known, False
            plan = plan_eviction(
                [_cached(i) for i in images if i.id != signed.image_id],
                {f.sha256: f.size for f in manifest.files},
                self._settings.budget_bytes,
            )
            if not plan.fits:
                message = f"no room for image {manifest.name}: {plan.refusal()}"
                await self._refused(source, message)
                raise ImageRefused(message)
            await self._evict(plan.evict)
            started = NewEvent(
                "image.import_started",
                f"image {manifest.name} import started from {_where(source)} by {by}",
                data={
                    "image": signed.image_id,
                    "name": manifest.name,
                    "key_id": key,
                    "source": source.describe(),
                    "size": manifest.size,
                },
            )
            record, begun = await self._store.begin_import(
                signed, raw.decode("ascii", "replace"), source.describe(), started
            )
        if begun:
            self._wake.set()
        return record, begun

    async def _refused(self, source: ImageSource, why: str) -> None:
        log.warning("image refused source=%s reason=%s", source.describe(), why)

    async def _evict(self, image_ids: tuple[str, ...]) -> None:
        if not image_ids:
            return
        evicted, orphans = await self._store.evict(
            image_ids,
            lambda i: _event(
                "evicted",
                i,
                f"image {i.name} evicted from the cache (least recently used, to make room)",
                size=i.size,
            ),
        )
        for sha in orphans:
            await asyncio.to_thread(self.files.remove, sha)
        log.info("images evicted ids=%s freed_files=%d", ",".join(evicted), len(orphans))

    async def run(self) -> None:
        """Clean up after a crash, then run imports (resuming unfinished ones) until cancelled."""
        await asyncio.to_thread(self.files.ensure_dirs)
        await self._sweep()
        try:
            async with asyncio.TaskGroup() as group:
                while True:
                    self._wake.clear()
                    for image in await self._store.in_state(ImageState.IMPORTING):
                        if image.id not in self._active:
                            task = group.create_task(
                                self._import(image), name=f"image-{image.id[:12]}"
                            )
                            self._active[image.id] = task
                    await self._wake.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _sweep(self) -> None:
        """Remove files no image lists (a crash between a delete's commit and the unlink),
        and partials no import wants."""
        listed = await self._store.referenced_files()
        for sha in [*self.files.stored(), *self.files.partials()]:
            if sha not in listed:
                log.info("image cache: removing an unlisted file sha256=%s", sha)
                await asyncio.to_thread(self.files.remove, sha)

    async def _import(self, image: ImageRecord) -> None:
        progress = ImportProgress(image.size, self._clock.monotonic())
        self._progress[image.id] = progress
        try:
            await self._import_once(image, progress)
        except StorageUnavailable as exc:
            # Its outcome could not be stored: it stays importing, and is taken up again
            # (its files already fetched are kept) after a pause, not in a tight loop.
            log.warning("image import interrupted id=%s name=%s: %s", image.id, image.name, exc)
            await asyncio.sleep(exc.retry_after)
        finally:
            self._progress.pop(image.id, None)
            self._active.pop(image.id, None)
            self._wake.set()  # it may have been asked for again while it was finishing

    async def _import_once(self, image: ImageRecord, progress: ImportProgress) -> None:
        try:
            async with self._slots:
                await self._fetch_all(image, progress)
        except (FetchError, ContentMismatch, OSError, ValueError) as exc:
            log.warning("image import failed id=%s name=%s error=%s", image.id, image.name, exc)
            await self._store.finish(
                image.id,
                ImageState.FAILED,
                str(exc),
                _event(
                    "import_failed",
                    image,
                    f"image {image.name} import failed: {exc}",
                    EventLevel.ERROR,
                    error=str(exc),
                ),
            )
        except (asyncio.CancelledError, StorageUnavailable):
            raise
        except Exception as exc:
            log.exception("image import crashed id=%s", image.id)
            await self._store.finish(
                image.id,
                ImageState.FAILED,
                f"internal error: {exc}",
                _event(
                    "import_failed",
                    image,
                    "image import failed: internal error (see the edgebox log)",
                    EventLevel.ERROR,
                ),
            )
        else:
            seconds = max(self._clock.monotonic() - progress.started, 1e-6)
            await self._store.finish(
                image.id,
                ImageState.READY,
                "",
                _event(
                    "import_finished",
                    image,
                    f"image {image.name} imported ({image.size} bytes in {seconds:.1f} s)",
                    seconds=round(seconds, 3),
                    size=image.size,
                ),
            )

    async def _fetch_all(self, image: ImageRecord, progress: ImportProgress) -> None:
        source = source_from_json(image.source, self._http())
        seen: set[str] = set()
        for file in image.manifest.files:
            if file.sha256 in seen:
                continue
            seen.add(file.sha256)
            async with self._file_locks.setdefault(file.sha256, asyncio.Lock()):
                await download(self.files, source, file, progress.add, backoff=self._backoff)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Files are stored byte for byte: ask for no content coding, and decode none.
            self._session = aiohttp.ClientSession(
                timeout=_HTTP_TIMEOUT,
                auto_decompress=False,
                headers={"Accept-Encoding": "identity"},
            )
        return self._session

    # -- pins, deletion, verification ------------------------------------------------------

    async def pin(self, ref: str, pinned: bool, by: str) -> ImageRecord:
        image = await self.resolve(ref)
        word = "pinned" if pinned else "unpinned"
        return await self._store.set_pinned(
            image.id, pinned, _event(word, image, f"image {image.name} {word} by {by}")
        )

    async def delete(self, ref: str, by: str) -> ImageRecord:
        image = await self.resolve(ref)
        task = self._active.get(image.id)
        if task is not None and not image.pinned:
            task.cancel()  # an import in progress: stop it, then delete what it fetched
            await asyncio.wait([task])
        orphans = await self._store.delete(
            image.id, _event("deleted", image, f"image {image.name} deleted by {by}")
        )
        for sha in orphans:
            await asyncio.to_thread(self.files.remove, sha)
        return image

    async def verify(self, ref: str) -> VerifyReport:
        """Check the signature against today's trusted keys and re-hash every file. A bad
        image becomes failed (never served or deployed); importing it again repairs it."""
        image = await self.resolve(ref)
        found = await check_image(image.signed, self.files, self._trusted)
        if not found.ok and image.state == ImageState.READY:
            why = found.summary()
            for check in found.files:
                if check.status == "damaged":
                    await asyncio.to_thread(self.files.remove, check.sha256)
            image = await self._store.finish(
                image.id,
                ImageState.FAILED,
                f"verify: {why}",
                _event(
                    "verify_failed",
                    image,
                    f"image {image.name} failed verification: {why}",
                    EventLevel.ERROR,
                ),
            )
        return VerifyReport(image, found.ok, found.signature, found.files)

    # -- use by deploys ----------------------------------------------------------------------

    async def acquire(self, ref: str, holder: str) -> ImageRecord:
        """`holder` (e.g. "machine:abc123") uses the image: it is not evicted or deleted until
        `release(holder)`. A holder holds one image; acquiring another moves its hold."""
        image = await self.resolve(ref)
        return await self._store.acquire(
            image.id,
            holder,
            _event("acquired", image, f"image {image.name} in use by {holder}", holder=holder),
        )

    async def release(self, holder: str) -> bool:
        released = await self._store.release(
            holder,
            lambda image_id: NewEvent(
                "image.released",
                f"{holder} no longer uses image {image_id[:12]}",
                data={"image": image_id, "holder": holder},
            ),
        )
        return released is not None


def _cached(image: ImageRecord) -> CachedImage:
    return CachedImage(
        image_id=image.id,
        name=image.name,
        files={f.sha256: f.size for f in image.manifest.files},
        last_used=image.last_used,
        importing=image.state == ImageState.IMPORTING,
        pinned=image.pinned,
        holders=len(image.holders),
    )


def _where(source: ImageSource) -> str:
    described = source.describe()
    if "upstream" in described:
        return f"upstream {described['upstream']} ({described['name']})"
    return described.get("url") or described.get("path") or "?"
