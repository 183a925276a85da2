{{ config(materialized='view') }}

with

list_orders as (
    select * from {{ ref('stg_esimtrade_list_orders') }}
),

sync_attempts as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

known as (
    select order_no, 'stored list' as known_from
    from list_orders
    union all
    select order_no, 'sync' as known_from
    from sync_attempts
    where outcome = 'ok' and order_no is not null
),

final as (
    select 'esimtrade' as provider, order_no, min(known_from) as known_from
    from known
    group by order_no
)

select * from final
