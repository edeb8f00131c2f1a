-- The image cache: signed image manifests and the content-addressed files they list.
-- The files themselves live on disk under <images dir>/sha256/<hex>; these rows say which
-- image needs which file, whether it is complete, and what protects it from eviction.

CREATE TABLE images (
    id          TEXT PRIMARY KEY,    -- SHA-256 of the manifest's canonical bytes
    name        TEXT NOT NULL,
    envelope    TEXT NOT NULL,       -- the signed manifest, as it was received
    key_id      TEXT NOT NULL,       -- the trusted key that signed it
    source      TEXT NOT NULL,       -- JSON: {"path": …} | {"url": …} | {"upstream": …, "name": …}
    state       TEXT NOT NULL,       -- importing | ready | failed
    error       TEXT NOT NULL DEFAULT '',
    pinned      INTEGER NOT NULL DEFAULT 0,
    size        INTEGER NOT NULL,    -- bytes of its files
    created     TEXT NOT NULL,       -- the manifest's creation time (newest of a name wins)
    imported_at REAL NOT NULL,
    updated_at  REAL NOT NULL,
    last_used   REAL NOT NULL        -- for LRU eviction: import, deploy (acquire)
);
CREATE INDEX images_name ON images (name, created);

CREATE TABLE image_files (
    image_id  TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (image_id, sha256)
);
CREATE INDEX image_files_sha ON image_files (sha256);

-- Who uses an image now (a deploying machine): such an image is never evicted or deleted.
-- One image per holder; the deploy service releases it when the deploy ends either way.
CREATE TABLE image_holds (
    holder    TEXT PRIMARY KEY,
    image_id  TEXT NOT NULL REFERENCES images (id),
    since     REAL NOT NULL
);
CREATE INDEX image_holds_image ON image_holds (image_id);
