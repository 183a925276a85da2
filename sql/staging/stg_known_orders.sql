-- description: Every order number each provider is known to have: eSIMTrade orders in a complete stored-list load or with a successful sync, PressOne order codes (top-ups included) in a complete list load. A local row of an order not in here is missing at the provider.
-- materialized: table
-- unique_key: provider, order_no
with

esimtrade_list as (
    select * from staging.stg_esimtrade_list_orders
),

esimtrade_syncs as (
    select * from staging.stg_esimtrade_sync_attempts
),

pressone_orders as (
    select * from raw.pressone_orders
),

ingest_loads as (
    select * from staging.stg_ingest_loads
),

pressone_complete_loads as (
    select run_id
    from ingest_loads
    where asset = 'pressone_orders' and is_complete
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
