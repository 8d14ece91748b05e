-- One provider's book: authorisations (one per order) and the refunds taken
-- from them, each refund at most once per refund id.
CREATE TABLE authorizations (
    id             uuid PRIMARY KEY,
    order_id       text NOT NULL UNIQUE,
    card_token     text NOT NULL,
    amount_cents   bigint NOT NULL CHECK (amount_cents > 0),
    refunded_cents bigint NOT NULL DEFAULT 0
                   CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    state          text NOT NULL CHECK (state IN ('authorized', 'captured', 'voided', 'refunded')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX authorizations_open ON authorizations (created_at) WHERE state = 'authorized';

CREATE TABLE refunds (
    refund_id        text PRIMARY KEY,
    authorization_id uuid NOT NULL REFERENCES authorizations (id),
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);
