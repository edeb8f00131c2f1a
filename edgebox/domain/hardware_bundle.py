"""The hardware inventory, parsed from the bundle that the `edgebox-inventory` script prints.

Theory of operation. The machine side only copies files (docs/commissioning-contract.md §2):
sections headed "=== PATH" (a text file), "=== hex PATH" (a binary file as `od -An -v -tx1`
prints it), "=== link PATH" (where a symlink resolves, `readlink -f`), "=== dir PATH" (a
directory exists) and "=== command ARGV" (a command's output). All interpretation happens
here, on the server, so that a better parser needs no new ephemeral environment and a stored
bundle can be parsed again. `parse_bundle` returns the normalized inventory of §2; a value the
bundle does not give is None, never guessed.

Paths are read from their "/sys/" or "/proc/" component on, so a bundle taken from a fake tree
(EDGEBOX_SYSFS=/tmp/x/sys) parses like a real one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edgebox.domain.pci_ids import PciNameLookup
from edgebox.domain.smbios import (
    IPMI_DEVICE,
    MEMORY_DEVICE,
    PLACEHOLDERS,
    SmbiosError,
    decode_memory_device,
    parse_structure,
)

HEADER = re.compile(r"^=== (?:(hex|link|dir|command) )?(.+)$")
ROOTED = re.compile(r"(/(?:sys|proc)/.*)$")
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
SECURE_BOOT = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

# Block devices that are not disks: optical and floppy drives, device-mapper and software
# RAID volumes, network block devices.
NOT_DISKS = re.compile(r"^(sr|fd|dm-|md|nbd)")
# Disk vendor/model prefixes of hypervisors' emulated disks (virtio disks are told by path).
VIRTUAL_DISKS = ("QEMU", "VBOX", "VMware", "Msft", "Virtual disk")

# PCI display-class devices (VGA 0x0300, 3D 0x0302, other 0x0380) that are no GPU: BMC video
# (ASPEED, Matrox G200e) and hypervisors' display adapters (QEMU/Bochs, Cirrus, VMware SVGA,
# virtio-gpu, QXL, VirtualBox). The built-in gpu-presence script uses the same list.
NOT_GPU_VENDORS = frozenset({"1a03", "102b", "1234", "1013", "15ad", "1af4", "1b36", "80ee"})
GPU_VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel"}


@dataclass(frozen=True)
class Bundle:
    """The sections of a bundle, by kind, keyed by their path from /sys or /proc on."""

    text: dict[str, str] = field(default_factory=dict)
    hex: dict[str, bytes] = field(default_factory=dict)
    link: dict[str, str] = field(default_factory=dict)
    dir: set[str] = field(default_factory=set)
    command: dict[str, str] = field(default_factory=dict)

    def value(self, path: str) -> str | None:
        """A one-value file (sysfs attribute), stripped; None when absent or empty."""
        found = self.text.get(path)
        if found is None:
            return None
        return found.strip() or None

    def number(self, path: str) -> int | None:
        found = self.value(path)
        if found is None:
            return None
        try:
            return int(found, 0)  # sysfs writes decimals, and hex with 0x (PCI ids)
        except ValueError:
            return None

    def link_name(self, path: str) -> str | None:
        """The last component of where a link leads: a driver's name."""
        target = self.link.get(path)
        return target.rstrip("/").rsplit("/", 1)[-1] if target else None

    def pci_address(self, path: str) -> str | None:
        """The PCI function nearest to the device a link leads to (the last address in its
        path: a device behind a bridge has the bridge's address before its own)."""
        found = PCI_ADDRESS.findall(self.link.get(path, ""))
        return found[-1] if found else None

    def children(self, prefix: str) -> list[str]:
        """Names of the entries under `prefix` ("/sys/block/") that any section mentions."""
        names: set[str] = set()
        for kind in (self.text, self.hex, self.link):
            for path in kind:
                if path.startswith(prefix):
                    names.add(path[len(prefix) :].split("/", 1)[0])
        return sorted(names)


