"""One reading of both inventory shapes: enlistment's and commissioning's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebox.domain.hardware import HardwareSummary, hardware_of, summary_of
from edgebox.domain.hardware_bundle import parse_bundle

BUNDLES = Path(__file__).parent / "hardware_bundles"

ENLISTED: dict[str, Any] = {
    "dmi": {"vendor": "QEMU", "product": "Standard PC", "serial": "S1", "uuid": ""},
    "cpu": {"model": "QEMU Virtual CPU", "sockets": 1, "cores": 2, "threads": 4},
    "memory_mib": 512,
    "disks": [
        {"name": "vda", "size_bytes": 2 << 30, "model": "", "serial": "D1", "rotational": False},
        {"name": "vdb", "size_bytes": 1 << 30, "model": "Disk", "serial": None},
    ],
    "nics": [{"name": "eth0", "mac": "52:54:00:00:00:0a", "driver": "virtio_net",
              "link": True, "speed_mbps": -1}],
}  # fmt: skip


def test_an_enlistment_inventory() -> None:
    hw = hardware_of(ENLISTED)
    assert (hw.vendor, hw.product, hw.serial) == ("QEMU", "Standard PC", "S1")
    assert (hw.cpu_model, hw.sockets, hw.cores, hw.threads) == ("QEMU Virtual CPU", 1, 2, 4)
    assert hw.memory_mib == 512 and hw.arch is None
    assert [(d.name, d.size_bytes, d.serial) for d in hw.disks] == [
        ("vda", 2 << 30, "D1"),
        ("vdb", 1 << 30, None),
    ]
    assert hw.storage_bytes == 3 << 30
    assert [(n.name, n.mac, n.driver, n.speed_mbps) for n in hw.nics] == [
        ("eth0", "52:54:00:00:00:0a", "virtio_net", -1)
    ]
    assert summary_of(ENLISTED) == HardwareSummary(
        cores=2, threads=4, memory_mib=512, storage_bytes=3 << 30, disks=2, gpus=None
    )


def test_a_commissioned_inventory() -> None:
    inventory = parse_bundle((BUNDLES / "qemu-q35-uefi.txt").read_text())
    hw = hardware_of(inventory)
    assert hw.arch == "amd64"
    assert hw.cores and hw.cores >= 1 and hw.memory_mib and hw.memory_mib >= 256
    assert hw.disks and all(d.size_bytes for d in hw.disks)
    summary = summary_of(inventory)
    assert summary.arch == "amd64" and summary.gpus == 0
    assert summary.memory_mib == inventory["memory"]["total_mib"]
    assert summary.storage_bytes == sum(d["size_bytes"] for d in inventory["disks"])


def test_garbage_is_read_as_unknown_never_as_an_error() -> None:
    odd: dict[str, Any] = {
        "cpu": "many", "memory": {"total_mib": "lots"}, "disks": [1, None, {"size_bytes": True}],
        "nics": "eth0", "gpus": [{"vendor": 7}],
    }  # fmt: skip
    hw = hardware_of(odd)
    assert hw.cores is None and hw.memory_mib is None and hw.storage_bytes is None
    assert [d.name for d in hw.disks] == ["?"] and hw.nics == ()
    assert summary_of(odd) == HardwareSummary(disks=1, gpus=1)
    assert summary_of({}) == HardwareSummary(disks=0)


def test_a_summary_survives_its_json_form() -> None:
    summary = summary_of(ENLISTED)
    assert HardwareSummary.from_dict(summary.as_dict()) == summary
