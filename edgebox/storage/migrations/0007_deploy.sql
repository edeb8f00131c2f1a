-- Deploying and releasing machines (docs/deploy-contract.md): one row per deploy or release
-- of a machine, the agent's log apart from it, and rollouts (a bulk deploy in waves).
-- The allocation owner is machines.owner (0001). Times are seconds since the epoch (REAL).

CREATE TABLE rollouts (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,               -- deploy | release
    wave_size     INTEGER NOT NULL DEFAULT 0,  -- 0: every machine at once
    max_failures  INTEGER NOT NULL DEFAULT 0,  -- 0: never stop
    state         TEXT NOT NULL,               -- running | stopped | done
    reason        TEXT NOT NULL DEFAULT '',    -- why it stopped
    requested_by  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    finished_at   REAL
);
CREATE INDEX rollouts_running ON rollouts (state) WHERE state = 'running';

CREATE TABLE deployments (
    id              INTEGER PRIMARY KEY,
    machine_id      INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,                -- deploy | release
    state           TEXT NOT NULL,                -- queued | running | succeeded | failed | aborted | skipped
    step            TEXT NOT NULL DEFAULT '',     -- writing | booting | power-off | erasing
    rollout_id      INTEGER REFERENCES rollouts (id) ON DELETE SET NULL,
    wave            INTEGER NOT NULL DEFAULT 0,
    allocated_here  INTEGER NOT NULL DEFAULT 0,   -- the request allocated a Ready machine
    image_id        TEXT NOT NULL DEFAULT '',
    image_name      TEXT NOT NULL DEFAULT '',
    image_sha256    TEXT NOT NULL DEFAULT '',     -- the disk file as stored and served
    image_size      INTEGER NOT NULL DEFAULT 0,
    compression     TEXT NOT NULL DEFAULT '',
    user_data       TEXT NOT NULL DEFAULT '',
    ssh_keys        TEXT NOT NULL DEFAULT '[]',   -- JSON list of public key lines
    hostname        TEXT NOT NULL DEFAULT '',
    disk            TEXT NOT NULL DEFAULT '',     -- asked for, then the one the agent wrote
    boot_mac        TEXT NOT NULL DEFAULT '',
    erase           TEXT NOT NULL DEFAULT 'none', -- release: none | quick | full | secure
    agent_step      TEXT NOT NULL DEFAULT '',     -- the agent's last progress step
    done            INTEGER NOT NULL DEFAULT 0,   -- its progress in bytes (the last known)
    total           INTEGER NOT NULL DEFAULT 0,
    result          TEXT NOT NULL DEFAULT '{}',   -- the agent's success report
    error           TEXT NOT NULL DEFAULT '',
    failed_step     TEXT NOT NULL DEFAULT '',
    power_op_id     INTEGER,                      -- release: the power-off it waits for
    requested_by    TEXT NOT NULL,
    comment         TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    updated_at      REAL NOT NULL
);
CREATE INDEX deployments_machine ON deployments (machine_id, id);
-- Read at start (what was in flight) and on each deploy request (one open per machine).
CREATE INDEX deployments_open ON deployments (machine_id) WHERE state IN ('queued', 'running');
CREATE INDEX deployments_rollout ON deployments (rollout_id, wave) WHERE rollout_id IS NOT NULL;

-- The agent's log: the last 4 MiB it sent (like script output), apart from the row.
CREATE TABLE deployment_logs (
    deployment_id  INTEGER PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    data           BLOB NOT NULL,
    size           INTEGER NOT NULL       -- bytes sent; more than len(data) when the head was cut
);
