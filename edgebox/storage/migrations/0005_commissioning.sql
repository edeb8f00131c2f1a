-- Commissioning and testing: scripts (every version kept), runs of them on machines, and
-- their results with output. Times are seconds since the epoch (REAL).

-- One row per version. A new upload of a name is a new version; results point to the version
-- they ran, so versions are never deleted: deleting a script hides all its versions.
CREATE TABLE scripts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT NOT NULL,        -- commissioning | testing | release
    content     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    metadata    TEXT NOT NULL,        -- the validated header, as JSON
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    deleted_at  REAL,
    UNIQUE (name, version)
);

-- One commissioning or test of one machine.
CREATE TABLE script_runs (
    id            INTEGER PRIMARY KEY,
    machine_id    INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,      -- commissioning | testing
    state         TEXT NOT NULL,      -- running | passed | failed | aborted
    requested_by  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    finished_at   REAL
);
CREATE INDEX script_runs_machine ON script_runs (machine_id, id);
-- The runs in flight, read at start by the watchdog.
CREATE INDEX script_runs_running ON script_runs (state) WHERE state = 'running';

CREATE TABLE script_results (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES script_runs (id) ON DELETE CASCADE,
    machine_id       INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    script_id        INTEGER NOT NULL REFERENCES scripts (id),
    script_name      TEXT NOT NULL,
    script_version   INTEGER NOT NULL,
    position         INTEGER NOT NULL,   -- the order to start in
    expand           TEXT NOT NULL DEFAULT '',  -- storage | interface: waits for the inventory
    device           TEXT NOT NULL DEFAULT '',  -- a disk's kernel name (vda, nvme0n1)
    interface        TEXT NOT NULL DEFAULT '',  -- a NIC's name
    parameters       TEXT NOT NULL DEFAULT '{}',
    timeout          INTEGER NOT NULL DEFAULT 0,
    parallel         TEXT NOT NULL DEFAULT 'disabled',
    status           TEXT NOT NULL,
    reported_status  TEXT,               -- what the script's result file said
    exit_code        INTEGER,
    runtime          REAL,
    results          TEXT NOT NULL DEFAULT '{}',
    note             TEXT NOT NULL DEFAULT '',  -- edgebox's own remark (why aborted, ...)
    boot             TEXT NOT NULL DEFAULT '',  -- which boot of the machine started it
    started_at       REAL,
    finished_at      REAL
);
CREATE INDEX script_results_run ON script_results (run_id, position);
-- The fleet summary counts the troubled results of each machine's latest run.
CREATE INDEX script_results_trouble ON script_results (run_id, script_name)
    WHERE status IN ('failed', 'timedout', 'degraded');

-- Output apart from the results, so that listing results never reads megabytes.
CREATE TABLE script_output (
    result_id  INTEGER NOT NULL REFERENCES script_results (id) ON DELETE CASCADE,
    stream     TEXT NOT NULL,        -- stdout | stderr | result (the result file as sent)
    data       BLOB NOT NULL,
    size       INTEGER NOT NULL,     -- bytes sent; more than len(data) when the head was cut
    PRIMARY KEY (result_id, stream)
);

-- The inventory from commissioning (see docs/commissioning-contract.md §2) replaces the one
-- enlistment sent; a later enlistment must not overwrite it with its cruder one.
ALTER TABLE machine_inventory ADD COLUMN commissioned_at REAL;
