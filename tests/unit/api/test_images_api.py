"""The images endpoints over a real database, real files and a running image service:
import (202, then progress and ready), refusals with reasons, pins, delete, verify, roles."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edgebox.api.context import ApiContext
from edgebox.api.server import build_api_app
from edgebox.domain.auth import Role
from edgebox.services.auth_service import AuthService
from edgebox.services.event_bus import EventBus
from edgebox.services.event_service import EventService
from edgebox.services.image_signing import KeyPair, write_key_pair
from edgebox.services.machine_service import MachineService
from edgebox.storage.auth_store import AuthStore
from edgebox.storage.database import Database
from edgebox.storage.event_store import EventStore
from edgebox.storage.machine_store import MachineStore
from edgebox.storage.site_store import SiteStore
from tests.conftest import FakeClock
from tests.unit.services.image_fixtures import build_image, make_service, running


@dataclass
class ImagesApi:
    client: TestClient
    key: KeyPair
    admin: dict[str, str]
    operator: dict[str, str]
    viewer: dict[str, str]

    async def call(
        self, method: str, path: str, body: object = None, who: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        resp = await self.client.request(
            method, "/api/v1" + path, json=body, headers=who or self.admin
        )
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)

    async def until_settled(self, ref: str) -> dict[str, Any]:
        for _ in range(1000):
            status, image = await self.call("GET", f"/images/{ref}")
            assert status == 200, image
            if image["state"] != "importing":
                return dict(image)
            await asyncio.sleep(0.01)
        raise AssertionError("import did not end")


@pytest.fixture
async def iapi(db: Database, clock: FakeClock, tmp_path: Path) -> AsyncIterator[ImagesApi]:
    key = write_key_pair(tmp_path / "builder")
    images = make_service(db, clock, tmp_path / "cache", key)
    auth = AuthService(AuthStore(db), clock)
    bus = EventBus()
    db.on_commit(bus.publish)
    ctx = ApiContext(
        machines=MachineService(MachineStore(db)),
        auth=auth,
        events=EventService(EventStore(db), bus),
        site=await SiteStore(db).ensure("test"),
        version="test",
        storage=db.health,
        images=images,
    )
    admin = await auth.bootstrap_admin()
    assert admin is not None
    _, operator = await auth.create_token("ops", "olga", Role.OPERATOR)
    _, viewer = await auth.create_token("look", "vic", Role.VIEWER)
    client = TestClient(TestServer(build_api_app(ctx)))
    await client.start_server()
    try:
        async with running(images):
            yield ImagesApi(
                client, key, *({"Authorization": f"Bearer {t}"} for t in (admin, operator, viewer))
            )
    finally:
        await client.close()


async def test_import_list_show_pin_verify_delete(iapi: ImagesApi, tmp_path: Path) -> None:
    built = build_image(tmp_path / "build", iapi.key, name="debian-12", size=200_000)
    status, image = await iapi.call("POST", "/images", {"path": str(built.directory)})
    assert status == 202, image
    assert image["state"] == "importing" and image["name"] == "debian-12"
    assert image["files"][0]["sha256"] == built.manifest.disk.sha256
    ready = await iapi.until_settled(image["id"])
    assert ready["state"] == "ready" and ready["progress"] is None
    assert ready["size"] == 200_000 and ready["key_id"] == iapi.key.key_id
    status, again = await iapi.call("POST", "/images", {"path": str(built.manifest_path)})
    assert status == 200 and again["id"] == image["id"]  # already there: nothing to do

    status, listed = await iapi.call("GET", "/images", who=iapi.viewer)
    assert status == 200 and [i["name"] for i in listed["items"]] == ["debian-12"]

    status, pinned = await iapi.call("POST", f"/images/{image['id'][:8]}/pin", who=iapi.operator)
    assert status == 200 and pinned["pinned"] is True
    status, refused = await iapi.call("DELETE", "/images/debian-12")
    assert status == 409 and "is pinned; unpin it first" in refused["message"]
    status, unpinned = await iapi.call("POST", "/images/debian-12/unpin", who=iapi.operator)
    assert unpinned["pinned"] is False

    status, report = await iapi.call("POST", "/images/debian-12/verify", who=iapi.operator)
    assert status == 200 and report["ok"] and report["signature"] == "ok"
    assert report["files"] == [
        {"name": "disk.raw.zst", "sha256": built.manifest.disk.sha256, "status": "ok"}
    ]

    status, _ = await iapi.call("DELETE", "/images/debian-12")
    assert status == 204
    status, gone = await iapi.call("GET", "/images/debian-12")
    assert status == 404 and gone["error"] == "not_found"


async def test_refusals_say_why(iapi: ImagesApi, tmp_path: Path) -> None:
    unsigned = build_image(tmp_path / "unsigned", None)
    status, body = await iapi.call("POST", "/images", {"path": str(unsigned.directory)})
    assert status == 409 and "is not signed" in body["message"]
    status, body = await iapi.call("POST", "/images", {"path": "relative/dir"})
    assert status == 400 and body["field"] == "path"
    status, body = await iapi.call("POST", "/images", {"url": "ftp://example.org/x"})
    assert status == 400 and "not an http:// or https:// URL" in body["message"]
    status, body = await iapi.call("POST", "/images", {"colour": "red"})
    assert status == 400 and body["field"] == "colour"
    status, body = await iapi.call("POST", "/images", {"path": str(tmp_path / "nothing")})
    assert status == 409 and "cannot read" in body["message"]


async def test_a_tampered_file_ends_failed_with_the_reason(iapi: ImagesApi, tmp_path: Path) -> None:
    built = build_image(tmp_path / "build", iapi.key)
    (built.directory / "disk.raw.zst").write_bytes(b"x" * built.manifest.disk.size)
    status, image = await iapi.call("POST", "/images", {"path": str(built.directory)})
    assert status == 202
    failed = await iapi.until_settled(image["id"])
    assert failed["state"] == "failed" and "changed or damaged after signing" in failed["error"]


async def test_roles(iapi: ImagesApi, tmp_path: Path) -> None:
    built = build_image(tmp_path / "build", iapi.key)
    status, _ = await iapi.call(
        "POST", "/images", {"path": str(built.directory)}, who=iapi.operator
    )
    assert status == 403
    status, _ = await iapi.call("GET", "/images", who={"Accept": "application/json"})
    assert status == 401
    status, image = await iapi.call("POST", "/images", {"path": str(built.directory)})
    await iapi.until_settled(image["id"])
    status, _ = await iapi.call("DELETE", f"/images/{image['id']}", who=iapi.operator)
    assert status == 403
    status, _ = await iapi.call("POST", f"/images/{image['id']}/pin", who=iapi.viewer)
    assert status == 403


async def test_a_path_that_is_not_a_regular_file_or_directory_is_refused(
    iapi: ImagesApi, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for path, kind in [
            ("/dev/zero", "a character device"),
            (str(fifo), "a FIFO"),
            (str(tmp_path / "sock"), "a socket"),
        ]:
            status, body = await asyncio.wait_for(iapi.call("POST", "/images", {"path": path}), 5)
            assert (status, body) == (
                400,
                {
                    "error": "bad_request",
                    "message": f"path: {path} is {kind}, not a regular file or a directory",
                    "field": "path",
                },
            )
    finally:
        sock.close()


async def test_a_manifest_that_is_not_a_regular_file_is_refused_at_once(
    iapi: ImagesApi, tmp_path: Path
) -> None:
    """A directory whose manifest.json is a FIFO, or a link to /dev/zero: refused without a
    hang and without reading a byte more than a manifest may hold."""
    for name, make in [
        ("fifo", os.mkfifo),
        ("zero", lambda p: p.symlink_to("/dev/zero")),
        ("huge", lambda p: p.write_bytes(b" " * (1024 * 1024 + 1))),
    ]:
        directory = tmp_path / name
        directory.mkdir()
        make(directory / "manifest.json")
        status, body = await asyncio.wait_for(
            iapi.call("POST", "/images", {"path": str(directory)}), 5
        )
        assert status == 409, body
        expected = {
            "fifo": "it is a FIFO, not a regular file",
            "zero": "it is a character device, not a regular file",
            "huge": "is too large to be a manifest",
        }[name]
        assert expected in body["message"]
