-- How far an asset's preparation has come (0 to 100) while it is `preparing`; NULL otherwise.
-- Its preparer moves it on every few seconds, which also moves `updated_at`: an asset left
-- `preparing` and untouched for long was left by a process that stopped, and is taken again.
ALTER TABLE assets ADD COLUMN progress DOUBLE PRECISION;
CREATE INDEX assets_source_status ON assets (source, status, created_at);
