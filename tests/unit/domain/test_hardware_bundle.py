"""The bundle parser: a bundle captured from a QEMU VM, and hand-made fragments of real
server hardware (DIMMs, an NVIDIA GPU beside the BMC's VGA, Mellanox adapters, SAS/SATA
disks, UEFI Secure Boot)."""

from __future__ import annotations

from pathlib import Path

from edgebox.domain.hardware_bundle import parse_bundle, parse_sections
from edgebox.domain.pci_ids import parse_pci_ids
from tests.unit.domain.test_smbios import memory_device

BUNDLES = Path(__file__).with_name("hardware_bundles")


def text(path: str, content: str) -> str:
    return f"=== {path}\n{content}\n"


def hexdump(path: str, data: bytes) -> str:
    rows = [" " + " ".join(f"{b:02x}" for b in data[i : i + 16]) for i in range(0, len(data), 16)]
    return f"=== hex {path}\n" + "\n".join(rows) + "\n"


def link(path: str, target: str) -> str:
    return f"=== link {path}\n{target}\n"


def pci_device(address: str, vendor: str, device: str, klass: str, driver: str | None) -> str:
    dev = f"/sys/bus/pci/devices/{address}"
    out = text(f"{dev}/vendor", f"0x{vendor}") + text(f"{dev}/device", f"0x{device}")
    out += text(f"{dev}/class", f"0x{klass}")
    if driver:
        out += link(f"{dev}/driver", f"/sys/bus/pci/drivers/{driver}")
    return out


# -- a captured bundle ------------------------------------------------------------------------


def test_qemu_vm_bundle_matches_the_vm_definition() -> None:
    """qemu-q35-bios.txt: `edgebox-inventory` in the ephemeral environment, in the VM of
    tests/integration/test_agent_scripts.py: q35, -smp 2 (1 socket, 2 cores), -m 512,
    -smbios type=1 (EdgeboxLab/EphemeralTest/EB-SERIAL-0001/uuid), virtio-blk 2 GiB serial
    EBDISK0001 and 3 GiB EBDISK0002, nvme 1 GiB serial EBNVME0001, virtio-net
    52:54:00:eb:e1:01 and e1000 52:54:00:eb:e1:02, ipmi-bmc-sim on isa-ipmi-kcs, SeaBIOS."""
    inv = parse_bundle((BUNDLES / "qemu-q35-bios.txt").read_text())
    assert inv["system"] == {
        "vendor": "EdgeboxLab", "product": "EphemeralTest", "serial": "EB-SERIAL-0001",
        "uuid": "6e0c5d8a-3f7b-4c1e-9a2d-0b1c2d3e4f50",
    }  # fmt: skip
    cpu = inv["cpu"]
    assert {k: v for k, v in cpu.items() if k != "flags"} == {
        "model": "QEMU TCG CPU version 2.5+", "arch": "x86_64", "sockets": 1, "cores": 2,
        "threads": 2, "mhz": 2596,
    }  # fmt: skip
    assert {"sse2", "lm", "hypervisor"} <= set(cpu["flags"])
    assert inv["memory"] == {
        "total_mib": 512,
        "dimms": [{"locator": "DIMM 0", "size_mib": 512, "type": "RAM", "speed_mts": None,
                   "manufacturer": "QEMU", "serial": None, "part_number": None}],
    }  # fmt: skip
    assert inv["disks"] == [
        {"name": "nvme0n1", "type": "nvme", "size_bytes": 1 << 30, "model": "QEMU NVMe Ctrl",
         "serial": "EBNVME0001", "firmware": "7.2.22", "logical_sector": 512,
         "physical_sector": 512, "rotational": False, "pci_address": "0000:00:05.0"},
        {"name": "vda", "type": "virtual", "size_bytes": 2 << 30, "model": None,
         "serial": "EBDISK0001", "firmware": None, "logical_sector": 512,
         "physical_sector": 512, "rotational": True, "pci_address": "0000:00:03.0"},
        {"name": "vdb", "type": "virtual", "size_bytes": 3 << 30, "model": None,
         "serial": "EBDISK0002", "firmware": None, "logical_sector": 512,
         "physical_sector": 512, "rotational": True, "pci_address": "0000:00:04.0"},
    ]  # fmt: skip
    assert inv["nics"] == [
        {"name": "eth0", "mac": "52:54:00:eb:e1:01", "driver": "virtio_net", "speed_mbps": None,
         "link": True, "pci_address": "0000:00:02.0"},
        {"name": "eth1", "mac": "52:54:00:eb:e1:02", "driver": "e1000", "speed_mbps": 1000,
         "link": True, "pci_address": "0000:00:06.0"},
    ]  # fmt: skip
    kinds = {d["address"]: (d["vendor_id"], d["device_id"], d["kind"]) for d in inv["pci"]}
    assert kinds["0000:00:01.0"] == ("1234", "1111", "other")  # QEMU's VGA: not a GPU
    assert kinds["0000:00:02.0"] == ("1af4", "1000", "network")
    assert kinds["0000:00:05.0"] == ("1b36", "0010", "storage")
    assert kinds["0000:00:06.0"] == ("8086", "100e", "network")
    assert kinds["0000:00:1f.2"] == ("8086", "2922", "storage")  # q35's AHCI controller
    assert len(kinds) == 10
    assert all(d["vendor"] is None and d["device"] is None for d in inv["pci"])  # no lookup
    assert inv["gpus"] == []
    assert inv["firmware"] == {
        "type": "bios", "secure_boot": False, "vendor": "SeaBIOS",
        "version": "1.16.2-debian-1.16.2-1", "date": "04/01/2014",
    }  # fmt: skip
    assert inv["bmc"] == {"present": True, "type": "ipmi"}


