{{ config(meta={'dagster': {'ref': {'name': 'reconciliation'}}}) }}
{#- Every latest local row appears exactly once in reports.reconciliation, and no other local
    line does. Returns the offending lines. A build on the touched orders checks those orders
    (staging holds no other). The provider side is reconciliation_provider_coverage: each side
    is its own query, as two aggregates of 10M keys at once do not fit the memory cap. -#}
-- depends_on: {{ ref('int_touched_orders') }}
with

-- Each line once as expected (staging) and once per copy in the report, counted by one
-- aggregate (it spills to disk where a join each way of 10M keys would not fit).
local_keys as (
    select line_no, 1 as expected, 0 as reported
    from {{ ref('stg_local_orders') }}
    union all
    select local_line_no, 0, 1
    from {{ touched_rows(ref('reconciliation')) }}
    where local_line_no is not null
),

final as (
    select
        case when sum(expected) = 0 then 'local row (unknown)' else 'local row' end as side,
        cast(line_no as varchar) as item,
        sum(reported) as copies
    from local_keys
    group by line_no
    having sum(expected) = 0 or sum(reported) <> 1
)

select * from final
