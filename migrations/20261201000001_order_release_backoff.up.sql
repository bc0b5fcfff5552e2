-- Releases that keep failing back off instead of being retried first in every sweep pass.
--
-- release_attempts counts failed SECKILL.RELEASE calls of a cancelled/expired order since
-- its last success, release_error keeps the last error, and next_release_at is when the
-- sweeper tries again (NULL: at once). A success sets released_at and clears all three.
-- The sweeper's due query filters on next_release_at, so it joins the unreleased index.
ALTER TABLE orders
    ADD COLUMN release_attempts INT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN release_error    VARCHAR(255) NULL,
    ADD COLUMN next_release_at  DATETIME(3)  NULL,
    DROP INDEX idx_orders_unreleased,
    ADD INDEX idx_orders_unreleased (status, released_at, next_release_at);
