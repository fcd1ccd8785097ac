-- What inspection learns beyond the first migration's columns.
-- `flags`: JSON list of discrepancies (app id, user id or kind differing from what is recorded).
-- `meta_kind`: the type debug_token reports (USER, PAGE, APP).
ALTER TABLE tokens ADD COLUMN flags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tokens ADD COLUMN meta_kind TEXT;
