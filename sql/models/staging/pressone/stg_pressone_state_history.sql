-- One row per run, never per fetch: a run reads the order list before the usage, and a fresh
-- order status joined with the previous run's usage status is a state the eSIM was never in.
-- A run whose order status needs the usage status (completed, partially_refunded) but that has
-- no successful usage of its own (the fetch failed or was not made) judges nothing: the last
-- judged state stands. Only an eSIM never fetched successfully is judged by the order alone
-- (completed with no usage yet -> ready).
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

run_listings as (
    select
        order_no,
        esim_key,
        run_id,
        iccid,
        fetched_at as listed_at,
        order_status as order_status_raw,
        order_status_key
    from order_snapshots
    qualify row_number() over (
        partition by order_no, esim_key, run_id order by fetched_at desc, sim_index nulls last
    ) = 1
),

run_usages as (
    select
        usage_attempts.order_no,
        usage_attempts.iccid as esim_key,
        usage_attempts.run_id,
        usage_attempts.iccid,
        usage_attempts.fetched_at as usage_at,
        usage_attempts.status_raw as usage_status_raw,
        usage_attempts.status_key as usage_status_key
    from usage_attempts
    inner join known_esims
        on known_esims.order_no = usage_attempts.order_no
        and known_esims.esim_key = usage_attempts.iccid
    where usage_attempts.outcome = 'ok' and usage_attempts.status_key is not null
    qualify row_number() over (
        partition by usage_attempts.order_no, usage_attempts.iccid, usage_attempts.run_id
        order by usage_attempts.fetched_at desc
    ) = 1
),

runs as (
    select
        coalesce(run_listings.order_no, run_usages.order_no) as order_no,
        coalesce(run_listings.esim_key, run_usages.esim_key) as esim_key,
        coalesce(run_listings.run_id, run_usages.run_id) as run_id,
        coalesce(run_listings.iccid, run_usages.iccid) as iccid,
        -- what the run saw last of the eSIM
        greatest(run_listings.listed_at, run_usages.usage_at) as observed_at,
        run_listings.order_status_raw,
        run_listings.order_status_key,
        run_usages.usage_status_raw,
        run_usages.usage_status_key,
        run_usages.run_id is not null as has_fresh_usage,
        run_listings.run_id is not null as is_listed
    from run_listings
    full join run_usages
        on run_usages.order_no = run_listings.order_no
        and run_usages.esim_key = run_listings.esim_key
        and run_usages.run_id = run_listings.run_id
),

carried as (
    select
        order_no,
        esim_key,
        run_id,
        iccid,
        observed_at,
        has_fresh_usage,
        bool_or(is_listed) over by_run as listed_before,
        last_value(order_status_raw ignore nulls) over by_run as order_status_raw,
        last_value(order_status_key ignore nulls) over by_run as order_status_key,
        last_value(usage_status_raw ignore nulls) over by_run as usage_status_raw,
        last_value(usage_status_key ignore nulls) over by_run as usage_status_key
    from runs
    window by_run as (
        partition by order_no, esim_key order by observed_at, run_id
        rows between unbounded preceding and current row
    )
),

judged as (
    select
        carried.*,
        case
            when decisive.canonical_state is not null then decisive.canonical_state
            when by_usage.raw_value is not null then
                case
                    when carried.has_fresh_usage
                        then coalesce(usage_map.canonical_state, 'unknown')
                    when carried.usage_status_key is null then by_usage.canonical_state
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
    where carried.listed_before
),

final as (
    select
        'pressone' as provider,
        order_no,
        esim_key,
        iccid,
        run_id,
        observed_at,
        order_status_raw,
        order_status_key,
        usage_status_raw,
        usage_status_key,
        -- the canonical shape's one raw status: order status / sim usage status
        concat_ws('/', lower(order_status_key), usage_status_key) as status_raw,
        canonical_state
    from judged
    -- a run that needed a usage status it did not get judges nothing
    where canonical_state is not null
)

select * from final
