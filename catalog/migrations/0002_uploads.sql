-- Direct uploads: a URL an operator's backend asks for and hands to a creator's browser. It
-- may create one tus upload, until it expires; the upload becomes an asset with `settings`.
CREATE TABLE direct_uploads (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    cors_origin TEXT,
    settings TEXT NOT NULL,
    upload_id TEXT,
    asset_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX direct_uploads_expires ON direct_uploads (status, expires_at);
-- tus uploads: how many bytes are in (the truth a client resumes from), of how many (NULL
-- until a deferred length is told), and the client's Upload-Metadata as it sent it.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    direct_id TEXT NOT NULL,
    length BIGINT,
    received BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX uploads_expires ON uploads (expires_at);
