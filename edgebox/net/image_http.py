"""Images on the machine-facing port: what deploying machines and downstream edgeboxes fetch.

- `GET /images/<sha256>`: a complete, verified file of a ready image, by its hash. aiohttp's
  FileResponse sends it with sendfile and answers Range requests (a resumed download). A
  partial download or a file of an image that is not ready is a 404: nothing unverified leaves.
- `GET /images/manifests/<name>`: the signed manifest of the newest ready image of that name,
  so that another edgebox can import it from here (the receiver checks the signature itself).

No token: the files are public by hash, and a manifest is signed, so serving either reveals
nothing that a machine booting on this network could not learn anyway.
"""

from __future__ import annotations

from aiohttp import web

from edgebox.services.image_service import ImageService

IMAGES = web.AppKey("edgebox_images", ImageService)


def _images(request: web.Request) -> ImageService:
    images = request.app.get(IMAGES)
    if images is None:
        raise web.HTTPNotFound(text="the image cache is not running on this edgebox\n")
    return images


async def image_file(request: web.Request) -> web.StreamResponse:
    path = await _images(request).ready_file(request.match_info["sha256"])
    if path is None:
        raise web.HTTPNotFound(text="no such image file (or its image is not ready)\n")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def image_manifest(request: web.Request) -> web.Response:
    envelope = await _images(request).signed_manifest(request.match_info["name"])
    if envelope is None:
        raise web.HTTPNotFound(text="no ready image of that name\n")
    return web.Response(text=envelope, content_type="application/json")


def add_image_routes(app: web.Application, images: ImageService | None) -> None:
    if images is not None:
        app[IMAGES] = images
    app.router.add_get("/images/{sha256:[0-9a-f]{64}}", image_file)
    app.router.add_get("/images/manifests/{name:[a-z0-9][a-z0-9._-]{0,62}}", image_manifest)
