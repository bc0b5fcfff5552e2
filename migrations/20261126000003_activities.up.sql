-- A flash sale. Redis holds the live counters (SECKILL.CREATE preheats them from this row);
-- this row is the durable description. end_at NULL means no end.
CREATE TABLE activities (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    product_id          BIGINT UNSIGNED NOT NULL,
    title               VARCHAR(200)    NOT NULL,
    stock               BIGINT UNSIGNED NOT NULL,
    per_user_limit      INT UNSIGNED    NOT NULL DEFAULT 1,
    price_cents         BIGINT UNSIGNED NOT NULL,
    start_at            DATETIME(3)     NOT NULL,
    end_at              DATETIME(3)     NULL,
    payment_window_secs INT UNSIGNED    NOT NULL DEFAULT 900,
    created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY idx_activities_start (start_at),
    CONSTRAINT fk_activities_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
