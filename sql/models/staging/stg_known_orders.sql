-- depends_on: {{ ref('int_touched_orders') }}
with

esimtrade_list as (
    select * from {{ ref('stg_esimtrade_list_orders') }}
),

esimtrade_syncs as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

pressone_orders as (
    select * from {{ source('raw', 'pressone_orders') }}
    where {{ in_order_batch("'pressone'", 'trim(order_code)') }}
),

pressone_complete_loads as (
    {{ complete_loads('pressone_orders') }}
),

known as (
    select 'esimtrade' as provider, order_no, 'stored list' as known_from
    from esimtrade_list
    union all
    select 'esimtrade' as provider, order_no, 'sync' as known_from
    from esimtrade_syncs
    where outcome = 'ok' and order_no is not null
    union all
    select 'pressone' as provider, trim(pressone_orders.order_code) as order_no,
        'order list' as known_from
    from pressone_orders
    inner join pressone_complete_loads
        on pressone_complete_loads.run_id = pressone_orders.run_id
),

final as (
    select provider, order_no, min(known_from) as known_from
    from known
    group by provider, order_no
)

select * from final
