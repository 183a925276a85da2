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
        coalesce(nullif(trim(order_code), ''), '') as order_no,
        nullif(trim(iccid), '') as iccid,
        cast(null as varchar) as requested_iccid,
        '' as unheld_order_no
    from usage_rows
)

select * from final
