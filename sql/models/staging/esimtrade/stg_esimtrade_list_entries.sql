{{ config(materialized='ephemeral') }}

with

list_rows as (
    select * from {{ source('raw', 'esimtrade_orders') }}
),

final as (
    select
        'esimtrade' as provider,
        'esimtrade_orders' as raw_table,
        run_id,
        trim(provider_order_no) as order_no,
        hash(status, package_code, quantity, cost_price, sell_price) as row_hash,
        cast(null as varchar) as iccid,
        cast(null as bigint) as order_id
    from list_rows
)

select * from final
