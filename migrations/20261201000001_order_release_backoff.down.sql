ALTER TABLE orders
    DROP INDEX idx_orders_unreleased,
    ADD INDEX idx_orders_unreleased (status, released_at),
    DROP COLUMN next_release_at,
    DROP COLUMN release_error,
    DROP COLUMN release_attempts;
