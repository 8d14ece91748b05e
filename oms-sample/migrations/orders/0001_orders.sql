-- Orders, the requests that created them, the keys that make creation safe to
-- retry, and the saga's log.
CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    customer_id      text NOT NULL,
    state            text NOT NULL
                     CHECK (state IN ('pending', 'confirmed', 'rejected', 'shipped', 'returned')),
    reason           text,
    lines            jsonb NOT NULL,
    region           text NOT NULL,
    -- The create request as received: compared on a retry with the same key,
    -- and what a resumed saga works from.
    request          jsonb NOT NULL,
    quote            jsonb,
    payment_provider text,
    authorization_id text,
    reservation_id   text,
    shipment_id      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_in_flight ON orders (created_at) WHERE state = 'pending';

CREATE TABLE idempotency_keys (
    key        text PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE saga_log (
    id       bigserial PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    entry    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX saga_log_by_order ON saga_log (order_id, id);
