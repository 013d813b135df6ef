-- Sales, orders and the branch barrier of the two-phase message.

CREATE TABLE sales (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    total        INTEGER     NOT NULL CHECK (total >= 0),
    -- live orders (pending + paid): the database's own guard against overselling
    sold         INTEGER     NOT NULL DEFAULT 0,
    starts_at    TIMESTAMPTZ NOT NULL,
    ends_at      TIMESTAMPTZ,
    hold_seconds INTEGER     NOT NULL CHECK (hold_seconds > 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sales_sold_within_total CHECK (sold >= 0 AND sold <= total),
    CONSTRAINT sales_window CHECK (ends_at IS NULL OR ends_at > starts_at)
);

-- One row per branch operation that ran: inserting it first, in the branch's own transaction,
-- makes a repeated branch a no-op (DTM's barrier table).
CREATE TABLE barriers (
    gid        TEXT        NOT NULL,
    branch     TEXT        NOT NULL,
    op         TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gid, branch, op)
);

CREATE TABLE orders (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sale_id    BIGINT      NOT NULL REFERENCES sales (id),
    uid        TEXT        NOT NULL,
    -- <sale>/<uid>: one transaction, so one order row, per user and sale
    gid        TEXT        NOT NULL UNIQUE,
    status     TEXT        NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled', 'rejected')),
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX orders_one_live_per_user ON orders (sale_id, uid)
    WHERE status IN ('pending', 'paid');
CREATE INDEX orders_by_sale_status ON orders (sale_id, status);
