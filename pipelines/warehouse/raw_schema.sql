-- The raw layer: append-only landing tables. Every row is one observation as fetched, with the
-- full JSON payload kept untouched so nothing a provider sends is ever lost. Typed key columns
-- sit beside the payload so staging does not have to re-parse JSON for joins.
CREATE SCHEMA IF NOT EXISTS raw;

-- One row per ingestion asset execution that finished (complete, partial or failed). Staging
-- trusts list snapshots only from loads marked complete, so a crashed run never counts.
CREATE TABLE IF NOT EXISTS raw.ingest_log (
    run_id          VARCHAR     NOT NULL,
    asset           VARCHAR     NOT NULL,
    provider        VARCHAR,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    status          VARCHAR     NOT NULL,  -- complete | partial | failed | skipped
    rows_written    BIGINT      NOT NULL,
    requests        BIGINT,
    window_from     DATE,                   -- list loads restricted to a created_at window
    window_to       DATE,
    detail          VARCHAR
);

-- eSIMTrade stored order list (GET /reseller/orders), one row per order per load.
CREATE TABLE IF NOT EXISTS raw.esimtrade_orders (
    run_id             VARCHAR     NOT NULL,
    fetched_at         TIMESTAMPTZ NOT NULL,
    source_endpoint    VARCHAR     NOT NULL,
    provider           VARCHAR     NOT NULL,
    provider_order_no  VARCHAR     NOT NULL,
    status             VARCHAR,
    package_code       VARCHAR,
    quantity           INTEGER,
    cost_price         DECIMAL(18, 4),
    sell_price         DECIMAL(18, 4),
    page               INTEGER,
    payload            JSON        NOT NULL
);

-- eSIMTrade per-order syncs (GET /portal/orders?orderno=), one row per eSIM per sync; a 404 or a
-- failed sync is one row with outcome not_found / failed and no eSIM columns.
CREATE TABLE IF NOT EXISTS raw.esimtrade_order_syncs (
    run_id              VARCHAR     NOT NULL,
    fetched_at          TIMESTAMPTZ NOT NULL,
    source_endpoint     VARCHAR     NOT NULL,
    provider            VARCHAR     NOT NULL,
    requested_order_no  VARCHAR,
    requested_iccid     VARCHAR,
    outcome             VARCHAR     NOT NULL,  -- ok | not_found | failed
    http_status         INTEGER,
    error               VARCHAR,
    esim_tran_no        VARCHAR,
    order_no            VARCHAR,
    iccid               VARCHAR,
    esim_status         VARCHAR,
    smdp_status         VARCHAR,
    total_volume        BIGINT,
    order_usage         BIGINT,
    package_code        VARCHAR,
    payload             JSON
);

-- PressOne order list (GET /customer/v2/orders), sims flattened: one row per sim per load; an
-- order without sims is one row with sim columns null. payload is the whole order object.
CREATE TABLE IF NOT EXISTS raw.pressone_orders (
    run_id           VARCHAR     NOT NULL,
    fetched_at       TIMESTAMPTZ NOT NULL,
    source_endpoint  VARCHAR     NOT NULL,
    provider         VARCHAR     NOT NULL,
    order_id         BIGINT      NOT NULL,
    order_code       VARCHAR     NOT NULL,
    order_type       VARCHAR,
    order_status     VARCHAR,
    created_at       TIMESTAMPTZ,
    package_id       VARCHAR,
    quantity         INTEGER,
    price            DECIMAL(18, 4),
    currency         VARCHAR,
    sim_id           BIGINT,
    sim_index        INTEGER,
    iccid            VARCHAR,
    payload          JSON        NOT NULL
);

-- PressOne usage (GET /customer/v2/sims/{iccid}/usage), one row per ICCID per fetch. Amounts
-- are megabytes as sent; staging converts to bytes.
CREATE TABLE IF NOT EXISTS raw.pressone_usage (
    run_id           VARCHAR     NOT NULL,
    fetched_at       TIMESTAMPTZ NOT NULL,
    source_endpoint  VARCHAR     NOT NULL,
    provider         VARCHAR     NOT NULL,
    iccid            VARCHAR     NOT NULL,
    order_code       VARCHAR,
    outcome          VARCHAR     NOT NULL,  -- ok | not_found | failed
    http_status      INTEGER,
    error            VARCHAR,
    usage_status     VARCHAR,
    total_mb         DOUBLE,
    remaining_mb     DOUBLE,
    is_unlimited     BOOLEAN,
    expired_at       TIMESTAMPTZ,
    payload          JSON
);

