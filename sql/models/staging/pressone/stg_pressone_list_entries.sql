{{ config(materialized='ephemeral') }}

with

list_rows as (
    select * from {{ source('raw', 'pressone_orders') }}
),

final as (
    select
        'pressone' as provider,
        'pressone_orders' as raw_table,
        run_id,
        trim(order_code) as order_no,
        hash(
            order_id, order_type, order_status, created_at, package_id, quantity, price,
            currency, sim_id, sim_index, iccid
        ) as row_hash,
        nullif(trim(iccid), '') as iccid,
        cast(order_id as bigint) as order_id
    from list_rows
)

select * from final
