{{ config(materialized='view') }}

with

usage_attempts as (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

-- Only a sim with a failed fetch can have failed last: its latest fetch (an aggregate, not a
-- window over every fetch). Few, so only they are looked at.
sims_with_failures as (
    select distinct order_no, iccid
    from usage_attempts
    where outcome = 'failed'
),

last_attempts as (
    select
        usage_attempts.order_no,
        usage_attempts.iccid,
        arg_max(
            {
                'outcome': usage_attempts.outcome,
                'error': usage_attempts.error,
                'http_status': usage_attempts.http_status
            },
            usage_attempts.fetched_at
        ) as attempt
    from usage_attempts
    inner join sims_with_failures as failing
        on failing.iccid = usage_attempts.iccid
        and failing.order_no is not distinct from usage_attempts.order_no
    group by usage_attempts.order_no, usage_attempts.iccid
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