def test_pci_names_come_from_the_lookup() -> None:
    ids = parse_pci_ids(["8086  Intel Corporation", "\t100e  82540EM Gigabit Ethernet"])
    inv = parse_bundle((BUNDLES / "qemu-q35-bios.txt").read_text(), ids.names)
    [e1000] = [d for d in inv["pci"] if d["address"] == "0000:00:06.0"]
    assert (e1000["vendor"], e1000["device"]) == ("Intel Corporation", "82540EM Gigabit Ethernet")


# -- fragments of real hardware ---------------------------------------------------------------

DIMMS = "".join(
    hexdump(f"/sys/firmware/dmi/entries/17-{i}/raw", raw)
    for i, raw in enumerate(
        [
            memory_device(size=0x7FFF, extended_size=32768),
            memory_device(size=0, kind=0x02, speed=0,
                          strings=("P1-DIMMA2", "NO DIMM", "NO DIMM", "NO DIMM", "", "")),
            memory_device(size=16384, kind=0x1A, speed=3200,
                          strings=("P2-DIMMA1", "BANK 1", "Micron", "2A0B0C0D", "",
                                   "36ASF2G72PZ-3G2E1")),
        ]
    )
)  # fmt: skip


def test_dimms_and_installed_memory() -> None:
    inv = parse_bundle(text("/proc/meminfo", "MemTotal:       49283072 kB") + DIMMS)
    assert inv["memory"] == {
        "total_mib": 32768 + 16384,  # installed, not MemTotal's 48128 MiB
        "dimms": [
            {"locator": "P1-DIMMA1", "size_mib": 32768, "type": "DDR4", "speed_mts": 2933,
             "manufacturer": "Samsung", "serial": "03A1B2C3",
             "part_number": "M393A4K40CB2-CVF"},
            {"locator": "P2-DIMMA1", "size_mib": 16384, "type": "DDR4", "speed_mts": 3200,
             "manufacturer": "Micron", "serial": "2A0B0C0D",
             "part_number": "36ASF2G72PZ-3G2E1"},
        ],
    }  # fmt: skip


def test_memtotal_when_smbios_gives_no_sizes() -> None:
    unknown = hexdump("/sys/firmware/dmi/entries/17-0/raw", memory_device(size=0xFFFF))
    meminfo = text("/proc/meminfo", "MemTotal:       49283072 kB\nMemFree:  1 kB")
    assert parse_bundle(meminfo + unknown)["memory"]["total_mib"] == 48128
    assert parse_bundle(meminfo)["memory"] == {"total_mib": 48128, "dimms": []}


