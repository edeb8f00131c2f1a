-- The first schema: site identity, machines and their interfaces, BMCs, tags, the event log,
-- users and API tokens. Times are seconds since the epoch (REAL).

CREATE TABLE site (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    site_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE machines (
    id                 INTEGER PRIMARY KEY,
    system_id          TEXT NOT NULL UNIQUE,
    hostname           TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL,
    previous_status    TEXT,
    arch               TEXT NOT NULL DEFAULT '',
    pool               TEXT NOT NULL DEFAULT 'default',
    zone               TEXT NOT NULL DEFAULT 'default',
    owner              TEXT,
    locked             INTEGER NOT NULL DEFAULT 0,
    power_state        TEXT NOT NULL DEFAULT 'unknown',
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    status_changed_at  REAL NOT NULL
);
CREATE INDEX machines_status ON machines (status);
CREATE INDEX machines_pool ON machines (pool);
CREATE INDEX machines_zone ON machines (zone);

CREATE TABLE interfaces (
    id          INTEGER PRIMARY KEY,
    machine_id  INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    mac         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    boot        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX interfaces_machine ON interfaces (machine_id);

CREATE TABLE bmcs (
    id          INTEGER PRIMARY KEY,
    machine_id  INTEGER NOT NULL UNIQUE REFERENCES machines (id) ON DELETE CASCADE,
    driver      TEXT NOT NULL,
    address     TEXT NOT NULL DEFAULT '',
    username    TEXT NOT NULL DEFAULT '',
    secret      BLOB,             -- encrypted at rest; never returned by the API
    options     TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    definition  TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE machine_tags (
    machine_id  INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (machine_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX machine_tags_tag ON machine_tags (tag_id);

-- Append-only. AUTOINCREMENT: a sequence number is never reused, even after the newest rows
-- are deleted, so the hub and every follower can sync by "after seq".
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time        REAL NOT NULL,
    type        TEXT NOT NULL,
    level       TEXT NOT NULL,
    machine     TEXT,             -- system_id; events outlive their machine
    message     TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_machine ON events (machine, seq);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_used_at  REAL,
    revoked_at    REAL
);
