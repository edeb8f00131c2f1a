-- Power control: the queue of BMC operations. It is durable so that a restart resumes (or
-- cleanly fails) what was in flight; finished operations stay as the record of what was done.

CREATE TABLE power_ops (
    id            INTEGER PRIMARY KEY,
    machine_id    INTEGER NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    op            TEXT NOT NULL,     -- on, on-network, off, soft-off, cycle, query
    state         TEXT NOT NULL,     -- queued, running, waiting, done, failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    requested_by  TEXT NOT NULL DEFAULT '',
    not_before    REAL NOT NULL DEFAULT 0,  -- a retry waits until then
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX power_ops_open ON power_ops (state, id) WHERE state IN ('queued', 'running', 'waiting');
CREATE INDEX power_ops_machine ON power_ops (machine_id, id);
