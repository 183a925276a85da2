-- depends_on: {{ ref('int_touched_orders') }}
with

order_syncs as (
    select * from {{ source('raw', 'esimtrade_order_syncs') }}
    where {{ in_order_batch("'esimtrade'", "coalesce(nullif(trim(order_no), ''), nullif(trim(requested_order_no), ''))") }}
),

status_map as (
    select * from {{ ref('canonical_status_map') }}
    where provider = 'esimtrade' and vocabulary = 'esim_status'
),

typed as (
    select
        run_id,
        fetched_at,
        lower(trim(outcome)) as outcome,
        http_status,
        error,
        -- the answer's order, else the one asked for (stg_esimtrade_fetch_entries agrees)
        coalesce(nullif(trim(order_no), ''), nullif(trim(requested_order_no), '')) as order_no,
        nullif(trim(requested_iccid), '') as requested_iccid,
        nullif(trim(esim_tran_no), '') as esim_tran_no,
        nullif(trim(iccid), '') as iccid,
        esim_status as status_raw,
        nullif(upper(trim(esim_status)), '') as status_key,
        smdp_status,
        total_volume as total_bytes,
        order_usage as used_bytes,
        nullif(trim(package_code), '') as package_code
    from order_syncs
),

final as (
    select
        typed.run_id,
        typed.fetched_at,
        typed.outcome,
        typed.http_status,
        typed.error,
        typed.order_no,
        typed.requested_iccid,
        typed.esim_tran_no,
        case when typed.outcome = 'ok' then coalesce(typed.esim_tran_no, typed.order_no) end
            as esim_key,
        typed.iccid,
        typed.status_raw,
        typed.status_key,
        case
            when typed.status_key is null then null
            else coalesce(status_map.canonical_state, 'unknown')
        end as canonical_state,
        typed.smdp_status,
        typed.total_bytes,
        typed.used_bytes,
        typed.package_code
    from typed
    left join status_map on status_map.raw_value = typed.status_key
)

select * from final
