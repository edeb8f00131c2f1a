"""Real TFTP clients (curl, tftp-hpa, atftp) against edgebox's TFTP adapter in a lab.

The listener runs on an event loop in a thread of the test process and opens its sockets in the
lab's server namespace (tftp_lab.py); the clients run in the client namespace. Facts about the
clients (Debian 12): tftp-hpa exits 0 even when the server refuses, so its output is checked;
curl exits 69 (CURLE_TFTP_PERM) on an access violation and needs --path-as-is to send a `..`;
atftp 0.8.0 supports the windowsize option (RFC 7440).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgebox.net.tftp_listener import TftpEndpoint
from edgebox.services.tftp_files import TftpFiles
from edgebox.wire.tftp import TftpServerConfig, TransferLimits
from tests.integration.tftp_lab import TftpServerThread, hold_transfer, wait_until
from tests.lab import Lab, TwoHosts, skip_unless_lab

pytestmark = pytest.mark.root

SERVER = "10.231.60.1"
LOADERS = ("/usr/lib/ipxe/snponly.efi", "/usr/lib/ipxe/undionly.kpxe")
TOOLS = ("curl", "tftp", "atftp")


@dataclass
class TftpLab:
    lab: Lab
    net: TwoHosts
    root: Path
    files: dict[str, bytes]  # name -> content, as served

    def endpoint(self) -> TftpEndpoint:
        return TftpEndpoint(self.net.server_if, self.net.server_ns)

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.lab.exec(self.net.client_ns, argv, timeout=timeout, check=False)

    def out(self, name: str) -> Path:
        return self.lab.tmpdir / f"out-{name}"


@pytest.fixture
def tftp_lab() -> Iterator[TftpLab]:
    skip_unless_lab(*TOOLS)
    with Lab() as lab:
        net = lab.two_hosts(server_addr=f"{SERVER}/24", client_addr="10.231.60.2/24")
        root = lab.tmpdir / "root"
        root.mkdir()
        files: dict[str, bytes] = {}
        for loader in LOADERS:
            files[Path(loader).name] = Path(loader).read_bytes()
        rng = random.Random(7)
        # 1468 * 700 + 1: odd tail; 512 * 2048: a multiple of blksize 512 (empty final block).
        files["odd.bin"] = rng.randbytes(1468 * 700 + 1)
        files["exact.bin"] = rng.randbytes(512 * 2048)
        files["sub/dir/file.cfg"] = b"#!ipxe\nexit 1\n"
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        (lab.tmpdir / "secret").write_bytes(b"outside the root")
        (root / "escape").symlink_to(lab.tmpdir / "secret")
        yield TftpLab(lab, net, root, files)


def curl(name: str, out: Path, blksize: int | None = None) -> list[str]:
    extra = ["--tftp-blksize", str(blksize)] if blksize else []
    return ["curl", "-sS", "--max-time", "30", *extra, "-o", str(out), f"tftp://{SERVER}/{name}"]


def tftp_hpa(name: str, out: Path) -> list[str]:
    return ["tftp", "-m", "binary", SERVER, "-c", "get", name, str(out)]


def atftp(name: str, out: Path, *options: str) -> list[str]:
    opts = [arg for option in options for arg in ("--option", option)]
    return ["atftp", "--get", "-r", name, "-l", str(out), *opts, SERVER]


def atftp_oack(trace: str) -> dict[str, str]:
    """The options of `received OACK <tsize: 173792, windowsize: 8, >` in atftp's trace."""
    line = next((x for x in trace.splitlines() if x.startswith("received OACK")), "")
    pairs = line.partition("<")[2].rstrip(">").split(",")
    return dict(tuple(p.strip().split(": ")) for p in pairs if ": " in p)  # type: ignore[misc]


def fetched(t: TftpLab, name: str, out: Path) -> None:
    assert out.exists(), f"{out} was not written"
    assert out.read_bytes() == t.files[name], f"{name}: content differs"