def test_gpus_beside_the_bmc_vga() -> None:
    bundle = (
        pci_device("0000:03:00.0", "1a03", "2000", "030000", "ast")  # ASPEED BMC video
        + pci_device("0000:3b:00.0", "10de", "20b5", "030200", "nvidia")  # A100 80GB PCIe
        + pci_device("0000:86:00.0", "10de", "2330", "030200", None)  # H100 SXM, no driver
        + pci_device("0000:c1:00.0", "1002", "740f", "038000", "amdgpu")  # Instinct MI210
    )
    ids = parse_pci_ids(["10de  NVIDIA Corporation", "\t20b5  GA100 [A100 PCIe 80GB]"])
    inv = parse_bundle(bundle, ids.names)
    assert [(d["address"], d["kind"]) for d in inv["pci"]] == [
        ("0000:03:00.0", "other"), ("0000:3b:00.0", "gpu"), ("0000:86:00.0", "gpu"),
        ("0000:c1:00.0", "gpu"),
    ]  # fmt: skip
    assert inv["gpus"] == [
        {"address": "0000:3b:00.0", "vendor": "nvidia", "vendor_id": "10de",
         "device_id": "20b5", "name": "GA100 [A100 PCIe 80GB]"},
        {"address": "0000:86:00.0", "vendor": "nvidia", "vendor_id": "10de",
         "device_id": "2330", "name": None},
        {"address": "0000:c1:00.0", "vendor": "amd", "vendor_id": "1002",
         "device_id": "740f", "name": None},
    ]  # fmt: skip
    assert inv["pci"][1]["driver"] == "nvidia" and inv["pci"][2]["driver"] is None


def test_mellanox_infiniband_and_ethernet() -> None:
    ib0 = "/sys/class/net/ib0"
    bundle = (
        pci_device("0000:5e:00.0", "15b3", "101b", "020700", "mlx5_core")  # ConnectX-6, IB
        + pci_device("0000:d8:00.0", "15b3", "101d", "020000", "mlx5_core")  # ConnectX-6 Dx
        + link(f"{ib0}/device", "/sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0")
        + link(f"{ib0}/device/driver", "/sys/bus/pci/drivers/mlx5_core")
        + text(f"{ib0}/address", "00:00:10:29:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:12:34:56")
        + text(f"{ib0}/type", "32")
        + text(f"{ib0}/operstate", "down")
        + text(f"{ib0}/speed", "-1")
    )
    inv = parse_bundle(bundle)
    assert [d["kind"] for d in inv["pci"]] == ["infiniband", "network"]
    assert inv["nics"] == [
        {"name": "ib0", "mac": "00:00:10:29:fe:80:00:00:00:00:00:00:b8:ce:f6:03:00:12:34:56",
         "driver": "mlx5_core", "speed_mbps": None, "link": False,
         "pci_address": "0000:5e:00.0"},
    ]  # fmt: skip


def test_sas_hdd_sata_ssd_and_an_emulated_disk() -> None:
    def disk(name: str, rotational: str, vendor: str, model: str, rev: str) -> str:
        blk = f"/sys/block/{name}"
        host = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/host0/target0:0:0/0:0:0:0"
        return (
            link(blk, f"{host}/block/{name}")
            + text(f"{blk}/size", "35156656128")
            + text(f"{blk}/queue/rotational", rotational)
            + text(f"{blk}/queue/logical_block_size", "512")
            + text(f"{blk}/queue/physical_block_size", "4096")
            + text(f"{blk}/device/vendor", vendor)
            + text(f"{blk}/device/model", model)
            + text(f"{blk}/device/rev", rev)
        )

    serial = b"ZL2ABCDE0000C1234567"
    bundle = (
        disk("sda", "1", "SEAGATE ", "ST18000NM004J   ", "E004")
        + hexdump("/sys/block/sda/device/vpd_pg80", b"\x00\x80\x00\x14" + serial)
        + disk("sdb", "0", "ATA     ", "SAMSUNG MZ7L3480", "JXTC")
        + hexdump("/sys/block/sdb/device/vpd_pg80", b"\x00\x80\x00\x14" + b"  S664NE0R901234  ")
        + disk("sdc", "1", "QEMU    ", "QEMU HARDDISK   ", "2.5+")
        + text("/sys/block/sr0/size", "2097151")  # a DVD drive: not a disk
    )
    disks = {d["name"]: d for d in parse_bundle(bundle)["disks"]}
    assert set(disks) == {"sda", "sdb", "sdc"}
    assert disks["sda"] == {
        "name": "sda", "type": "hdd", "size_bytes": 35156656128 * 512, "model": "ST18000NM004J",
        "serial": "ZL2ABCDE0000C1234567", "firmware": "E004", "logical_sector": 512,
        "physical_sector": 4096, "rotational": True, "pci_address": "0000:01:00.0",
    }  # fmt: skip
    assert (disks["sdb"]["type"], disks["sdb"]["serial"]) == ("ssd", "S664NE0R901234")
    assert (disks["sdc"]["type"], disks["sdc"]["serial"]) == ("virtual", None)


