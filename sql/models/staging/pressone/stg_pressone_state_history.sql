with

order_snapshots as (
    select * from {{ ref('stg_pressone_order_snapshots') }}
),

usage_attempts as (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

status_map as (
    select * from {{ ref('canonical_status_map') }}
    where provider = 'pressone'
),

known_esims as (
    select distinct order_no, esim_key
    from order_snapshots
),

list_events as (
    select
        order_no,
        esim_key,
        iccid,
        fetched_at as observed_at,
        0 as event_order,
        'order list' as source,
        order_status_key,
        cast(null as varchar) as usage_status_key
    from order_snapshots
),

usage_events as (
    select
        usage_attempts.order_no,
        usage_attempts.iccid as esim_key,
        usage_attempts.iccid,
        usage_attempts.fetched_at as observed_at,
        1 as event_order,
        'usage' as source,
        cast(null as varchar) as order_status_key,
        usage_attempts.status_key as usage_status_key
    from usage_attempts
    inner join known_esims
        on known_esims.order_no = usage_attempts.order_no
        and known_esims.esim_key = usage_attempts.iccid
    where usage_attempts.outcome = 'ok' and usage_attempts.status_key is not null
),

events as (
    select * from list_events
    union all
    select * from usage_events
),

carried as (
    select
        order_no,
        esim_key,
        iccid,
        observed_at,
        event_order,
        source,
        last_value(order_status_key ignore nulls) over (
            partition by order_no, esim_key order by observed_at, event_order
            rows between unbounded preceding and current row
        ) as order_status_key,
        last_value(usage_status_key ignore nulls) over (
            partition by order_no, esim_key order by observed_at, event_order
            rows between unbounded preceding and current row
        ) as usage_status_key,
        sum(case when source = 'order list' then 1 else 0 end) over (
            partition by order_no, esim_key order by observed_at, event_order
            rows between unbounded preceding and current row
        ) as list_observations
    from events
),

final as (
    select
        'pressone' as provider,
        carried.order_no,
        carried.esim_key,
        carried.iccid,
        carried.observed_at,
        carried.event_order,
        carried.source,
        carried.order_status_key,
        carried.usage_status_key,
        case
            when decisive.canonical_state is not null then decisive.canonical_state
            when by_usage.raw_value is not null then
                case
                    when carried.usage_status_key is null then by_usage.canonical_state
                    else coalesce(usage_map.canonical_state, 'unknown')
                end
            else 'unknown'
        end as canonical_state
    from carried
    left join status_map as decisive
        on decisive.vocabulary = 'order_status'
        and decisive.raw_value = carried.order_status_key
    left join status_map as by_usage
        on by_usage.vocabulary = 'order_status_by_usage'
        and by_usage.raw_value = carried.order_status_key
    left join status_map as usage_map
        on usage_map.vocabulary = 'usage_status'
        and usage_map.raw_value = carried.usage_status_key
    -- A usage fetch before the order was first listed has no order status to combine with.
    where carried.list_observations > 0
)

select * from final
