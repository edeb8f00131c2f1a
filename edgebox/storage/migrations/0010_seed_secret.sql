-- The deployed OS reads its seed (user-data above all: passwords, vault tokens) at a URL with a
-- secret of its deployment's own (docs/security.md); deployments made before this version
-- have none, and their seed gives only what is no secret.
ALTER TABLE deployments ADD COLUMN seed_secret TEXT NOT NULL DEFAULT '';