def test_uefi_secure_boot() -> None:
    efi = "=== dir /sys/firmware/efi\n\n"
    var = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    on = parse_bundle(efi + hexdump(var, bytes.fromhex("0600000001")))["firmware"]
    off = parse_bundle(efi + hexdump(var, bytes.fromhex("0600000000")))["firmware"]
    unread = parse_bundle(efi)["firmware"]
    assert (on["type"], on["secure_boot"]) == ("uefi", True)
    assert (off["type"], off["secure_boot"]) == ("uefi", False)
    assert (unread["type"], unread["secure_boot"]) == ("uefi", None)


def test_an_empty_bundle_is_all_unknown() -> None:
    inv = parse_bundle("")
    assert inv["system"] == {"vendor": None, "product": None, "serial": None, "uuid": None}
    assert inv["cpu"] == {"model": None, "arch": None, "sockets": None, "cores": None,
                          "threads": None, "mhz": None, "flags": []}  # fmt: skip
    assert inv["memory"] == {"total_mib": None, "dimms": []}
    assert (inv["disks"], inv["nics"], inv["pci"], inv["gpus"]) == ([], [], [], [])
    assert inv["bmc"] == {"present": False, "type": None}


def test_cpuinfo_topology_without_sysfs() -> None:
    """Two sockets of 8 cores, 32 threads, told by cpuinfo alone (no topology files)."""
    blocks = "".join(
        f"processor\t: {n}\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n"
        f"physical id\t: {n // 16}\ncpu cores\t: 8\ncpu MHz\t\t: 2100.000\nflags\t\t: fpu vmx\n\n"
        for n in range(32)
    )
    cpu = parse_bundle(text("/proc/cpuinfo", blocks))["cpu"]
    assert (cpu["sockets"], cpu["cores"], cpu["threads"], cpu["mhz"]) == (2, 16, 32, 2100)
    assert cpu["flags"] == ["fpu", "vmx"]


def test_damage_is_contained() -> None:
    """Lines before any header, a header with no /sys or /proc path, a broken hex dump and a
    truncated SMBIOS structure lose only themselves."""
    bundle = (
        "noise before the first section\n"
        + text("/sys/class/dmi/id/sys_vendor", "Dell Inc.\n=== not a header: no path")
        + "=== hex /sys/firmware/dmi/entries/17-8/raw\n 11 28 zz\n"
        + hexdump("/sys/firmware/dmi/entries/17-9/raw", bytes.fromhex("11 28 00"))
        + DIMMS.replace("/17-0/", "/17-5/")
    )
    b = parse_sections(bundle)
    assert b.value("/sys/class/dmi/id/sys_vendor") == "Dell Inc.\n=== not a header: no path"
    inv = parse_bundle(bundle)
    # Table order: 17-2 (P2) before 17-5 (P1).
    assert [d["locator"] for d in inv["memory"]["dimms"]] == ["P2-DIMMA1", "P1-DIMMA1"]


def test_fake_tree_paths_parse_like_real_ones() -> None:
    bundle = text("/tmp/fake/sys/class/dmi/id/product_name", "PowerEdge R650")
    assert parse_bundle(bundle)["system"]["product"] == "PowerEdge R650"


def test_qemu_uefi_vm_bundle() -> None:
    """qemu-q35-uefi.txt: the same environment under OVMF (Debian's empty variable store: no
    keys enrolled), one virtio disk and NIC, -smp 2, -m 512, no BMC."""
    inv = parse_bundle((BUNDLES / "qemu-q35-uefi.txt").read_text())
    assert inv["firmware"] == {
        "type": "uefi", "secure_boot": False, "vendor": "EFI Development Kit II / OVMF",
        "version": "0.0.0", "date": "02/06/2015",
    }  # fmt: skip
    assert inv["bmc"] == {"present": False, "type": None}
    assert [(d["name"], d["serial"], d["size_bytes"]) for d in inv["disks"]] == [
        ("vda", "EBDISK0001", 2 << 30)
    ]
    assert [(n["mac"], n["driver"]) for n in inv["nics"]] == [("52:54:00:eb:e1:11", "virtio_net")]
    assert inv["memory"]["total_mib"] == 512