-- The reseller's own records, one load per run (the whole file each time).
CREATE TABLE IF NOT EXISTS raw.local_orders (
    run_id        VARCHAR     NOT NULL,
    loaded_at     TIMESTAMPTZ NOT NULL,
    source_file   VARCHAR     NOT NULL,
    line_no       INTEGER     NOT NULL,
    provider      VARCHAR     NOT NULL,
    order_no      VARCHAR     NOT NULL,
    iccid         VARCHAR,
    package_code  VARCHAR,
    status        VARCHAR,
    amount        DECIMAL(18, 4),
    currency      VARCHAR,
    created_at    TIMESTAMPTZ,
    payload       JSON        NOT NULL   -- the row as read, every column as text
);

-- Local rows that could not be loaded, with the line and the reason.
CREATE TABLE IF NOT EXISTS raw.local_orders_rejected (
    run_id       VARCHAR     NOT NULL,
    loaded_at    TIMESTAMPTZ NOT NULL,
    source_file  VARCHAR     NOT NULL,
    line_no      INTEGER     NOT NULL,
    reason       VARCHAR     NOT NULL,
    raw_line     VARCHAR
);

-- Provider answers, or single records of an answer, that were refused before they reached a
-- typed column: kept as received (cut where huge) with the reason. A refused per-order sync or
-- usage answer also leaves a `failed` row in its raw table (so the order is `sync_failed`).
CREATE TABLE IF NOT EXISTS raw.provider_quarantine (
    run_id           VARCHAR     NOT NULL,
    fetched_at       TIMESTAMPTZ NOT NULL,
    asset            VARCHAR     NOT NULL,
    provider         VARCHAR     NOT NULL,
    target_table     VARCHAR     NOT NULL,
    source_endpoint  VARCHAR     NOT NULL,
    http_status      INTEGER,
    page             INTEGER,
    kind             VARCHAR     NOT NULL,
    reason           VARCHAR     NOT NULL,
    body_bytes       BIGINT      NOT NULL,
    truncated        BOOLEAN     NOT NULL,
    raw_text         VARCHAR     NOT NULL
);
COMMENT ON TABLE raw.provider_quarantine IS 'Provider answers and records refused before typing (too large, too deep, not JSON, values beyond their column), kept as received with the reason; one row per refused answer or record.';
COMMENT ON COLUMN raw.provider_quarantine.run_id IS 'Dagster run that fetched it.';
COMMENT ON COLUMN raw.provider_quarantine.fetched_at IS 'When the answer arrived (UTC).';
COMMENT ON COLUMN raw.provider_quarantine.asset IS 'Ingestion asset that asked.';
COMMENT ON COLUMN raw.provider_quarantine.provider IS 'esimtrade or pressone.';
COMMENT ON COLUMN raw.provider_quarantine.target_table IS 'Raw table the record would have been loaded into.';
COMMENT ON COLUMN raw.provider_quarantine.source_endpoint IS 'API path and query asked (no secrets): names the order, ICCID or page.';
COMMENT ON COLUMN raw.provider_quarantine.http_status IS 'HTTP status of the answer.';
COMMENT ON COLUMN raw.provider_quarantine.page IS 'List page the record was on (list records only).';
COMMENT ON COLUMN raw.provider_quarantine.kind IS 'too_large | too_deep | not_json | not_text | bad_shape | out_of_range | too_long | control_characters.';
COMMENT ON COLUMN raw.provider_quarantine.reason IS 'One line naming the value or the limit crossed.';
COMMENT ON COLUMN raw.provider_quarantine.body_bytes IS 'Bytes received (the whole answer, or the record as JSON); reading stops just past the body size limit.';
COMMENT ON COLUMN raw.provider_quarantine.truncated IS 'True when raw_text holds only the start of what was received.';
COMMENT ON COLUMN raw.provider_quarantine.raw_text IS 'What was received, as text (secrets masked), at most 65,536 characters.';

-- Rows read from the order database have no line: line_no is the row's position in the query's
-- result and row_key names the row in the database (its id, else provider/order_no/iccid).
ALTER TABLE raw.local_orders_rejected ADD COLUMN IF NOT EXISTS row_key VARCHAR;
