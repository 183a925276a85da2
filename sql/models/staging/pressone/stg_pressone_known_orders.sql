-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='view') }}

with

pressone_orders as (
    select * from {{ source('raw', 'pressone_orders') }}
    where {{ in_order_batch("'pressone'", 'trim(order_code)') }}
),

complete_loads as (
    {{ complete_loads('pressone_orders') }}
),

listed as (
    select trim(pressone_orders.order_code) as order_no
    from pressone_orders
    inner join complete_loads on complete_loads.run_id = pressone_orders.run_id
),

final as (
    select distinct 'pressone' as provider, order_no, 'order list' as known_from
    from listed
)

select * from final
