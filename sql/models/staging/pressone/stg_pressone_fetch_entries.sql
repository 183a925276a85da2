{{ config(materialized='ephemeral') }}

with

usage_rows as (
    select * from {{ source('raw', 'pressone_usage') }}
),

final as (
    select
        'pressone' as provider,
        'pressone_usage' as raw_table,
        run_id,
        -- the order the look-up names, as stg_pressone_usage_attempts reads it (the row may
        -- belong to another order holding its ICCID: the touched set follows the ICCID too)
        coalesce(nullif(trim(order_code), ''), '') as order_no,
        nullif(trim(iccid), '') as iccid,
        cast(null as varchar) as requested_iccid,
        '' as unheld_order_no
    from usage_rows
)

select * from final
