"""The image cache through a real `edgebox serve` and the real CLI: keygen and sign a build
directory, import it, list/show/pin/verify/delete, fetch its file with Range from the
machine-facing port, and the refusals (unsigned image, bad trusted key file)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.integration.daemon import running, start, write_config


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "cfg")}
    env.pop("EDGEBOX_URL", None)
    env.pop("EDGEBOX_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "edgebox", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def machine_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text())["machine_http"]["port"])


def test_images_end_to_end(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    made = cli(tmp_path, "images", "keygen", str(keys / "builder")).stdout
    assert "key id:" in made
    build = tmp_path / "build"
    build.mkdir()
    disk = os.urandom(1 << 20) * 3
    (build / "disk.raw.gz").write_bytes(disk)
    cli(
        tmp_path,
        "images",
        "sign",
        str(build),
        "--key",
        str(keys / "builder.key"),
        "--name",
        "tiny",
        "--os",
        "edgebox",
        "--release",
        "1",
        "--compression",
        "gzip",
        "--disk",
        "disk.raw.gz",
    )
    sha = hashlib.sha256(disk).hexdigest()
    assert (
        json.loads((build / "manifest.json").read_text())["manifest"]["files"][0]["sha256"] == sha
    )
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    envelope = json.loads((build / "manifest.json").read_text())
    (unsigned / "manifest.json").write_text(json.dumps({"manifest": envelope["manifest"]}))

    config = write_config(tmp_path, images={"trusted_keys": [str(keys / "builder.pub")]})
    with running(config) as daemon:
        assert daemon.admin_token
        cli(tmp_path, "login", daemon.api_url, daemon.admin_token)
        done = cli(tmp_path, "images", "import", str(build)).stdout
        assert "tiny" in done and "ready, 3.0 MiB" in done
        listed = json.loads(cli(tmp_path, "--json", "images", "list").stdout)
        assert [(i["name"], i["state"]) for i in listed] == [("tiny", "ready")]
        assert "tiny" in cli(tmp_path, "images", "list").stdout
        shown = cli(tmp_path, "images", "show", "tiny").stdout
        assert sha in shown and "ready" in shown

        url = f"http://127.0.0.1:{machine_port(config)}/images/{sha}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert hashlib.sha256(resp.read()).hexdigest() == sha
        ranged = urllib.request.Request(url, headers={"Range": "bytes=1048576-"})
        with urllib.request.urlopen(ranged, timeout=10) as resp:
            assert resp.status == 206 and resp.read() == disk[1 << 20 :]

        cli(tmp_path, "images", "pin", "tiny")
        refused = cli(tmp_path, "images", "delete", "tiny", check=False)
        assert refused.returncode == 1 and "is pinned; unpin it first" in refused.stderr
        cli(tmp_path, "images", "unpin", "tiny")
        assert "ok" in cli(tmp_path, "images", "verify", "tiny").stdout

        bad = cli(tmp_path, "images", "import", str(unsigned), check=False)
        assert bad.returncode == 1 and "is not signed" in bad.stderr

        assert "deleted" in cli(tmp_path, "images", "delete", "tiny").stdout
        assert json.loads(cli(tmp_path, "--json", "images", "list").stdout) == []
        daemon.stop()


def test_a_bad_trusted_key_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "not-a-key.pub").write_text("hello\n")
    config = write_config(tmp_path, images={"trusted_keys": [str(tmp_path / "not-a-key.pub")]})
    daemon = start(config, wait=False)
    assert daemon.proc.wait(30) == 1
    assert "images.trusted_keys" in daemon.stderr and "not an Ed25519 public key" in daemon.stderr
