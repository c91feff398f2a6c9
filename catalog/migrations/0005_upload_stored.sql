-- Where an unfinished upload's bytes are in object storage (with `[archive] url` on S3): the
-- multipart upload, its parts so far and the object holding the bytes that do not fill a part
-- yet, as the uploads' store writes it (JSON). Moved on with `received`, in the same
-- statement, so the two always agree. NULL when uploads are on local disk.
ALTER TABLE uploads ADD COLUMN stored TEXT;
