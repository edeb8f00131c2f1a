"""Server programs taken from a Debian package without installing it.

Some peers the benches compare with (nginx, tftpd-hpa, atftpd) start a system-wide daemon when
their package is installed, on every interface of the machine. The benches need only their
program, started by hand inside a lab namespace: `apt-get download` fetches the .deb and
`dpkg -x` unpacks it into a directory of the run. Their libraries are ordinary packages that
scripts/install-lab-packages installs (see scripts/lab-packages).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.lab.processes import which

# The tools unpacking needs, for the install-list check (tests/unit/test_lab_packages.py).
TOOLS = ("apt-get", "dpkg")


class UnpackError(RuntimeError):
    """The package could not be fetched or does not hold the program; the message says why."""


def unpacked_program(package: str, program: str, workdir: Path) -> Path:
    """`program` (its path inside `package`, e.g. "usr/sbin/in.tftpd"), unpacked under
    `workdir`; fetched once per workdir."""
    tree = workdir / f"{package}-pkg"
    unpacked = tree / program
    if unpacked.exists():
        return unpacked
    if which("apt-get") is None or which("dpkg") is None:
        raise UnpackError(f"apt-get and dpkg are needed to unpack {package}")
    downloads = workdir / f"{package}-deb"
    downloads.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(
        ["apt-get", "download", package],
        cwd=downloads, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    debs = sorted(downloads.glob(f"{package}_*.deb"))
    if got.returncode != 0 or not debs:
        raise UnpackError(f"apt-get download {package} failed: {got.stderr.strip()[-300:]}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(tree)], check=True, timeout=120)
    if not unpacked.exists():
        raise UnpackError(f"{debs[-1].name} holds no {program}")
    return unpacked
