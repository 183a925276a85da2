with

sync_attempts as not materialized (
    -- rowid names an attempt row, so picking the latest per eSIM aggregates one number, not
    -- the whole row
    select rowid as attempt_id, * from {{ ref('stg_esimtrade_sync_attempts') }}
),

list_orders as (
    select * from {{ ref('stg_esimtrade_list_orders') }}
),

status_map as (
    select * from {{ ref('canonical_status_map') }}
    where provider = 'esimtrade' and vocabulary = 'esim_status'
),

ok_syncs as not materialized (
    select *
    from sync_attempts
    where outcome = 'ok' and order_no is not null
),

latest_sync_run as (
    select order_no, arg_max(run_id, fetched_at) as run_id
    from ok_syncs
    group by order_no
),

latest_sync_attempt as (
    select ok_syncs.order_no, ok_syncs.esim_key, arg_max(ok_syncs.attempt_id, ok_syncs.fetched_at)
        as attempt_id
    from ok_syncs
    inner join latest_sync_run
        on latest_sync_run.order_no = ok_syncs.order_no
        and latest_sync_run.run_id = ok_syncs.run_id
    group by ok_syncs.order_no, ok_syncs.esim_key
),

latest_sync as (
    select ok_syncs.*
    from ok_syncs
    inner join latest_sync_attempt on latest_sync_attempt.attempt_id = ok_syncs.attempt_id
),

synced_esims as (
    select
        latest_sync.order_no,
        latest_sync.esim_key,
        latest_sync.esim_tran_no,
        latest_sync.iccid,
        coalesce(latest_sync.status_raw, list_orders.status_raw) as status_raw,
        coalesce(latest_sync.status_key, list_orders.status_key) as status_key,
        case when latest_sync.status_key is not null then 'sync' else 'list' end
            as status_source,
        coalesce(latest_sync.package_code, list_orders.package_code) as package_code,
        list_orders.cost_price as amount,
        latest_sync.total_bytes,
        latest_sync.used_bytes,
        latest_sync.smdp_status,
        latest_sync.fetched_at as last_synced_at,
        latest_sync.fetched_at as state_observed_at,
        latest_sync.total_bytes is not null and latest_sync.used_bytes is not null
            as usage_observed,
        false as is_order_level,
        list_orders.order_no is not null as in_stored_list
    from latest_sync
    left join list_orders on list_orders.order_no = latest_sync.order_no
),

list_only_orders as (
    select
        list_orders.order_no,
        list_orders.order_no as esim_key,
        cast(null as varchar) as esim_tran_no,
        cast(null as varchar) as iccid,
        list_orders.status_raw,
        list_orders.status_key,
        'list' as status_source,
        list_orders.package_code,
        list_orders.cost_price as amount,
        cast(null as bigint) as total_bytes,
        cast(null as bigint) as used_bytes,
        cast(null as varchar) as smdp_status,
        cast(null as timestamptz) as last_synced_at,
        list_orders.listed_at as state_observed_at,
        false as usage_observed,
        true as is_order_level,
        true as in_stored_list
    from list_orders
    left join latest_sync_run on latest_sync_run.order_no = list_orders.order_no
    where latest_sync_run.order_no is null
),

esims as (
    select * from synced_esims
    union all
    select * from list_only_orders
),

final as (
    select
        'esimtrade' as provider,
        esims.order_no,
        esims.esim_key,
        esims.esim_tran_no,
        esims.iccid,
        esims.status_raw,
        esims.status_source,
        case
            when esims.status_key is null then 'unknown'
            else coalesce(status_map.canonical_state, 'unknown')
        end as canonical_state,
        esims.package_code,
        esims.amount,
        'USD' as currency,
        esims.total_bytes,
        esims.used_bytes,
        false as is_unlimited,
        esims.smdp_status,
        esims.last_synced_at,
        esims.state_observed_at,
        esims.usage_observed,
        esims.is_order_level,
        esims.in_stored_list,
        -- never synced: each listing of the order judges its state again
        esims.is_order_level as judged_by_listing
    from esims
    left join status_map on status_map.raw_value = esims.status_key
)

select * from final
