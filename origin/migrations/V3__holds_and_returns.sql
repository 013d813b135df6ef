-- Holds, payment and the return of units: an order is a soft hold until expires_at; payment marks
-- it paid (idempotent by payment_id); expiry or the user cancels it and the unit goes back to
-- Redis through a second two-phase message whose database side is the `returns` row.

ALTER TABLE orders
    ADD COLUMN payment_id    TEXT UNIQUE,
    ADD COLUMN paid_at       TIMESTAMPTZ,
    ADD COLUMN extended      BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN cancelled_at  TIMESTAMPTZ,
    ADD COLUMN cancel_reason TEXT;

CREATE INDEX orders_pending_by_expiry ON orders (expires_at) WHERE status = 'pending';

-- One row per cancelled order whose unit goes back to Redis; done_at is set once Redis has it
-- (restock.lua, with its own barrier). A row without done_at is a unit in the middle of a return.
CREATE TABLE returns (
    order_id   BIGINT      PRIMARY KEY REFERENCES orders (id),
    sale_id    BIGINT      NOT NULL REFERENCES sales (id),
    gid        TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at    TIMESTAMPTZ
);

CREATE INDEX returns_in_flight ON returns (created_at) WHERE done_at IS NULL;
