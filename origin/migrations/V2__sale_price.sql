-- The price shown on the sale page, in the currency's minor unit.
ALTER TABLE sales
    ADD COLUMN price_cents BIGINT NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    ADD COLUMN currency    TEXT   NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$');
