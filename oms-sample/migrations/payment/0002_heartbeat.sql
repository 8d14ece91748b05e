-- The provider's status call writes here, so a probe of the status proves
-- the book still takes writes and costs what a customer's write costs: a
-- read-only check passes while the disk is full, and a probe much cheaper
-- than the traffic it stands for gives a drained provider a baseline that
-- its first real traffic breaks.
CREATE TABLE heartbeat (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    beats    bigint NOT NULL DEFAULT 0,
    beat_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO heartbeat DEFAULT VALUES;
