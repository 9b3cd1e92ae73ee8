-- Where this HAT was last served: `hatd serve` records its address (HATD_HAT_ADDRESS, or the
-- address it listens on) at every start. Commands run from another shell without those settings
-- (`hatd export`, `hatd backup run`) name the HAT by it, so that the CLI and the server agree on
-- which HAT this is without the user repeating every setting. One row at most.

CREATE TABLE served_address (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    address   text NOT NULL CHECK (address ~ '^https?://' AND length(address) <= 2000),
    served_at timestamptz NOT NULL DEFAULT now()
);
