-- description: PressOne ICCIDs whose usage to fetch this run, most useful first.
-- Candidates are the sims of PressOne `sim` orders in completed list loads (latest snapshot per
-- order). A sim is settled when its last usage answer was successful with a terminal status
-- (FINISHED, EXPIRED, RECYCLED) and its order is completed; with $full = false settled sims are
-- skipped. Order: never attempted, failed last time, the rest oldest first, settled last.
-- Usage is per ICCID, so an ICCID shared by two orders (recycled) is fetched once and recorded
-- for its newest order.
with

-- The vocabularies come straight from the dbt project's seed files (paths bound by the caller),
-- so planning works before the SQL layer was ever built.
canonical_status_map as (
    select
        trim(provider) as provider,
        trim(vocabulary) as vocabulary,
        trim(raw_value) as raw_value,
        trim(canonical_state) as canonical_state
    from read_csv($canonical_status_map_csv, header = true, all_varchar = true)
),

canonical_states as (
    select trim(state) as state, cast(trim(is_terminal) as boolean) as is_terminal
    from read_csv($canonical_states_csv, header = true, all_varchar = true)
),

latest_orders as (
    select order_id, order_code, order_type, order_status, iccid, created_at, fetched_at
    from raw.pressone_orders
    where run_id in (
        select run_id from raw.ingest_log where asset = 'pressone_orders' and status = 'complete'
    )
    qualify fetched_at = max(fetched_at) over (partition by order_id)
),

sims as (
    select
        iccid,
        arg_max(order_code, created_at) as order_code,
        arg_max(order_status, created_at) as order_status,
        max(fetched_at) as listed_at
    from latest_orders
    where iccid is not null and iccid <> '' and lower(order_type) = 'sim'
    group by iccid
),

attempts as (
    select
        iccid,
        arg_max(outcome, fetched_at) as last_outcome,
        arg_max(usage_status, fetched_at) as last_status,
        max(fetched_at) as last_attempt_at
    from raw.pressone_usage
    group by iccid
),

planned as (
    select
        sims.iccid,
        sims.order_code,
        attempts.last_attempt_at,
        attempts.last_outcome = 'failed' as last_failed,
        coalesce(
            attempts.last_outcome = 'ok'
            and coalesce(states.is_terminal, false)
            and sims.order_status = 'completed',
            false
        ) as settled
    from sims
    left join attempts using (iccid)
    left join canonical_status_map as status_map
        on status_map.provider = 'pressone'
        and status_map.vocabulary = 'usage_status'
        and status_map.raw_value = upper(attempts.last_status)
    left join canonical_states as states
        on states.state = status_map.canonical_state
)

select
    iccid,
    order_code,
    case
        when last_attempt_at is null then 0
        when last_failed then 1
        when settled then 3
        else 2
    end as priority,
    last_attempt_at
from planned
where $full or not settled
order by priority, last_attempt_at nulls first, iccid
