"""The per-row hardware summary: written with each inventory, read with each machine, and
filled for inventories stored before it existed by SQL that agrees with summary_of."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edgebox.domain.hardware import HardwareSummary, summary_of
from edgebox.domain.hardware_bundle import parse_bundle
from edgebox.storage.migrations import load_migrations, migrate
from tests.unit.domain.test_hardware import BUNDLES, ENLISTED

SAMPLES: list[dict[str, Any]] = [
    ENLISTED,
    parse_bundle((BUNDLES / "qemu-q35-bios.txt").read_text()),
    parse_bundle((BUNDLES / "qemu-q35-uefi.txt").read_text()),
    {"cpu": {"arch": "aarch64", "cores": 8}, "memory": {"total_mib": 0}, "memory_mib": 64},
    {"disks": [], "gpus": [{"vendor": "nvidia", "name": "A100"}, {"vendor": "amd"}]},
    {},
]


@pytest.mark.parametrize("inventory", SAMPLES, ids=range(len(SAMPLES)))
def test_the_migration_summarises_as_summary_of_does(tmp_path: Path, inventory: Any) -> None:
    migrations = load_migrations()
    before = [m for m in migrations if m.version < 8]
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.row_factory = sqlite3.Row
    migrate(conn, str(tmp_path / "old.db"), before)
    conn.execute(
        "INSERT INTO machines (system_id, hostname, status, arch, pool, zone, power_state, "
        "created_at, updated_at, status_changed_at) "
        "VALUES ('abc', 'node-abc', 'new', '', 'default', 'default', 'unknown', 0, 0, 0)"
    )
    conn.execute(
        "INSERT INTO machine_inventory (machine_id, data, updated_at) "
        "VALUES ((SELECT id FROM machines), ?, 0)",
        (json.dumps(inventory),),
    )
    conn.commit()
    migrate(conn, str(tmp_path / "old.db"), migrations)
    (stored,) = conn.execute("SELECT summary FROM machine_inventory").fetchone()
    conn.close()
    assert HardwareSummary.from_dict(json.loads(stored)) == summary_of(inventory)
