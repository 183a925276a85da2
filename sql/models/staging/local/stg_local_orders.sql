-- depends_on: {{ ref('int_touched_orders') }}
with

local_orders as not materialized (
    -- the typed columns only: the JSON payload is never needed here
    -- (rowid names a raw row, so picking the latest copy of a line aggregates one number)
    select
        rowid as raw_row, run_id, loaded_at, source_file, line_no, provider, order_no, iccid,
        package_code, status, amount, currency, created_at
    from {{ source('raw', 'local_orders') }}
    where {{ in_order_batch('lower(trim(provider))', 'trim(order_no)') }}
),

status_map as (
    select * from {{ ref('stg_local_status_map') }}
),

latest_load as (
    {{ latest_complete_load('local_orders') }}
),

latest_raw_rows as (
    select local_orders.line_no, arg_max(local_orders.raw_row, local_orders.loaded_at) as raw_row
    from local_orders
    inner join latest_load on latest_load.run_id = local_orders.run_id
    group by local_orders.line_no
),

latest_rows as (
    select local_orders.* exclude (raw_row)
    from local_orders
    inner join latest_load on latest_load.run_id = local_orders.run_id
    inner join latest_raw_rows on latest_raw_rows.raw_row = local_orders.raw_row
),

typed as (
    select
        line_no,
        lower(trim(provider)) as provider,
        trim(order_no) as order_no,
        nullif(trim(iccid), '') as iccid,
        nullif(trim(package_code), '') as package_code,
        status as status_raw,
        amount,
        nullif(upper(trim(currency)), '') as currency,
        created_at,
        source_file,
        loaded_at,
        run_id
    from latest_rows
),

final as (
    select
        typed.line_no,
        typed.provider,
        typed.order_no,
        typed.iccid,
        regexp_full_match(typed.iccid, '89[0-9]{16,18}') as iccid_shape_ok,
        typed.package_code,
        typed.status_raw,
        coalesce(status_map.canonical_state, 'unknown') as local_state,
        typed.amount,
        typed.currency,
        typed.created_at,
        typed.source_file,
        typed.loaded_at,
        typed.run_id
    from typed
    left join status_map on status_map.local_status = lower(trim(typed.status_raw))
)

select * from final
