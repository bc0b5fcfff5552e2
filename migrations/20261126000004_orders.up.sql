-- One row per reservation acknowledged by SECKILL.RESERVE.
--
-- uk_orders_reservation makes a redelivered stream entry harmless (INSERT IGNORE / upsert).
-- uk_orders_live_user makes a second live (pending or paid) order of one user in one activity
-- impossible: live_user_id is the user while the order is live and NULL afterwards, and NULLs
-- never collide in a unique index, so a user can buy again after a cancel or an expiry.
-- user_id is the id the module saw (the gateway passes users.id); load-test users may exist
-- only in Redis, so there is no foreign key to users.
CREATE TABLE orders (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    reservation_id VARCHAR(41)     NOT NULL,
    activity_id    BIGINT UNSIGNED NOT NULL,
    product_id     VARCHAR(64)     NOT NULL,
    user_id        VARCHAR(64)     NOT NULL,
    quantity       INT UNSIGNED    NOT NULL,
    amount_cents   BIGINT UNSIGNED NOT NULL,
    status         ENUM('pending', 'paid', 'cancelled', 'expired') NOT NULL DEFAULT 'pending',
    reserved_at    DATETIME(3)     NOT NULL,
    expires_at     DATETIME(3)     NOT NULL,
    created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    paid_at        DATETIME(3)     NULL,
    -- Set once SECKILL.RELEASE returned the stock of a cancelled or expired order; a row that
    -- is cancelled/expired with released_at NULL is repaired by the sweeper.
    released_at    DATETIME(3)     NULL,
    live_user_id   VARCHAR(64) AS (IF(status IN ('pending', 'paid'), user_id, NULL)) STORED,
    PRIMARY KEY (id),
    UNIQUE KEY uk_orders_reservation (activity_id, reservation_id),
    UNIQUE KEY uk_orders_live_user (activity_id, live_user_id),
    KEY idx_orders_user (user_id, created_at),
    KEY idx_orders_status_expiry (status, expires_at),
    KEY idx_orders_unreleased (status, released_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
