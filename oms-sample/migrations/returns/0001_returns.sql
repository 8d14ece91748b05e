-- Return authorisations, one per order. A return is claimed (`requested`)
-- before its refund is asked for, so two replicas never refund it twice.
CREATE TABLE returns (
    id           uuid PRIMARY KEY,
    order_id     text NOT NULL UNIQUE,
    lines        jsonb NOT NULL,
    refund_cents bigint NOT NULL CHECK (refund_cents >= 0),
    state        text NOT NULL CHECK (state IN ('requested', 'refunded')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
