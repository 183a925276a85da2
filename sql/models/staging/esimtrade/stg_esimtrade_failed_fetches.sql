{{ config(materialized='view') }}

with

sync_attempts as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

-- Only an order with a failed attempt can have failed last: its latest attempt (an aggregate,
-- not a window over every attempt). Few, so only they are looked at.
orders_with_failures as (
    select distinct order_no
    from sync_attempts
    where outcome = 'failed' and order_no is not null
),

last_attempts as (
    select
        order_no,
        arg_max(
            {
                'outcome': outcome,
                'requested_iccid': requested_iccid,
                'error': error,
                'http_status': http_status
            },
            fetched_at
        ) as attempt
    from sync_attempts
    where order_no in (select order_no from orders_with_failures)
    group by order_no
),

-- A sync reads one order: its failure concerns the whole order.
final as (
    select
        'esimtrade' as provider,
        order_no,
        attempt.requested_iccid as iccid,
        true as is_order_level,
        attempt.error as error,
        attempt.http_status as http_status
    from last_attempts
    where attempt.outcome = 'failed'
)

select * from final
