-- Boot windows (docs/security.md): a known machine's agent token is handed out only while
-- edgebox itself has the machine in a status that boots the ephemeral environment, once per
-- entry into that status, to one network address. A window is identified by the time its
-- status began (machines.status_changed_at); a newer status is a new window.
CREATE TABLE boot_windows (
    machine_id   INTEGER PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    opened_at    REAL NOT NULL,     -- the machine's status_changed_at when it was claimed
    claimed_from TEXT NOT NULL,     -- the address that claimed it: the agent's calls come from it
    claimed_at   REAL NOT NULL
);
-- The address a token was handed to; every call with it must come from there.
ALTER TABLE boot_tokens ADD COLUMN source TEXT NOT NULL DEFAULT '';
-- Expired tokens are deleted as new ones are issued.
CREATE INDEX boot_tokens_expiry ON boot_tokens (expires_at);
