-- description: The state of each eSIMTrade eSIM in each run that judged it: the run's last successful sync of it (esimStatus); before the order's first successful sync, the run's stored-list status of the order, given to each eSIM the order later has (rules sections 1 and 4).
-- materialized: table
-- unique_key: order_no, esim_key, run_id
-- state_columns: canonical_state
-- One row per run, never per fetch: a run reads the stored list before it syncs, so within a run
-- the sync is what the run saw last. A failed sync judges nothing (the last good sync stands);
-- the stored list judges only an order never synced successfully, as stg_esimtrade_esims does.
with

sync_attempts as (
    select * from staging.stg_esimtrade_sync_attempts
),

esimtrade_orders as (
    select * from raw.esimtrade_orders
),

ingest_loads as (
    select * from staging.stg_ingest_loads
),

status_map as (
    select * from seeds.canonical_status_map
    where provider = 'esimtrade' and vocabulary = 'esim_status'
),

complete_loads as (
    select run_id
    from ingest_loads
    where asset = 'esimtrade_orders' and is_complete
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
    select order_no, min(observed_at) as first_synced_at, list(distinct run_id) as sync_run_ids
    from run_syncs
    group by order_no
),

order_esims as (
    select order_no, esim_key, arg_max(iccid, observed_at) as iccid
    from run_syncs
    group by order_no, esim_key
),

run_listings as (
    select
        trim(esimtrade_orders.provider_order_no) as order_no,
        esimtrade_orders.run_id,
        esimtrade_orders.fetched_at as observed_at,
        esimtrade_orders.status as status_raw,
        nullif(upper(trim(esimtrade_orders.status)), '') as status_key
    from esimtrade_orders
    inner join complete_loads on complete_loads.run_id = esimtrade_orders.run_id
    qualify row_number() over (
        partition by trim(esimtrade_orders.provider_order_no), esimtrade_orders.run_id
        order by esimtrade_orders.fetched_at desc, esimtrade_orders.page nulls last
    ) = 1
),

-- Listings of runs before the order's first successful sync, on each eSIM the order came to
-- have (on the order itself while it has none).
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
    left join synced_orders on synced_orders.order_no = run_listings.order_no
    left join order_esims on order_esims.order_no = run_listings.order_no
    left join status_map on status_map.raw_value = run_listings.status_key
    where run_listings.status_key is not null
        and (
            synced_orders.order_no is null
            or (
                run_listings.observed_at < synced_orders.first_synced_at
                and not list_contains(synced_orders.sync_run_ids, run_listings.run_id)
            )
        )
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
