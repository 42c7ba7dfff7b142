-- Keeper price tracker: the tables the Kafka consumers write.
-- Idempotent (IF NOT EXISTS): apply it as often as you like.
--   psql "$DATABASE_URL" -f schema.sql

-- A product someone watches. Users add watches through the app; the deal consumer
-- also creates (or refreshes) one for every product that shows up as a deal.
CREATE TABLE IF NOT EXISTS watched_products (
    asin           TEXT PRIMARY KEY,
    product_title  TEXT,
    domain         TEXT NOT NULL DEFAULT 'de',
    currency       TEXT NOT NULL DEFAULT 'EUR',
    target_price   NUMERIC(12, 2),          -- NULL: no alert wanted
    current_price  NUMERIC(12, 2),          -- the last price seen (price update or deal)
    last_price_at  TIMESTAMP,               -- "timestamp" of that event
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every price we learned about, from `price-updates` (source 'price_update') and from
-- `deal-updates` (source 'deal'). The Kafka coordinates make processing idempotent:
-- a record redelivered after a crash or a rebalance (at-least-once) is not stored twice.
CREATE TABLE IF NOT EXISTS price_history (
    id               BIGSERIAL PRIMARY KEY,
    asin             TEXT NOT NULL,
    price            NUMERIC(12, 2) NOT NULL,
    currency         TEXT NOT NULL DEFAULT 'EUR',
    domain           TEXT NOT NULL DEFAULT 'de',
    source           TEXT NOT NULL CHECK (source IN ('price_update', 'deal')),
    event_time       TIMESTAMP,             -- the event's "timestamp"
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    kafka_topic      TEXT NOT NULL,
    kafka_partition  INTEGER NOT NULL,
    kafka_offset     BIGINT NOT NULL,
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX IF NOT EXISTS price_history_asin_idx ON price_history (asin, id);

-- Raised by the price consumer when current_price <= target_price * 1.01.
CREATE TABLE IF NOT EXISTS price_alerts (
    id                BIGSERIAL PRIMARY KEY,
    asin              TEXT NOT NULL,
    product_title     TEXT,
    current_price     NUMERIC(12, 2) NOT NULL,
    target_price      NUMERIC(12, 2) NOT NULL,
    price_history_id  BIGINT NOT NULL UNIQUE REFERENCES price_history (id),
    status            TEXT NOT NULL DEFAULT 'pending',   -- the notifier sets 'sent'
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS price_alerts_pending_idx ON price_alerts (status, id);

-- Deal snapshots from `deal-updates` (the fields price_history has no column for).
CREATE TABLE IF NOT EXISTS deals (
    id                BIGSERIAL PRIMARY KEY,
    asin              TEXT NOT NULL,
    product_title     TEXT,
    current_price     NUMERIC(12, 2) NOT NULL,
    original_price    NUMERIC(12, 2),
    discount_percent  NUMERIC(6, 2),
    rating            NUMERIC(3, 1),
    review_count      INTEGER,
    sales_rank        INTEGER,
    domain            TEXT NOT NULL DEFAULT 'de',
    event_time        TIMESTAMP,
    price_history_id  BIGINT NOT NULL UNIQUE REFERENCES price_history (id),
    recorded_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deals_asin_idx ON deals (asin, id);
