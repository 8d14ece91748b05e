-- A claim is carried out by one request at a time: the one whose lease
-- (`claimed_until`) is in force. A request that cannot tell whether the
-- refund went through keeps the claim and gives its lease up; a retry
-- resumes it, with the provider and authorisation recorded here (the refund
-- and the restock are keyed by the order, so resuming never does either
-- twice). Claims made before this migration have no provider: a retry
-- brings it.
ALTER TABLE returns
    ADD COLUMN claimed_until    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN provider         text,
    ADD COLUMN authorization_id text;
