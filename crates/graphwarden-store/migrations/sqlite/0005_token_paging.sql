-- Inspection walks the inventory in keyset pages ordered by (app_id, alias); this index serves
-- those pages and every lookup by app that `tokens_app` served.
DROP INDEX tokens_app;
CREATE INDEX tokens_app_alias ON tokens (app_id, alias);
