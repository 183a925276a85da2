{{ config(meta={'dagster': {'ref': {'name': 'reconciliation'}}}) }}
{#- Every provider eSIM appears exactly once in reports.reconciliation, and no other eSIM does.
    Returns the offending eSIMs. A build on the touched orders checks those orders. The local
    side is reconciliation_local_coverage. -#}
-- depends_on: {{ ref('int_touched_orders') }}
with

-- Each eSIM once as expected and once per copy in the report, counted by one aggregate (it
-- spills to disk where a join each way of 10M string keys would not fit).
provider_keys as (
    select provider, order_no, esim_key, 1 as expected, 0 as reported
    from {{ touched_rows(ref('int_provider_esims')) }}
    union all
    select provider, order_no, provider_esim_key, 0, 1
    from {{ touched_rows(ref('reconciliation')) }}
    where provider_esim_key is not null
),

final as (
    select
        case when sum(expected) = 0 then 'provider eSIM (unknown)' else 'provider eSIM' end
            as side,
        provider || ':' || order_no || ':' || esim_key as item,
        sum(reported) as copies
    from provider_keys
    group by provider, order_no, esim_key
    having sum(expected) = 0 or sum(reported) <> 1
)

select * from final
