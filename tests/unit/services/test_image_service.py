"""The image cache over a real temporary database and real files: import from a directory
and over HTTP (a drop midway resumes with Range, also after a restart), refusals of unsigned,
tampered and untrusted images, eviction under a budget, pins, holds, delete and verify."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edgebox.domain.errors import Conflict
from edgebox.net.image_http import add_image_routes
from edgebox.services.image_service import ImageRefused, ImageService
from edgebox.services.image_signing import KeyPair, write_key_pair
from edgebox.services.image_sources import LocalSource
from edgebox.storage.database import Database
from edgebox.storage.image_store import ImageState
from tests.conftest import FakeClock, running_database
from tests.unit.services.image_fixtures import (
    BuiltImage,
    build_image,
    make_service,
    running,
    settled,
)


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return write_key_pair(tmp_path / "builder")


@pytest.fixture
def service(db: Database, clock: FakeClock, tmp_path: Path, key: KeyPair) -> ImageService:
    return make_service(db, clock, tmp_path / "cache", key)


async def events_of(db: Database) -> list[str]:
    rows = await db.fetchall("SELECT type FROM events WHERE type LIKE 'image.%' ORDER BY seq")
    return [r[0] for r in rows]


async def test_import_from_a_directory_stores_by_hash(
    service: ImageService, db: Database, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    image, started = await service.import_image(LocalSource(built.directory), "admin")
    assert started and image.state == ImageState.IMPORTING
    async with running(service):
        done = await settled(service, image.id)
    assert done.state == ImageState.READY, done.error
    sha = built.manifest.disk.sha256
    path = await service.ready_file(sha)
    assert path == tmp_path / "cache" / "sha256" / sha
    assert path.read_bytes() == built.disk
    assert not list((tmp_path / "cache" / "partial").iterdir())
    assert await events_of(db) == ["image.import_started", "image.import_finished"]
    again, started = await service.import_image(LocalSource(built.manifest_path), "admin")
    assert (again.id, started) == (image.id, False)


async def test_unsigned_tampered_and_untrusted_images_are_refused(
    service: ImageService, db: Database, tmp_path: Path, key: KeyPair
) -> None:
    unsigned = build_image(tmp_path / "unsigned", None)
    with pytest.raises(ImageRefused, match="is not signed"):
        await service.import_image(LocalSource(unsigned.directory), "admin")
    tampered = build_image(tmp_path / "tampered", key)
    envelope = json.loads(tampered.manifest_path.read_text())
    envelope["manifest"]["files"][0]["size"] += 1
    tampered.manifest_path.write_text(json.dumps(envelope))
    with pytest.raises(ImageRefused, match="changed after it was signed"):
        await service.import_image(LocalSource(tampered.directory), "admin")
    stranger = write_key_pair(tmp_path / "stranger")
    foreign = build_image(tmp_path / "foreign", stranger)
    with pytest.raises(ImageRefused, match="not trusted here"):
        await service.import_image(LocalSource(foreign.directory), "admin")
    assert await service.list() == []
    assert not (tmp_path / "cache" / "sha256").exists() or not any(
        (tmp_path / "cache" / "sha256").iterdir()
    )


async def test_content_changed_after_signing_fails_and_leaves_nothing(
    service: ImageService, db: Database, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    damaged = bytearray(built.disk)
    damaged[1000] ^= 0xFF
    (built.directory / "disk.raw.zst").write_bytes(bytes(damaged))
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    async with running(service):
        done = await settled(service, image.id)
    assert done.state == ImageState.FAILED
    assert "changed or damaged after signing" in done.error
    assert await service.ready_file(built.manifest.disk.sha256) is None
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []
    assert list((tmp_path / "cache" / "partial").iterdir()) == []
    assert await events_of(db) == ["image.import_started", "image.import_failed"]


class FlakyFiles:
    """Serves a build directory over HTTP with Range; can drop connections midway."""

    def __init__(self, built: BuiltImage) -> None:
        self.built = built
        self.ranges: list[str | None] = []
        self.drops = 0  # drop this many file downloads after half their bytes
        self.ignore_range = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = self.built.directory / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        data = path.read_bytes()
        if request.match_info["name"] == "manifest.json":
            return web.Response(body=data)
        self.ranges.append(request.headers.get("Range"))
        start = 0 if self.ignore_range else (request.http_range.start or 0)
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(data) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        body = data[start:]
        if self.drops:
            self.drops -= 1
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-file
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def flaky(tmp_path: Path, key: KeyPair) -> AsyncIterator[tuple[FlakyFiles, TestServer]]:
    files = FlakyFiles(build_image(tmp_path / "build", key, size=3_000_000))
    app = web.Application()
    app.router.add_get("/img/{name}", files.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield files, server
    finally:
        await server.close()


async def test_http_import_resumes_with_range_after_a_dropped_connection(
    service: ImageService, flaky: tuple[FlakyFiles, TestServer]
) -> None:
    files, server = flaky
    files.drops = 2
    source = service.source({"url": str(server.make_url("/img/manifest.json"))})
    image, _ = await service.import_image(source, "admin")
    async with running(service):
        done = await settled(service, image.id)
    assert done.state == ImageState.READY, done.error
    size = files.built.manifest.disk.size
    assert files.ranges[0] is None
    first, second = (int(r.split("=")[1].rstrip("-")) for r in files.ranges[1:3])  # type: ignore[union-attr]
    assert 0 < first < second < size  # each try went on from where the last stopped
    assert len(files.ranges) == 3
    path = await service.ready_file(files.built.manifest.disk.sha256)
    assert path is not None and path.read_bytes() == files.built.disk


async def test_a_server_that_ignores_range_restarts_the_file(
    service: ImageService, flaky: tuple[FlakyFiles, TestServer]
) -> None:
    files, server = flaky
    files.drops, files.ignore_range = 1, True
    source = service.source({"url": str(server.make_url("/img/manifest.json"))})
    image, _ = await service.import_image(source, "admin")
    async with running(service):
        done = await settled(service, image.id)
    assert done.state == ImageState.READY, done.error
    assert len(files.ranges) == 2 and files.ranges[1] is not None


async def test_an_import_resumes_after_a_restart(
    tmp_path: Path, clock: FakeClock, key: KeyPair, flaky: tuple[FlakyFiles, TestServer]
) -> None:
    files, server = flaky
    files.drops = 1
    async with running_database(tmp_path / "restart.db", clock) as db:
        first = make_service(db, clock, tmp_path / "cache", key)
        first._backoff = 3600.0  # after the drop it waits: stop the process meanwhile
        source = first.source({"url": str(server.make_url("/img/manifest.json"))})
        image, _ = await first.import_image(source, "admin")
        async with running(first):
            for _ in range(500):
                if (
                    files.ranges
                    and (tmp_path / "cache" / "partial").exists()
                    and any((tmp_path / "cache" / "partial").iterdir())
                    and files.drops == 0
                ):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
    partial = tmp_path / "cache" / "partial" / files.built.manifest.disk.sha256
    held = partial.stat().st_size
    assert 0 < held < files.built.manifest.disk.size
    async with running_database(tmp_path / "restart.db", clock) as db:
        second = make_service(db, clock, tmp_path / "cache", key)
        async with running(second):
            done = await settled(second, image.id)
    assert done.state == ImageState.READY, done.error
    assert files.ranges[-1] == f"bytes={held}-"


async def test_upstream_edgebox_serves_ready_files_and_manifests(
    service: ImageService, db: Database, clock: FakeClock, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    app = web.Application()
    add_image_routes(app, service)
    upstream = TestServer(app)
    await upstream.start_server()
    try:
        async with running(service):
            await settled(service, image.id)
        downstream = make_service(db, clock, tmp_path / "downstream", key)
        # Same database is fine here: the downstream sees the image as known. Use a fresh one.
        async with running_database(tmp_path / "down.db", clock) as down_db:
            downstream = make_service(down_db, clock, tmp_path / "downstream", key)
            source = downstream.source({"upstream": str(upstream.make_url("/")), "name": "tiny"})
            copy, started = await downstream.import_image(source, "sync")
            assert started and copy.id == image.id
            async with running(downstream):
                done = await settled(downstream, copy.id)
            assert done.state == ImageState.READY, done.error
            assert done.source == {
                "upstream": str(upstream.make_url("/")).rstrip("/"),
                "name": "tiny",
            }
            missing = downstream.source({"upstream": str(upstream.make_url("/")), "name": "nope"})
            with pytest.raises(ImageRefused, match="HTTP 404"):
                await downstream.import_image(missing, "sync")
    finally:
        await upstream.close()


async def test_eviction_is_lru_and_spares_pinned_and_held_images(
    db: Database, clock: FakeClock, tmp_path: Path, key: KeyPair
) -> None:
    service = make_service(db, clock, tmp_path / "cache", key, budget=250_000)
    ids = {}
    async with running(service):
        for name in ("a", "b", "c"):
            built = build_image(tmp_path / name, key, name=name, size=100_000)
            image, _ = await service.import_image(LocalSource(built.directory), "admin")
            ids[name] = image.id
            if name == "c":
                break
            assert (await settled(service, image.id)).state == ImageState.READY
            clock.advance(10)
        await settled(service, ids["c"])
        names = {i.name for i in await service.list()}
        assert names == {"b", "c"}  # a was least recently used
        await service.pin("b", True, "admin")
        await service.acquire("c", "machine:abc123")
        clock.advance(10)
        d = build_image(tmp_path / "d", key, name="d", size=100_000)
        with pytest.raises(ImageRefused, match="cannot be evicted") as err:
            await service.import_image(LocalSource(d.directory), "admin")
        assert "images.budget_bytes" in str(err.value)
        assert await service.release("machine:abc123")
        image, _ = await service.import_image(LocalSource(d.directory), "admin")
        await settled(service, image.id)
        assert {i.name for i in await service.list()} == {"b", "d"}
    evicted = await db.fetchall("SELECT message FROM events WHERE type = 'image.evicted'")
    assert len(evicted) == 2
    stored = sorted(p.name for p in (tmp_path / "cache" / "sha256").iterdir())
    assert stored == sorted(i.manifest.disk.sha256 for i in await service.list())


async def test_delete_is_refused_while_pinned_or_in_use(
    service: ImageService, db: Database, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    async with running(service):
        await settled(service, image.id)
    await service.pin(image.id[:10], True, "admin")
    with pytest.raises(Conflict, match="is pinned; unpin it first"):
        await service.delete("tiny", "admin")
    await service.pin("tiny", False, "admin")
    held = await service.acquire("tiny", "machine:abc123")
    assert held.holders == ("machine:abc123",)
    with pytest.raises(Conflict, match="in use by machine:abc123"):
        await service.delete("tiny", "admin")
    await service.release("machine:abc123")
    await service.delete("tiny", "admin")
    assert await service.list() == []
    assert list((tmp_path / "cache" / "sha256").iterdir()) == []


async def test_acquire_needs_a_ready_image(
    service: ImageService, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    with pytest.raises(Conflict, match="is importing, not ready"):
        await service.acquire(image.id, "machine:abc123")


async def test_verify_finds_a_damaged_file_and_reimport_repairs_it(
    service: ImageService, db: Database, tmp_path: Path, key: KeyPair
) -> None:
    built = build_image(tmp_path / "build", key)
    image, _ = await service.import_image(LocalSource(built.directory), "admin")
    async with running(service):
        await settled(service, image.id)
        report = await service.verify("tiny")
        assert report.ok and report.files[0].status == "ok"
        stored = tmp_path / "cache" / "sha256" / built.manifest.disk.sha256
        stored.write_bytes(b"rot" + stored.read_bytes()[3:])
        report = await service.verify("tiny")
        assert not report.ok and report.files[0].status == "damaged"
        assert report.image.state == ImageState.FAILED and "damaged" in report.image.error
        assert await service.ready_file(built.manifest.disk.sha256) is None
        again, started = await service.import_image(LocalSource(built.directory), "admin")
        assert started
        assert (await settled(service, again.id)).state == ImageState.READY
    assert (await service.verify("tiny")).ok
