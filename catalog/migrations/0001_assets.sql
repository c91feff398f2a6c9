-- Assets: uploaded videos and live streams' archives. Only types SQLite and PostgreSQL share
-- (TEXT, BIGINT, DOUBLE PRECISION): times are Unix milliseconds, lists are JSON text.
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    error TEXT,
    source TEXT NOT NULL,
    stream TEXT,
    title TEXT,
    description TEXT,
    tags TEXT NOT NULL,
    passthrough TEXT,
    playback TEXT NOT NULL,
    duration DOUBLE PRECISION,
    width BIGINT,
    height BIGINT,
    codecs TEXT NOT NULL,
    renditions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX assets_created ON assets (created_at, id);
CREATE INDEX assets_status ON assets (status, created_at);
CREATE INDEX assets_passthrough ON assets (passthrough);
-- One row per tag of an asset, for filtering (the asset's own `tags` is what it reads back).
CREATE TABLE asset_tags (
    asset_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (asset_id, tag)
);
CREATE INDEX asset_tags_tag ON asset_tags (tag);