@pytest.mark.parametrize("blksize", [None, 1468])
@pytest.mark.parametrize("name", ["snponly.efi", "undionly.kpxe", "odd.bin", "exact.bin"])
def test_curl_fetches_byte_identical_files(
    tftp_lab: TftpLab, name: str, blksize: int | None
) -> None:
    with TftpServerThread([tftp_lab.endpoint()], TftpFiles([tftp_lab.root])) as server:
        out = tftp_lab.out(name)
        result = tftp_lab.run(curl(name, out, blksize))
        assert result.returncode == 0, result.stderr
        fetched(tftp_lab, name, out)
        wait_until(lambda: server.status().completed == 1)
        assert server.status().failed == 0


def test_tftp_hpa_fetches_byte_identical_files(tftp_lab: TftpLab) -> None:
    with TftpServerThread([tftp_lab.endpoint()], TftpFiles([tftp_lab.root])) as server:
        for name in ("snponly.efi", "exact.bin", "sub/dir/file.cfg"):
            out = tftp_lab.out(name.replace("/", "_"))
            result = tftp_lab.run(tftp_hpa(name, out))
            assert result.returncode == 0 and not result.stdout.strip(), result.stdout
            fetched(tftp_lab, name, out)
        wait_until(lambda: server.status().completed == 3)


@pytest.mark.parametrize(
    "options",
    [(), ("blksize 1468",), ("blksize 1468", "windowsize 8"), ("windowsize 16", "tsize 0")],
)
def test_atftp_fetches_with_blksize_and_windowsize(
    tftp_lab: TftpLab, options: tuple[str, ...]
) -> None:
    with TftpServerThread([tftp_lab.endpoint()], TftpFiles([tftp_lab.root])) as server:
        for name in ("snponly.efi", "odd.bin"):
            out = tftp_lab.out(name)
            result = tftp_lab.run([*atftp(name, out, *options), "--trace"])
            assert result.returncode == 0, result.stderr[-2000:]
            fetched(tftp_lab, name, out)
            oack = atftp_oack(result.stderr)
            for option in options:  # every option asked for is acknowledged, tsize with the size
                key, value = option.split()
                assert oack[key] == (str(len(tftp_lab.files[name])) if key == "tsize" else value)
        wait_until(lambda: server.status().completed == 2)
        assert server.status().retransmits == 0


def test_an_upload_is_refused(tftp_lab: TftpLab) -> None:
    upload = tftp_lab.lab.tmpdir / "upload.bin"
    upload.write_bytes(b"firmware from nowhere")
    with TftpServerThread([tftp_lab.endpoint()], TftpFiles([tftp_lab.root])) as server:
        result = tftp_lab.run(["tftp", "-m", "binary", SERVER, "-c", "put", str(upload), "x.bin"])
        assert "Error code 2" in result.stdout + result.stderr, result
        assert not (tftp_lab.root / "x.bin").exists()
        status = server.status()
        assert status.refused >= 1 and status.started == 0


def test_paths_out_of_the_root_are_refused(tftp_lab: TftpLab) -> None:
    with TftpServerThread([tftp_lab.endpoint()], TftpFiles([tftp_lab.root])) as server:
        out = tftp_lab.out("secret")
        hpa = tftp_lab.run(tftp_hpa("../secret", out))
        assert "Error code 2: access violation" in hpa.stdout, hpa
        hpa_link = tftp_lab.run(tftp_hpa("escape", out))
        assert "Error code 2: access violation" in hpa_link.stdout, hpa_link
        dots = tftp_lab.run(
            ["curl", "-sS", "--path-as-is", "-o", str(out), f"tftp://{SERVER}/../secret"]
        )
        assert dots.returncode == 69, dots  # CURLE_TFTP_PERM
        link = tftp_lab.run(atftp("escape", out))
        assert "access violation" in link.stderr, link
        missing = tftp_lab.run(tftp_hpa("no/such/file", out))
        assert "Error code 1" in missing.stdout, missing
        assert not out.exists() or out.read_bytes() != b"outside the root"
        status = server.status()
        assert status.started == 0 and status.refused >= 5


