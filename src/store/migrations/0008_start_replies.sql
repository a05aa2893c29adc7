-- Starts replying to the message whose button was pressed (Vary, Zoom, Pan, the upscalers,
-- Animate): when that message is first seen after its start (a backfill reads history newest
-- first), what the start is may change (`Variations (Strong)` on a grid is a V button).
-- Results find theirs through `links_by_parent`.
CREATE INDEX messages_start_replies ON messages(reply_to) WHERE kind = 'progress' AND reply_to IS NOT NULL;
