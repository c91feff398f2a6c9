-- The URL an asset's file is fetched from (POST /api/v1/assets with an input URL); NULL for
-- uploads and live archives. Kept apart from what the API shows: such a URL may carry a
-- signature.
ALTER TABLE assets ADD COLUMN input_url TEXT;
