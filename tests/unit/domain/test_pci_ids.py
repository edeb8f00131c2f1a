"""pci.ids parsing: vendors, their devices, and what is skipped."""

from __future__ import annotations

from edgebox.domain.pci_ids import parse_pci_ids

# The file's layout, with made-up entries.
TEXT = """\
#	List of PCI ID's (a comment)
#	Syntax: vendor, device, subsystem lines
0abc  Example Vendor, Inc.
	0001  Widget Controller
		0abc 1234  Widget Controller (OEM board)
	00ff  Widget Controller [rev 2]
0abd  Second Vendor
	zz12  not an id: skipped
	0100  Fabric Adapter
C 02  Network controller
	00  Ethernet controller
"""


def test_vendors_and_devices() -> None:
    ids = parse_pci_ids(TEXT.splitlines())
    assert ids.vendors == {"0abc": "Example Vendor, Inc.", "0abd": "Second Vendor"}
    assert ids.names("0ABC", "00FF") == ("Example Vendor, Inc.", "Widget Controller [rev 2]")
    assert ids.names("0abd", "0100") == ("Second Vendor", "Fabric Adapter")
    assert ids.names("0abc", "1234") == ("Example Vendor, Inc.", None)  # a subsystem only
    assert ids.names("ffff", "0001") == (None, None)
    assert len(ids.devices) == 3  # the class list's "00  Ethernet controller" is no device
