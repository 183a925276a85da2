{{ config(materialized='view') }}

with

-- read twice by last_attempts_of_failing_keys
sync_attempts as not materialized (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
    where order_no is not null
),

last_attempts as (
    {{ last_attempts_of_failing_keys('sync_attempts', ['order_no'], ['requested_iccid', 'error', 'http_status']) }}
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
