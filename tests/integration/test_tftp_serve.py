"""TFTP inside `edgebox serve`: loaders from the checked directory, the generated chain script,
and an altered loader withheld."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon import running, write_config
from tests.lab import Lab, skip_unless_lab

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]


def test_serve_answers_tftp(tmp_path: Path) -> None:
    skip_unless_lab("curl")
    loaders = tmp_path / "loaders"
    subprocess.run([str(ROOT / "scripts/fetch-loaders"), str(loaders)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    with (loaders / "ipxe.efi").open("ab") as f:
        f.write(b"tampered")
    with Lab() as lab:
        net = lab.two_hosts(server_addr="10.231.0.1/24", client_addr="10.231.0.2/24")
        iface = {"name": net.server_if, "netns": net.server_ns}
        config = write_config(
            tmp_path / "eb",
            tftp={"interfaces": [iface]},
            boot={"loaders_dir": str(loaders)},
        )
        with running(config):

            def fetch(name: str) -> subprocess.CompletedProcess[bytes]:
                return lab.exec(
                    net.client_ns,
                    ["curl", "-sS", "--tftp-blksize", "1468", f"tftp://10.231.0.1/{name}"],
                    check=False, text=False, timeout=30,
                )  # fmt: skip

            got = fetch("undionly.kpxe")
            assert got.returncode == 0
            assert got.stdout == (loaders / "undionly.kpxe").read_bytes()
            script = fetch("edgebox.ipxe")
            assert script.returncode == 0
            assert script.stdout.startswith(b"#!ipxe\nchain http://${next-server}:")
            assert b"/boot/ipxe?mac=${net0/mac}" in script.stdout
            withheld = fetch("ipxe.efi")
            assert withheld.returncode != 0 and not withheld.stdout
