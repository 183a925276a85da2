-- depends_on: {{ ref('int_touched_orders') }}
-- One row per run, never per fetch: a run reads the stored list before it syncs, so within a run
-- the sync is what the run saw last. A failed sync judges nothing (the last good sync stands);
-- the stored list judges only an order never synced successfully, as stg_esimtrade_esims does.
with

sync_attempts as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

esimtrade_orders as (
    select * from {{ source('raw', 'esimtrade_orders') }}
    where {{ in_order_batch("'esimtrade'", 'trim(provider_order_no)') }}
),

status_map as (
    select * from {{ ref('canonical_status_map') }}
    where provider = 'esimtrade' and vocabulary = 'esim_status'
),

complete_loads as (
    {{ complete_loads('esimtrade_orders') }}
),

run_syncs as (
    select
        order_no,
        esim_key,
        run_id,
        iccid,
        fetched_at as observed_at,
        status_raw,
        canonical_state
    from sync_attempts
    where outcome = 'ok' and order_no is not null and canonical_state is not null
    qualify row_number() over (
        partition by order_no, esim_key, run_id order by fetched_at desc
    ) = 1
),

synced_orders as (
    select
        order_no,
        min(observed_at) as first_synced_at,
        arg_min(run_id, observed_at) as first_sync_run_id
    from run_syncs
    group by order_no
),

order_esims as (
    select order_no, esim_key, arg_max(iccid, observed_at) as iccid
    from run_syncs
    group by order_no, esim_key
),

-- Listings from before the order's first successful sync (not of that sync's own run, whose
-- sync is what it saw last), one per order and run: most orders are synced in the run that
-- first lists them, so few listings are left to group.
unsynced_listed as (
    select
        trim(esimtrade_orders.provider_order_no) as order_no,
        esimtrade_orders.run_id,
        esimtrade_orders.fetched_at,
        esimtrade_orders.status
    from esimtrade_orders
    inner join complete_loads on complete_loads.run_id = esimtrade_orders.run_id
    left join synced_orders
        on synced_orders.order_no = trim(esimtrade_orders.provider_order_no)
    where synced_orders.order_no is null
        or (
            esimtrade_orders.fetched_at < synced_orders.first_synced_at
            and esimtrade_orders.run_id <> synced_orders.first_sync_run_id
        )
),

run_listings as (
    select
        order_no,
        run_id,
        max(fetched_at) as observed_at,
        arg_max(status, fetched_at) as status_raw
    from unsynced_listed
    group by order_no, run_id
),

-- Each listing on every eSIM the order came to have (on the order itself while it has none).
unsynced_listings as (
    select
        run_listings.order_no,
        coalesce(order_esims.esim_key, run_listings.order_no) as esim_key,
        run_listings.run_id,
        order_esims.iccid,
        run_listings.observed_at,
        run_listings.status_raw,
        coalesce(status_map.canonical_state, 'unknown') as canonical_state
    from run_listings
    left join order_esims on order_esims.order_no = run_listings.order_no
    left join status_map
        on status_map.raw_value = nullif(upper(trim(run_listings.status_raw)), '')
    where nullif(upper(trim(run_listings.status_raw)), '') is not null
),

observations as (
    select * from run_syncs
    union all
    select * from unsynced_listings
),

final as (
    select
        'esimtrade' as provider,
        order_no,
        esim_key,
        iccid,
        run_id,
        observed_at,
        status_raw,
        canonical_state
    from observations
)

select * from final
