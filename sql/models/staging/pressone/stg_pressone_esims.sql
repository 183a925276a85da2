with

order_sims as (
    select * from {{ ref('stg_pressone_order_sims') }}
),

usage_attempts as (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

state_history as (
    select * from {{ ref('stg_pressone_state_history') }}
),

order_statuses_by_usage as (
    select raw_value from {{ ref('canonical_status_map') }}
    where provider = 'pressone' and vocabulary = 'order_status_by_usage'
),

latest_usage as (
    select *
    from usage_attempts
    where outcome = 'ok' and order_no is not null
    qualify row_number() over (partition by order_no, iccid order by fetched_at desc) = 1
),

latest_state as (
    select *
    from state_history
    qualify row_number() over (
        partition by order_no, esim_key order by observed_at desc, run_id desc
    ) = 1
),

final as (
    select
        'pressone' as provider,
        order_sims.order_no,
        order_sims.esim_key,
        order_sims.iccid,
        -- The raw parts of the judged state: a listing whose usage fetch failed does not show
        -- its order status beside the older usage status.
        case
            when latest_state.esim_key is not null then
                concat_ws('/', latest_state.order_status_raw, latest_state.usage_status_raw)
            else concat_ws('/', order_sims.order_status, latest_usage.status_raw)
        end as status_raw,
        case
            when coalesce(latest_state.usage_status_key, latest_usage.status_key) is not null
                then 'order+usage'
            else 'order'
        end as status_source,
        coalesce(latest_state.canonical_state, 'unknown') as canonical_state,
        latest_state.observed_at as state_observed_at,
        order_sims.package_code,
        order_sims.price as amount,
        order_sims.currency,
        latest_usage.total_bytes,
        latest_usage.used_bytes,
        coalesce(latest_usage.is_unlimited, false) as is_unlimited,
        latest_usage.fetched_at as last_synced_at,
        latest_usage.fetched_at is not null as usage_observed,
        order_sims.is_order_level,
        order_sims.order_id,
        order_sims.created_at,
        -- A listing judges the state again unless its order status needs the usage status
        -- and one is known (then a run without a fresh usage judges nothing).
        order_sims.order_status_key is null
            or order_sims.order_status_key not in (select raw_value from order_statuses_by_usage)
            or latest_state.usage_status_key is null as judged_by_listing
    from order_sims
    left join latest_usage
        on latest_usage.order_no = order_sims.order_no
        and latest_usage.iccid = order_sims.iccid
    left join latest_state
        on latest_state.order_no = order_sims.order_no
        and latest_state.esim_key = order_sims.esim_key
)

select * from final
