-- Planned shipments, one per order.
CREATE TABLE shipments (
    id               uuid PRIMARY KEY,
    order_id         text NOT NULL UNIQUE,
    legs             jsonb NOT NULL,
    total_cost_cents bigint NOT NULL CHECK (total_cost_cents >= 0),
    state            text NOT NULL CHECK (state IN ('planned', 'cancelled')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
