"""The host's pci.ids, read lazily; a host without one has no names."""

from __future__ import annotations

from pathlib import Path

from edgebox.services.pci_names import pci_name_lookup


def test_reads_the_first_file_there_on_first_use(tmp_path: Path) -> None:
    first, second = tmp_path / "misc.ids", tmp_path / "hwdata.ids"
    lookup = pci_name_lookup((first, second))
    second.write_text("10de  NVIDIA Corporation\n\t20b5  GA100 [A100 PCIe 80GB]\n")
    # Written after the lookup was made: the file is read only when first asked.
    assert lookup("10de", "20b5") == ("NVIDIA Corporation", "GA100 [A100 PCIe 80GB]")


def test_no_file_no_names(tmp_path: Path) -> None:
    assert pci_name_lookup((tmp_path / "absent",))("10de", "20b5") == (None, None)
