-- What a saga is doing and who may drive it. `step` names the call the saga
-- makes next (written with the answer to the one before, so it is on disk
-- before the call goes out); `lease_until` is when an order still pending
-- counts as abandoned, so that any replica may settle it; `settle_cause` is
-- why its settling first began, the reason a rejection gives.
ALTER TABLE orders
    ADD COLUMN step text NOT NULL DEFAULT 'reserve'
        CHECK (step IN ('reserve', 'price', 'authorize', 'route', 'capture', 'commit', 'settle')),
    ADD COLUMN lease_until timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN settle_cause text;

DROP INDEX orders_in_flight;
CREATE INDEX orders_in_flight ON orders (lease_until) WHERE state = 'pending';
CREATE INDEX orders_to_ship ON orders (updated_at) WHERE state = 'confirmed';
