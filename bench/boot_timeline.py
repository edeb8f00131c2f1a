#!/usr/bin/env python3
"""The boot timeline per firmware: seconds from VM start to each boot step (root).

For each path — BIOS + iPXE ROM, UEFI + iPXE ROM, OVMF's own PXE (snponly.efi over TFTP),
OVMF's UEFI HTTP boot — one unknown VM network-boots from edgebox in a lab and is enlisted;
the boot timeline (events) gives each step's time, printed relative to the VM's start, with
the time edgebox itself spent answering (the gaps are firmware, iPXE and the kernel).

    python bench/boot_timeline.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebox.lab.vm import VmSpec  # noqa: E402
from tests.integration.test_boot_e2e import api, boot_server, start, wait_enlisted  # noqa: E402

PATHS = [
    VmSpec("bios-ipxe", "52:54:00:b7:00:01", firmware="bios"),
    VmSpec("uefi-ipxe", "52:54:00:b7:00:02", firmware="uefi"),
    VmSpec("ovmf-pxe", "52:54:00:b7:00:03", firmware="uefi", native_pxe=True),
    VmSpec("ovmf-http", "52:54:00:b7:00:04", firmware="uefi", native_pxe=True),
]
STEPS = ("dhcp", "loader", "script", "kernel", "initrd", "agent")


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> int:
    import subprocess  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="boot-timeline-"))
    loaders = work / "loaders"
    subprocess.run([str(ROOT / "scripts/fetch-loaders"), str(loaders)], check=True,
                   capture_output=True)  # fmt: skip
    built = subprocess.run([str(ROOT / "packaging/ephemeral/build")], check=True,
                           capture_output=True, text=True)  # fmt: skip
    ephemeral = Path(built.stdout.strip().splitlines()[-1])
    rows = []
    for spec in PATHS:  # one at a time: TCG timings are sensitive to a busy CPU
        run_dir = work / spec.name
        with boot_server(run_dir, loaders, ephemeral) as (daemon, topology):
            started = time.time()
            proc, console = start(topology, spec, run_dir)
            wait_enlisted(daemon, [(spec, proc, console)], 300)
            steps = api(daemon, f"/boot/timeline?mac={spec.mac}")["steps"]
            first: dict[str, float] = {}
            for step in steps:
                first.setdefault(step["step"], _seconds(step["time"]) - started)
            rows.append((spec.name, first))
    print("seconds from VM start to the first event of each step (TCG, 1 vCPU):")
    print(f"{'path':12}" + "".join(f"{s:>9}" for s in STEPS))
    for name, first in rows:
        cells = "".join(f"{first[s]:9.2f}" if s in first else f"{'-':>9}" for s in STEPS)
        print(f"{name:12}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