def _sections(text: str) -> Iterator[tuple[str, str, list[str]]]:
    kind, path = "", ""
    body: list[str] = []
    for line in text.splitlines():
        header = HEADER.match(line)
        if header and (header.group(1) == "command" or ROOTED.search(header.group(2))):
            if path:
                yield kind, path, body
            kind, path, body = header.group(1) or "text", header.group(2), []
        elif path:
            body.append(line)
    if path:
        yield kind, path, body


def parse_sections(text: str) -> Bundle:
    bundle = Bundle()
    for kind, path, body in _sections(text):
        if kind == "command":
            bundle.command[path] = "\n".join(body).strip()
            continue
        rooted = ROOTED.search(path)
        assert rooted is not None  # _sections yields only rooted paths for these kinds
        key = rooted.group(1)
        if kind == "hex":
            try:
                bundle.hex[key] = bytes.fromhex("".join(body))
            except ValueError:
                continue  # a damaged dump: the file reads as absent
        elif kind == "link":
            bundle.link[key] = "\n".join(body).strip()
        elif kind == "dir":
            bundle.dir.add(key)
        else:
            bundle.text[key] = "\n".join(body)
    return bundle


def _clean(value: str | None) -> str | None:
    """A firmware string, or None for the placeholders firmware writes when it knows none."""
    if value is None or value.strip().lower() in PLACEHOLDERS:
        return None
    return value.strip()


# -- sections of the inventory --------------------------------------------------------------


def system_of(b: Bundle) -> dict[str, Any]:
    dmi = "/sys/class/dmi/id/"
    uuid = _clean(b.value(dmi + "product_uuid"))
    return {
        "vendor": _clean(b.value(dmi + "sys_vendor")),
        "product": _clean(b.value(dmi + "product_name")),
        "serial": _clean(b.value(dmi + "product_serial")),
        "uuid": uuid.lower() if uuid else None,
    }