def test_fifty_concurrent_fetches_are_byte_identical(tftp_lab: TftpLab) -> None:
    t = tftp_lab
    with TftpServerThread([t.endpoint()], TftpFiles([t.root])) as server:
        jobs: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        for i in range(50):
            name = ("snponly.efi", "odd.bin", "undionly.kpxe")[i % 3]
            out = t.out(f"{i}-{name}")
            argv = (
                curl(name, out, 1468),
                curl(name, out),
                atftp(name, out, "blksize 1468", "windowsize 8"),
                tftp_hpa(name, out),
                atftp(name, out, "blksize 1468"),
            )[i % 5]
            proc = t.lab.run(t.net.client_ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            jobs.append((name, out, proc))
        for name, out, proc in jobs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode(errors="replace")[-500:]
            fetched(t, name, out)
        wait_until(lambda: server.status().completed == 50)
        status = server.status()
        assert (status.failed, status.refused, status.active) == (0, 0, 0)


def test_the_transfer_bound_refuses_a_third_client_and_counts_it(tftp_lab: TftpLab) -> None:
    t = tftp_lab
    # A short retry budget, so the held slots free up soon after the holders go silent.
    limits = TransferLimits(default_timeout=0.3, max_retransmits=2)
    config = TftpServerConfig(limits=limits, max_transfers=2)
    with TftpServerThread([t.endpoint()], TftpFiles([t.root]), config) as server:
        holders = [hold_transfer(t.net.client_ns, SERVER, "odd.bin") for _ in range(2)]
        try:
            assert server.status().active == 2
            out = t.out("third")
            third = t.run(atftp("snponly.efi", out))
            assert third.returncode != 0 and "server busy" in third.stderr, third
            busy = t.run(tftp_hpa("snponly.efi", out))
            assert "Error code 0: server busy, retry" in busy.stdout, busy
            status = server.status()
            assert (status.active, status.refused_busy, status.max_transfers) == (2, 2, 2)
        finally:
            for holder in holders:
                holder.close()
        # The silent holders time out (0.3 s, then 2 resends); then the third one gets in.
        wait_until(lambda: server.status().active == 0)
        again = t.run(atftp("snponly.efi", out))
        assert again.returncode == 0, again.stderr
        fetched(t, "snponly.efi", out)
        status = server.status()
        assert status.outcomes == {"timed out": 2, "completed": 1}
        assert status.retransmits == 4


@pytest.mark.slow
def test_block_numbers_roll_over_past_65535(tftp_lab: TftpLab) -> None:
    """At blksize 512 a file over 32 MiB needs block 65535 -> 0 (tftp-hpa's and curl's way)."""
    t = tftp_lab
    big = random.Random(3).randbytes(512 * 65536 + 700)
    (t.root / "big.img").write_bytes(big)
    t.files["big.img"] = big
    with TftpServerThread([t.endpoint()], TftpFiles([t.root])) as server:
        for argv in (curl("big.img", t.out("curl")), tftp_hpa("big.img", t.out("hpa"))):
            result = t.run(argv, timeout=120)
            assert result.returncode == 0 and not result.stdout.strip(), result
            fetched(t, "big.img", Path(argv[-1]) if argv[0] == "tftp" else t.out("curl"))
        wait_until(lambda: server.status().completed == 2)


def test_a_link_that_is_not_configured_gets_no_answer(tftp_lab: TftpLab) -> None:
    """The request socket is bound to the configured interface (SO_BINDTODEVICE): a request
    that reaches the same namespace through another link is not answered."""
    t = tftp_lab
    other = t.lab.netns("oth")
    t.lab.veth(t.net.server_ns, "veth-oth", other, "veth-o2")
    t.lab.addr(t.net.server_ns, "veth-oth", "10.231.61.1/24")
    t.lab.addr(other, "veth-o2", "10.231.61.2/24")
    assert t.lab.ping(other, "10.231.61.1")
    with TftpServerThread([t.endpoint()], TftpFiles([t.root])) as server:
        out = t.out("other")
        argv = ["curl", "-sS", "--max-time", "3", "-o", str(out), "tftp://10.231.61.1/snponly.efi"]
        result = t.lab.exec(other, argv, timeout=10, check=False)
        assert result.returncode == 28, result  # CURLE_OPERATION_TIMEDOUT: nobody answered
        assert not out.exists()
        ok = t.run(curl("snponly.efi", out))  # the configured link is served
        assert ok.returncode == 0, ok.stderr
        status = server.status()
        assert (status.started, status.refused, status.dropped) == (1, 0, 0)
