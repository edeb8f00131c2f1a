"""Image cache endpoints: list, show (with import progress), import, pin, delete, verify.

An import is answered 202 with the image as recorded (state `importing`); the files come in
the background and `GET /images/{ref}` shows the bytes done so far. `{ref}` is an image id,
an unambiguous id prefix of 8 or more hex digits, or a name (its newest image).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgebox.api.context import context
from edgebox.api.errors import ApiError
from edgebox.api.json_shapes import iso
from edgebox.api.request_input import json_object
from edgebox.api.routing import Param, Route, principal
from edgebox.api.schemas import BOOL, INT, STR, STR_LIST, TIME, nullable
from edgebox.domain.auth import Permission
from edgebox.services.image_service import ImageService, ProgressView, VerifyReport
from edgebox.storage.image_store import ImageRecord

_SOURCE_KEYS = {"path", "url", "upstream", "name"}


def _images(request: web.Request) -> ImageService:
    images = context(request).images
    if images is None:
        raise ApiError(503, "unavailable", "the image cache is not running in this edgebox")
    return images


def _progress_json(progress: ProgressView | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {
        "bytes_done": progress.done,
        "bytes_total": progress.total,
        "bytes_per_second": progress.bytes_per_second,
    }


def image_json(image: ImageRecord, images: ImageService | None = None) -> dict[str, Any]:
    m = image.manifest
    body: dict[str, Any] = {
        "id": image.id,
        "name": m.name,
        "os": m.os,
        "release": m.release,
        "arch": m.arch,
        "kind": m.kind,
        "compression": m.compression,
        "created": m.created,
        "size": image.size,
        "state": image.state.value,
        "error": image.error,
        "pinned": image.pinned,
        "in_use_by": list(image.holders),
        "key_id": image.signed.key_id,
        "source": dict(image.source),
        "imported_at": iso(image.imported_at),
        "last_used": iso(image.last_used),
        "files": [
            {"role": f.role, "name": f.name, "sha256": f.sha256, "size": f.size} for f in m.files
        ],
        "progress": None,
    }
    if images is not None:
        body["progress"] = _progress_json(images.progress(image.id))
    return body


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "signature": report.signature,
        "files": [{"name": c.name, "sha256": c.sha256, "status": c.status} for c in report.files],
        "image": image_json(report.image),
    }


async def list_images(request: web.Request) -> web.Response:
    images = _images(request)
    return web.json_response({"items": [image_json(i, images) for i in await images.list()]})


async def show_image(request: web.Request) -> web.Response:
    images = _images(request)
    return web.json_response(image_json(await images.resolve(request.match_info["ref"]), images))


async def import_image(request: web.Request) -> web.Response:
    body = await json_object(request, _SOURCE_KEYS)
    spec = {}
    for key, value in body.items():
        if not isinstance(value, str) or not value:
            raise ApiError(400, "bad_request", f"{key}: expected a non-empty string", key)
        spec[key] = value
    images = _images(request)
    image, started = await images.import_image(images.source(spec), principal(request).user)
    return web.json_response(image_json(image, images), status=202 if started else 200)


async def pin_image(request: web.Request) -> web.Response:
    return await _set_pinned(request, True)


async def unpin_image(request: web.Request) -> web.Response:
    return await _set_pinned(request, False)


async def _set_pinned(request: web.Request, pinned: bool) -> web.Response:
    images = _images(request)
    image = await images.pin(request.match_info["ref"], pinned, principal(request).user)
    return web.json_response(image_json(image, images))


async def delete_image(request: web.Request) -> web.Response:
    await _images(request).delete(request.match_info["ref"], principal(request).user)
    return web.Response(status=204)


async def verify_image(request: web.Request) -> web.Response:
    report = await _images(request).verify(request.match_info["ref"])
    return web.json_response(_report_json(report))


_REF = Param("ref", STR, "image id, id prefix (8+ hex digits) or name", where="path", required=True)
_FILE = {
    "type": "object",
    "properties": {"role": STR, "name": STR, "sha256": STR, "size": INT},
}
IMAGE = {
    "type": "object",
    "properties": {
        "id": STR,
        "name": STR,
        "os": STR,
        "release": STR,
        "arch": STR,
        "kind": {"type": "string", "enum": ["raw", "tar"]},
        "compression": {"type": "string", "enum": ["none", "gzip", "zstd", "xz"]},
        "created": STR,
        "size": INT,
        "state": {"type": "string", "enum": ["importing", "ready", "failed"]},
        "error": STR,
        "pinned": BOOL,
        "in_use_by": STR_LIST,
        "key_id": STR,
        "source": {"type": "object"},
        "imported_at": TIME,
        "last_used": TIME,
        "files": {"type": "array", "items": _FILE},
        "progress": nullable(
            {
                "type": "object",
                "properties": {"bytes_done": INT, "bytes_total": INT, "bytes_per_second": INT},
            }
        ),
    },
    "required": ["id", "name", "state", "size", "files"],
}

ROUTES = [
    Route(
        "GET",
        "/images",
        list_images,
        Permission.READ,
        "The cached images",
        "images",
        responses={
            200: {"type": "object", "properties": {"items": {"type": "array", "items": IMAGE}}}
        },
    ),
    Route(
        "GET",
        "/images/{ref}",
        show_image,
        Permission.READ,
        "One image, with its files and import progress",
        "images",
        params=[_REF],
        responses={200: IMAGE},
    ),
    Route(
        "POST",
        "/images",
        import_image,
        Permission.ADMIN,
        "Import a signed image from a path on the edgebox, an http(s) URL of its manifest, "
        "or an upstream edgebox (upstream + name); 202 while its files come in",
        "images",
        body={
            "type": "object",
            "properties": {
                "path": {
                    **STR,
                    "pattern": "^/",
                    "description": "an absolute path on the edgebox: a build output "
                    "directory or its manifest.json (a regular file or a directory)",
                },
                "url": {**STR, "minLength": 1, "description": "http(s) URL of a manifest"},
                "upstream": {**STR, "minLength": 1, "description": "an edgebox's base URL"},
                "name": {**STR, "minLength": 1, "description": "with upstream: the image"},
            },
            "oneOf": [
                {"required": ["path"], "maxProperties": 1},
                {"required": ["url"], "maxProperties": 1},
                {"required": ["upstream", "name"], "maxProperties": 2},
            ],
            "additionalProperties": False,
        },
        responses={200: IMAGE, 202: IMAGE},
    ),
    Route(
        "POST",
        "/images/{ref}/pin",
        pin_image,
        Permission.OPERATE,
        "Pin an image: it is never evicted",
        "images",
        params=[_REF],
        responses={200: IMAGE},
    ),
    Route(
        "POST",
        "/images/{ref}/unpin",
        unpin_image,
        Permission.OPERATE,
        "Unpin an image: it may be evicted again when least recently used",
        "images",
        params=[_REF],
        responses={200: IMAGE},
    ),
    Route(
        "DELETE",
        "/images/{ref}",
        delete_image,
        Permission.ADMIN,
        "Delete an image (refused while pinned or in use, with the reason)",
        "images",
        params=[_REF],
        responses={204: None},
    ),
    Route(
        "POST",
        "/images/{ref}/verify",
        verify_image,
        Permission.OPERATE,
        "Check the signature and re-hash every file; a damaged image becomes failed",
        "images",
        params=[_REF],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "ok": BOOL,
                    "signature": STR,
                    "files": {"type": "array"},
                    "image": IMAGE,
                },
            }
        },
    ),
]
