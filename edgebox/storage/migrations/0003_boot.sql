-- Network boot: per-boot tokens for the ephemeral environment's agent, and hardware
-- inventory (with the identifiers used to recognise a machine whose NIC was replaced).

CREATE TABLE boot_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    mac         TEXT NOT NULL,       -- the NIC that booted; the token speaks for it only
    machine_id  INTEGER REFERENCES machines (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    issued_at   REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX boot_tokens_mac ON boot_tokens (mac);

CREATE TABLE machine_inventory (
    machine_id  INTEGER PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    smbios_uuid TEXT NOT NULL DEFAULT '',
    serial      TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL,       -- the agent's inventory, as JSON
    updated_at  REAL NOT NULL
);
CREATE INDEX machine_inventory_uuid ON machine_inventory (smbios_uuid);
CREATE INDEX machine_inventory_serial ON machine_inventory (serial);

-- The boot timeline reads events by type and MAC.
CREATE INDEX events_type ON events (type, seq);
