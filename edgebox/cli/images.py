"""`edgebox images ...`: the image cache (list, show, import, pin, unpin, delete, verify), and
two local commands for whoever builds images: `keygen` makes a signing key pair and `sign`
writes a build directory's signed manifest.json.

`import` follows the server's progress until the image is ready or failed: on a terminal with
a progress bar (bytes, rate, time left) on stderr, in a pipe silently; `--no-wait` returns as
soon as the server has checked the signature and started the download.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from edgebox.cli import render
from edgebox.cli.client import ApiClient, JsonObject, path_segment
from edgebox.cli.context import CliContext, CliError, CliUsageError, call_api, json_option, pass_cli
from edgebox.domain.image_manifest import (
    COMPRESSIONS,
    KINDS,
    ImageFile,
    ImageManifest,
    ManifestError,
    manifest_dict,
    parse_manifest,
)
from edgebox.services.image_signing import KeyFileError, load_private_key, sign_manifest
from edgebox.services.image_signing import write_key_pair as make_key_pair

POLL_SECONDS = 0.5


@click.group("images")
def images() -> None:
    """The image cache: signed OS images that machines are deployed with."""


def _state(image: Mapping[str, Any]) -> str:
    progress = image.get("progress")
    if image["state"] == "importing" and progress and progress["bytes_total"]:
        return f"importing {100 * progress['bytes_done'] // progress['bytes_total']}%"
    return str(image["state"])


def _ref(ref: str) -> str:
    return f"/images/{path_segment(ref)}"


@images.command("list")
@json_option
@pass_cli
def list_images(cli: CliContext) -> None:
    """The cached images."""
    items = call_api(cli, lambda client: client.get("/images"))["items"]
    if cli.json_output:
        render.print_json(items)
        return
    render.print_table(
        ("ID", "NAME", "OS", "ARCH", "KIND", "SIZE", "STATE", "PINNED", "IN USE"),
        (
            [
                i["id"][:12],
                i["name"],
                f"{i['os']} {i['release']}",
                i["arch"],
                f"{i['kind']}/{i['compression']}",
                render.size(i["size"]),
                _state(i),
                render.text(i["pinned"]),
                str(len(i["in_use_by"])),
            ]
            for i in items
        ),
    )


@images.command("show")
@click.argument("ref", metavar="IMAGE")
@json_option
@pass_cli
def show(cli: CliContext, ref: str) -> None:
    """One image: manifest, state, files, and who uses it. IMAGE: id, id prefix or name."""
    image = call_api(cli, lambda client: client.get(_ref(ref)))
    if cli.json_output:
        render.print_json(image)
        return
    source = ", ".join(f"{k} {v}" for k, v in sorted(image["source"].items()))
    render.print_fields(
        [
            ("id", image["id"]),
            ("name", image["name"]),
            ("os", f"{image['os']} {image['release']} ({image['arch']})"),
            ("kind", f"{image['kind']}, compression {image['compression']}"),
            ("created", image["created"]),
            ("size", render.size(image["size"])),
            ("state", _state(image) + (f": {image['error']}" if image["error"] else "")),
            ("pinned", render.text(image["pinned"])),
            ("in use by", render.text(image["in_use_by"])),
            ("signed by", image["key_id"]),
            ("source", source),
            ("imported", render.timestamp(image["imported_at"])),
            ("last used", render.timestamp(image["last_used"])),
        ]
    )
    render.print_table(
        ("ROLE", "NAME", "SIZE", "SHA256"),
        ([f["role"], f["name"], render.size(f["size"]), f["sha256"]] for f in image["files"]),
    )


@images.command("import")
@click.argument("source")
@click.option(
    "--upstream",
    metavar="URL",
    help="Import SOURCE (an image name) from this "
    "upstream edgebox's machine-facing URL, e.g. http://hub:5248.",
)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow to the end.")
@json_option
@pass_cli
def import_image(cli: CliContext, source: str, upstream: str | None, wait: bool) -> None:
    """Import a signed image. SOURCE: an http(s) URL of its manifest.json, a build directory
    (or its manifest.json) on the edgebox's host, or with --upstream an image name."""
    if upstream:
        body = {"upstream": upstream, "name": source}
    elif source.startswith(("http://", "https://")):
        body = {"url": source}
    else:
        body = {"path": str(Path(source).expanduser().resolve())}

    async def work(client: ApiClient) -> JsonObject:
        image: JsonObject = await client.post("/images", body)
        if wait and image["state"] == "importing":
            image = await _follow(client, image)
        return image

    image = call_api(cli, work)
    if cli.json_output:
        render.print_json(image)
    elif image["state"] == "ready":
        click.echo(f"{image['name']} ({image['id'][:12]}): ready, {render.size(image['size'])}.")
    elif image["state"] == "importing":
        click.echo(
            f"{image['name']} ({image['id'][:12]}): importing; follow with "
            f"'edgebox images show {image['id'][:12]}'."
        )
    if image["state"] == "failed":
        raise CliError(f"{image['name']} ({image['id'][:12]}): import failed: {image['error']}")


