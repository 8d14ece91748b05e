-- Order events waiting to be published, written in the transaction that
-- changes the order: the relay publishes them to JetStream in `seq` order
-- and stamps `published_at` once the broker has acknowledged them. Rows
-- stay after publication, as the record of what was sent.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    order_id     uuid NOT NULL REFERENCES orders (id),
    kind         text NOT NULL
                 CHECK (kind IN ('created', 'confirmed', 'rejected', 'shipped', 'returned')),
    detail       text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
