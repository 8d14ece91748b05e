-- Stock per SKU and warehouse, the units held for orders, and reservations.
-- Every change is a conditional update: no two replicas can oversell.
CREATE TABLE stock (
    sku       text NOT NULL,
    warehouse text NOT NULL,
    on_hand   bigint NOT NULL CHECK (on_hand >= 0),
    PRIMARY KEY (sku, warehouse)
);

-- Per SKU: units on hand in all warehouses and units held by reservations.
-- Available = on_hand - held, never below zero.
CREATE TABLE sku_totals (
    sku     text PRIMARY KEY,
    on_hand bigint NOT NULL CHECK (on_hand >= 0),
    held    bigint NOT NULL CHECK (held >= 0),
    CHECK (held <= on_hand)
);

CREATE TABLE reservations (
    id         uuid PRIMARY KEY,
    order_id   text NOT NULL UNIQUE,
    lines      jsonb NOT NULL,
    state      text NOT NULL CHECK (state IN ('held', 'released', 'committed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reservations_held ON reservations (created_at) WHERE state = 'held';

-- Restocks named by their caller (a return), each applied once.
CREATE TABLE restocks (
    restock_id text PRIMARY KEY,
    units      bigint NOT NULL CHECK (units >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
