-- Order events received, each once: a redelivery finds its id here.
CREATE TABLE events (
    seq         bigserial PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    order_id    text NOT NULL,
    kind        text NOT NULL,
    at          text NOT NULL,
    detail      text,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_by_order ON events (order_id, seq);