async def _follow(client: ApiClient, image: JsonObject) -> JsonObject:
    """Poll the image until it is no longer importing, with a progress bar on a terminal."""
    path = _ref(image["id"])
    if not sys.stderr.isatty():
        while image["state"] == "importing":
            await asyncio.sleep(POLL_SECONDS)
            image = await client.get(path)
        return image
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(image["name"], total=image["size"])
        while image["state"] == "importing":
            progress = image.get("progress") or {}
            bar.update(task, completed=progress.get("bytes_done", 0))
            await asyncio.sleep(POLL_SECONDS)
            image = await client.get(path)
        bar.update(task, completed=image["size"] if image["state"] == "ready" else 0)
    return image


def _simple(name: str, method: str, suffix: str, done: str, help_text: str) -> click.Command:
    @click.argument("ref", metavar="IMAGE")
    @json_option
    @pass_cli
    def command(cli: CliContext, ref: str) -> None:
        image = call_api(cli, lambda client: client.request(method, _ref(ref) + suffix))
        if cli.json_output:
            render.print_json(image)
        else:
            click.echo(f"{image['name']} ({image['id'][:12]}): {done}.")

    return click.command(name, help=help_text)(command)


images.add_command(_simple("pin", "POST", "/pin", "pinned", "Pin an image: never evicted."))
images.add_command(
    _simple("unpin", "POST", "/unpin", "unpinned", "Unpin an image: evictable again.")
)


@images.command("delete")
@click.argument("ref", metavar="IMAGE")
@pass_cli
def delete(cli: CliContext, ref: str) -> None:
    """Delete an image (refused while it is pinned or in use, with the reason)."""

    async def work(client: ApiClient) -> JsonObject:
        image: JsonObject = await client.get(_ref(ref))
        await client.delete(_ref(image["id"]))
        return image

    image = call_api(cli, work)
    click.echo(f"{image['name']} ({image['id'][:12]}): deleted.")


@images.command("verify")
@click.argument("ref", metavar="IMAGE")
@json_option
@pass_cli
def verify(cli: CliContext, ref: str) -> None:
    """Check the signature and re-hash every file; a damaged image becomes failed."""
    report = call_api(cli, lambda client: client.post(_ref(ref) + "/verify", {}))
    if cli.json_output:
        render.print_json(report)
    else:
        render.print_fields([("signature", report["signature"])])
        render.print_table(
            ("FILE", "STATUS", "SHA256"),
            ([f["name"], f["status"], f["sha256"]] for f in report["files"]),
        )
    if not report["ok"]:
        raise CliError(
            f"{report['image']['name']}: verification failed; the image is now "
            "failed: import it again to repair it"
        )


@images.command("keygen")
@click.argument("prefix", type=click.Path(path_type=Path))
def keygen(prefix: Path) -> None:
    """Make an Ed25519 signing key pair: PREFIX.key (private, mode 0600) and PREFIX.pub (list
    it in images.trusted_keys of every edgebox that should accept the images)."""
    try:
        pair = make_key_pair(prefix)
    except (KeyFileError, OSError) as exc:
        raise CliError(str(exc)) from exc
    click.echo(
        f"private key: {pair.private_path}\npublic key:  {pair.public_path}\n"
        f"key id:      {pair.key_id}"
    )


@images.command("sign")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The private key (from 'edgebox images keygen').",
)
@click.option("--name", required=True, help="Image name, e.g. debian-12-amd64.")
@click.option("--os", "os_name", required=True, help="e.g. debian.")
@click.option("--release", required=True, help="e.g. 12.")
@click.option("--arch", default="amd64", show_default=True)
@click.option("--kind", type=click.Choice(KINDS), default="raw", show_default=True)
@click.option("--compression", type=click.Choice(COMPRESSIONS), required=True)
@click.option("--disk", required=True, help="The image file's name in DIRECTORY.")
@click.option("--kernel", help="A kernel file's name in DIRECTORY (with --initrd).")
@click.option("--initrd", help="An initrd file's name in DIRECTORY (with --kernel).")
def sign(
    *,
    directory: Path,
    key_path: Path,
    name: str,
    os_name: str,
    release: str,
    arch: str,
    kind: str,
    compression: str,
    disk: str,
    kernel: str | None,
    initrd: str | None,
) -> None:
    """Hash the files of a build DIRECTORY and write its signed manifest.json."""
    roles = [("disk", disk), ("kernel", kernel), ("initrd", initrd)]
    files = [_describe_file(directory, role, file) for role, file in roles if file]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        key = load_private_key(key_path)
        manifest = parse_manifest(
            manifest_dict(
                ImageManifest(
                    name, os_name, release, arch, kind, compression, created, tuple(files)
                )
            )
        )
    except KeyFileError as exc:
        raise CliError(str(exc)) from exc
    except ManifestError as exc:
        raise CliUsageError(f"the manifest would not be valid: {exc}") from exc
    out = directory / "manifest.json"
    out.write_bytes(sign_manifest(manifest, key))
    click.echo(f"{out}: {name} ({manifest.size} bytes in {len(files)} files), signed")


def _describe_file(directory: Path, role: str, name: str) -> ImageFile:
    path = directory / name
    if path.parent != directory or not path.is_file():
        raise CliUsageError(f"--{role} {name}: no such file in {directory}")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return ImageFile(role, name, digest.hexdigest(), path.stat().st_size)


__all__: Sequence[str] = ["images"]