def _cpuinfo(b: Bundle) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per processor block."""
    blocks: list[dict[str, str]] = [{}]
    for line in (b.text.get("/proc/cpuinfo") or "").splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, sep, value = line.partition(":")
        if sep:
            blocks[-1].setdefault(key.strip(), value.strip())
    return [blk for blk in blocks if "processor" in blk]


def cpu_of(b: Bundle) -> dict[str, Any]:
    procs = _cpuinfo(b)
    first = procs[0] if procs else {}
    topology = "/sys/devices/system/cpu/"
    cpus = [c for c in b.children(topology) if re.fullmatch(r"cpu\d+", c)]
    places = [
        (b.number(f"{topology}{c}/topology/physical_package_id"),
         b.number(f"{topology}{c}/topology/core_id"))
        for c in cpus
    ]  # fmt: skip
    if places and all(p is not None and c is not None for p, c in places):
        threads: int | None = len(places)
        sockets: int | None = len({p for p, _ in places})
        cores: int | None = len(set(places))
    else:  # no topology files: cpuinfo's "physical id" and "cpu cores" (x86 only)
        threads = len(procs) or None
        ids = {p["physical id"]: p.get("cpu cores") for p in procs if "physical id" in p}
        sockets = len(ids) or None
        per_socket = [int(n) for n in ids.values() if n and n.isdigit()]
        cores = sum(per_socket) if ids and len(per_socket) == len(ids) else None
    max_khz = b.number(topology + "cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz:
        mhz: int | None = max_khz // 1000
    else:
        try:
            mhz = round(float(first["cpu MHz"]))
        except (KeyError, ValueError):
            mhz = None
    flags = first.get("flags", first.get("Features", ""))
    return {
        "model": first.get("model name") or None,
        "arch": b.command.get("uname -m") or None,
        "sockets": sockets,
        "cores": cores,
        "threads": threads,
        "mhz": mhz,
        "flags": flags.split(),
    }


def _smbios(b: Bundle, kind: int) -> list[Any]:
    entries = "/sys/firmware/dmi/entries/"
    found = []
    # TYPE-N, N in table order: 17-2 before 17-10.
    names = [n for n in b.children(entries) if re.fullmatch(rf"{kind}-\d+", n)]
    for name in sorted(names, key=lambda n: int(n.split("-")[1])):
        raw = b.hex.get(f"{entries}{name}/raw")
        if raw is None:
            continue
        try:
            found.append(parse_structure(raw))
        except SmbiosError:
            continue  # one damaged structure does not lose the others
    return found


def memory_of(b: Bundle) -> dict[str, Any]:
    modules = [decode_memory_device(s) for s in _smbios(b, MEMORY_DEVICE)]
    dimms = [m for m in modules if m is not None]  # None: an empty slot
    sizes = [m.size_mib for m in dimms]
    if dimms and None not in sizes:
        total: int | None = sum(s or 0 for s in sizes)  # installed RAM
    else:
        match = re.search(r"^MemTotal:\s+(\d+) kB", b.text.get("/proc/meminfo", ""), re.M)
        total = int(match.group(1)) // 1024 if match else None  # RAM the kernel manages
    return {
        "total_mib": total,
        "dimms": [
            {"locator": m.locator, "size_mib": m.size_mib, "type": m.type,
             "speed_mts": m.speed_mts, "manufacturer": m.manufacturer, "serial": m.serial,
             "part_number": m.part_number}
            for m in dimms
        ],
    }  # fmt: skip


def _disk_serial(b: Bundle, blk: str) -> str | None:
    serial = b.value(blk + "serial") or b.value(blk + "device/serial")  # virtio; NVMe
    if serial:
        return serial
    page = b.hex.get(blk + "device/vpd_pg80")  # SCSI VPD page 0x80: 4-byte header, serial
    if page and len(page) >= 4:
        length = int.from_bytes(page[2:4], "big")
        text = page[4 : 4 + length].decode("ascii", "replace").strip(" \0")
        return text or None
    return None


def disk_type(b: Bundle, name: str) -> str | None:
    """nvme (by name or driver) before virtual (virtio, or a hypervisor's vendor/model
    string), then hdd/ssd by the rotational flag: the protocol first, the medium second."""
    blk = f"/sys/block/{name}/"
    if name.startswith("nvme") or b.link_name(blk + "device/device/driver") == "nvme":
        return "nvme"
    strings = (b.value(blk + "device/vendor") or "", b.value(blk + "device/model") or "")
    if "/virtio" in b.link.get(f"/sys/block/{name}", "") or any(
        s.startswith(VIRTUAL_DISKS) for s in strings
    ):
        return "virtual"
    rotational = b.value(blk + "queue/rotational")
    return {"1": "hdd", "0": "ssd"}.get(rotational or "")


def disks_of(b: Bundle) -> list[dict[str, Any]]:
    disks = []
    for name in b.children("/sys/block/"):
        if NOT_DISKS.match(name):
            continue
        blk = f"/sys/block/{name}/"
        sectors = b.number(blk + "size")  # in 512-byte units, whatever the sector size
        rotational = b.value(blk + "queue/rotational")
        disks.append(
            {
                "name": name,
                "type": disk_type(b, name),
                "size_bytes": None if sectors is None else sectors * 512,
                "model": b.value(blk + "device/model"),
                "serial": _disk_serial(b, blk),
                "firmware": b.value(blk + "device/firmware_rev") or b.value(blk + "device/rev"),
                "logical_sector": b.number(blk + "queue/logical_block_size"),
                "physical_sector": b.number(blk + "queue/physical_block_size"),
                "rotational": {"1": True, "0": False}.get(rotational or ""),
                "pci_address": b.pci_address(f"/sys/block/{name}"),
            }
        )
    return disks


def nics_of(b: Bundle) -> list[dict[str, Any]]:
    nics = []
    for name in b.children("/sys/class/net/"):
        net = f"/sys/class/net/{name}/"
        if net + "device" not in b.link:
            continue  # no hardware behind it
        speed = b.number(net + "speed")  # -1 (or unreadable) when unknown or link down
        carrier = b.value(net + "carrier")  # unreadable while the port is down
        if carrier in ("0", "1"):
            link: bool | None = carrier == "1"
        else:
            link = False if b.value(net + "operstate") == "down" else None
        nics.append(
            {
                "name": name,
                "mac": (b.value(net + "address") or "").lower() or None,
                "driver": b.link_name(net + "device/driver"),
                "speed_mbps": speed if speed is not None and speed >= 0 else None,
                "link": link,
                "pci_address": b.pci_address(net + "device"),
            }
        )
    return nics


def pci_kind(class_id: int, vendor_id: str) -> str:
    base, sub = class_id >> 16, (class_id >> 8) & 0xFF
    if base == 0x03 and sub in (0x00, 0x02, 0x80):
        return "other" if vendor_id in NOT_GPU_VENDORS else "gpu"
    if base == 0x02:
        return "infiniband" if sub == 0x07 else "network"
    if base == 0x01:
        return "storage"
    return "other"


def pci_of(b: Bundle, names: PciNameLookup | None) -> list[dict[str, Any]]:
    devices = []
    for address in b.children("/sys/bus/pci/devices/"):
        dev = f"/sys/bus/pci/devices/{address}/"
        vendor, device, klass = (b.number(dev + f) for f in ("vendor", "device", "class"))
        if vendor is None or device is None or klass is None:
            continue
        vendor_id, device_id = f"{vendor:04x}", f"{device:04x}"
        vendor_name, device_name = names(vendor_id, device_id) if names else (None, None)
        devices.append(
            {"address": address, "vendor_id": vendor_id, "device_id": device_id,
             "class_id": f"{klass:06x}", "vendor": vendor_name, "device": device_name,
             "kind": pci_kind(klass, vendor_id), "driver": b.link_name(dev + "driver")}
        )  # fmt: skip
    return devices


def gpus_of(pci: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"address": d["address"], "vendor": GPU_VENDORS.get(d["vendor_id"], "other"),
         "vendor_id": d["vendor_id"], "device_id": d["device_id"], "name": d["device"]}
        for d in pci if d["kind"] == "gpu"
    ]  # fmt: skip


def firmware_of(b: Bundle) -> dict[str, Any]:
    dmi = "/sys/class/dmi/id/"
    uefi = "/sys/firmware/efi" in b.dir
    secure_boot: bool | None = False  # BIOS firmware has no Secure Boot
    if uefi:
        var = b.hex.get(SECURE_BOOT)  # 4 bytes of attributes, then the value
        secure_boot = var[4] == 1 if var is not None and len(var) >= 5 else None
    return {
        "type": "uefi" if uefi else "bios",
        "secure_boot": secure_boot,
        "vendor": _clean(b.value(dmi + "bios_vendor")),
        "version": _clean(b.value(dmi + "bios_version")),
        "date": _clean(b.value(dmi + "bios_date")),
    }


def bmc_of(b: Bundle) -> dict[str, Any]:
    present = bool(_smbios(b, IPMI_DEVICE))
    return {"present": present, "type": "ipmi" if present else None}


def parse_bundle(text: str, pci_names: PciNameLookup | None = None) -> dict[str, Any]:
    """The §2 inventory of a bundle. `pci_names` names PCI vendors and devices (see
    edgebox/services/pci_names.py); without it those names are None."""
    b = parse_sections(text)
    pci = pci_of(b, pci_names)
    return {
        "system": system_of(b),
        "cpu": cpu_of(b),
        "memory": memory_of(b),
        "disks": disks_of(b),
        "nics": nics_of(b),
        "pci": pci,
        "gpus": gpus_of(pci),
        "firmware": firmware_of(b),
        "bmc": bmc_of(b),
    }
