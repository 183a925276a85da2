{{ config(materialized='view') }}

with

-- read twice by last_attempts_of_failing_keys
usage_attempts as not materialized (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

last_attempts as (
    {{ last_attempts_of_failing_keys('usage_attempts', ['order_no', 'iccid'], ['error', 'http_status']) }}
),

-- A usage fetch reads one sim: its failure concerns that eSIM (order_no is null when no order
-- holds the ICCID).
final as (
    select
        'pressone' as provider,
        order_no,
        iccid,
        false as is_order_level,
        attempt.error as error,
        attempt.http_status as http_status
    from last_attempts
    where attempt.outcome = 'failed'
)

select * from final
