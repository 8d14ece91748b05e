-- A return the customer asked for and `returns` has not yet refunded: the
-- request as orders sent it, kept until the refund is recorded (the order
-- becomes returned) or the provider refuses it. `return_due` is when a
-- replica's recovery asks `returns` again, so a return whose answer was
-- lost, or whose `returns` replica died, completes without the customer.
ALTER TABLE orders
    ADD COLUMN return_request jsonb,
    ADD COLUMN return_due timestamptz;

CREATE INDEX orders_returns_due ON orders (return_due) WHERE return_request IS NOT NULL;
