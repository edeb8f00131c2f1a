"""Where images come from: a local directory, an http(s) URL, or an upstream edgebox (a hub).

Each source gives the signed manifest's bytes and writes a file's bytes into a `Sink` from the
sink's current size on, so that an interrupted download resumes where it stopped:

- `LocalSource`: `manifest.json` and the files beside it (a build output directory).
- `HttpSource` for a URL: the manifest at that URL, each file at the URL of its name relative
  to it (a directory of build outputs behind any web server). Resumes with `Range:
  bytes=N-`; a server that ignores Range (200 instead of 206) restarts the file from 0.
- `HttpSource` for an upstream edgebox: the manifest of the newest ready image of a name at
  `<base>/images/manifests/<name>`, and the files by hash at `<base>/images/<sha256>` (its
  machine-facing port, which serves only complete, verified files).

A failure says whether retrying can help (`FetchError.retryable`): a dropped connection or a
5xx can; a 404 or an unreadable local file cannot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from edgebox.domain.image_manifest import MAX_ENVELOPE_BYTES, ImageFile
from edgebox.services.local_files import TooLarge, open_regular, read_bounded

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class FetchError(Exception):
    """A source could not deliver; `retryable` says whether trying again can help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    """Where a file's bytes go: a partial file that knows how much it holds already."""

    @property
    def size(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def restart(self) -> None:
        """Throw away what was written; the next write is at offset 0."""
        ...


class ImageSource(Protocol):
    def describe(self) -> dict[str, str]:
        """The source as JSON, stored with the image so that an import can resume after a
        restart (see `source_from_json`)."""
        ...

    async def read_manifest(self) -> bytes: ...

    async def fetch(self, file: ImageFile, sink: Sink) -> None:
        """Write `file`'s bytes from `sink.size` to its end into `sink`."""
        ...


class LocalSource:
    """An image on this machine's disks: a build output directory, or its manifest file.

    Whoever may import images names the path, so nothing here trusts it: a path that is not a
    regular file or a directory is refused (`/dev/zero` never ends, a FIFO blocks its reader
    for ever, a socket or a device is no image), each file is opened without blocking and
    checked to be a regular file before a byte is read, and no read goes past the size the
    signed manifest gives (or `MAX_ENVELOPE_BYTES` for the manifest itself).
    """

    def __init__(self, path: Path) -> None:
        self.manifest_path = path / "manifest.json" if path.is_dir() else path

    def describe(self) -> dict[str, str]:
        return {"path": str(self.manifest_path)}

    async def read_manifest(self) -> bytes:
        try:
            return await asyncio.to_thread(read_bounded, self.manifest_path, MAX_ENVELOPE_BYTES)
        except TooLarge:
            raise FetchError(f"{self.manifest_path} is too large to be a manifest", False) from None
        except OSError as exc:
            raise FetchError(
                f"cannot read {self.manifest_path}: {exc.strerror or exc}", False
            ) from None

    async def fetch(self, file: ImageFile, sink: Sink) -> None:
        path = self.manifest_path.parent / file.name
        try:
            with await asyncio.to_thread(open_regular, path) as f:
                f.seek(sink.size)
                remaining = file.size - sink.size
                while remaining > 0 and (
                    chunk := await asyncio.to_thread(f.read, min(CHUNK, remaining))
                ):
                    remaining -= len(chunk)
                    await sink.write(chunk)
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}", False) from None


class HttpSource:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        manifest_url: str,
        upstream: tuple[str, str] | None = None,
    ) -> None:
        self._session = session
        self.manifest_url = manifest_url
        self._upstream = upstream  # (base URL, image name) for an upstream edgebox

    @classmethod
    def for_url(cls, session: aiohttp.ClientSession, url: str) -> HttpSource:
        check_http_url(url)
        return cls(session, url)

    @classmethod
    def for_upstream(cls, session: aiohttp.ClientSession, base: str, name: str) -> HttpSource:
        check_http_url(base)
        base = base.rstrip("/")
        return cls(session, f"{base}/images/manifests/{quote(name, safe='')}", (base, name))

    def describe(self) -> dict[str, str]:
        if self._upstream is not None:
            return {"upstream": self._upstream[0], "name": self._upstream[1]}
        return {"url": self.manifest_url}

    def file_url(self, file: ImageFile) -> str:
        if self._upstream is not None:
            return f"{self._upstream[0]}/images/{file.sha256}"
        return urljoin(self.manifest_url, quote(file.name))

    async def read_manifest(self) -> bytes:
        url = self.manifest_url
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    raise FetchError(
                        f"GET {url}: HTTP {resp.status} {resp.reason or ''}".rstrip(),
                        resp.status >= 500,
                    )
                data = await resp.content.read(MAX_ENVELOPE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"GET {url}: {_describe(exc)}", True) from None
        if len(data) > MAX_ENVELOPE_BYTES:
            raise FetchError(f"GET {url}: the answer is too large to be a manifest", False)
        return data

    async def fetch(self, file: ImageFile, sink: Sink) -> None:
        url = self.file_url(file)
        offset = sink.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            async with self._session.get(url, headers=headers) as resp:
                if resp.status == 416 and offset:
                    # The partial is at least as long as the server's file: it cannot be this
                    # file's beginning. Start over.
                    await sink.restart()
                    raise FetchError(f"GET {url}: the server refused to resume at {offset}", True)
                if resp.status not in (200, 206):
                    raise FetchError(
                        f"GET {url}: HTTP {resp.status} {resp.reason or ''}".rstrip(),
                        resp.status >= 500 or resp.status == 429,
                    )
                if resp.status == 200 and offset:
                    await sink.restart()  # the server ignored Range: it sends the whole file
                elif resp.status == 206:
                    _check_content_range(url, resp.headers.get("Content-Range", ""), offset)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    await sink.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"GET {url}: {_describe(exc)} after {sink.size} bytes", True) from None


def _check_content_range(url: str, header: str, offset: int) -> None:
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None or int(match.group(1)) != offset:
        raise FetchError(
            f"GET {url}: asked for bytes from {offset}, got Content-Range {header!r}", True
        )


def check_http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")


def source_from_json(data: Mapping[str, str], session: aiohttp.ClientSession) -> ImageSource:
    if "path" in data:
        return LocalSource(Path(data["path"]))
    if "upstream" in data:
        return HttpSource.for_upstream(session, data["upstream"], data.get("name", ""))
    if "url" in data:
        return HttpSource.for_url(session, data["url"])
    raise ValueError(f"unknown image source {dict(data)!r}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "the connection dropped"
    return str(exc) or type(exc).__name__
