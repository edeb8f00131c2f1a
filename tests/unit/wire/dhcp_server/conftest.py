"""Fixtures for the DHCP server core tests; the helpers live in dhcp_server_lab.py."""

from __future__ import annotations

import pytest
from dhcp_server_lab import Lab


@pytest.fixture
def lab() -> Lab:
    return Lab()
