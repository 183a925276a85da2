-- description: eSIMTrade orders to sync this run, most useful first.
-- Candidates are every eSIMTrade order in the latest local load or in any completed stored-list
-- load. An order is settled when its last successful sync saw only terminal states (so it was
-- synced after it became terminal) and the stored list does not say something else since (the
-- provider's copy moved on). With $full = false settled orders are skipped.
-- Order: never attempted, then last attempt failed, then the rest by staleness (oldest
-- successful sync first), settled orders last; a run that stops early (a request or time
-- budget) leaves the tail, and the next run starts with what it never reached.
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

local_load as (
    select run_id
    from raw.ingest_log
    where asset = 'local_orders' and status = 'complete'
    order by finished_at desc
    limit 1
),

local_orders as (
    select distinct order_no
    from raw.local_orders
    where provider = 'esimtrade' and run_id in (select run_id from local_load)
),

listed as (
    select
        provider_order_no as order_no,
        arg_max(upper(status), fetched_at) as listed_status
    from raw.esimtrade_orders
    where run_id in (
        select run_id from raw.ingest_log where asset = 'esimtrade_orders' and status = 'complete'
    )
    group by provider_order_no
),

candidates as (
    select order_no from local_orders
    union
    select order_no from listed
),

attempts as (
    select
        requested_order_no as order_no,
        fetched_at,
        outcome,
        esim_status,
        max(fetched_at) over (partition by requested_order_no) as last_attempt_at
    from raw.esimtrade_order_syncs
    where requested_order_no is not null
),

last_attempt as (
    select
        attempts.order_no,
        any_value(attempts.last_attempt_at) as last_attempt_at,
        bool_or(attempts.outcome = 'failed') as last_failed,
        bool_and(attempts.outcome = 'ok' and coalesce(states.is_terminal, false)) as all_terminal,
        count(distinct status_map.canonical_state) as state_count,
        any_value(status_map.canonical_state) as synced_state
    from attempts
    left join canonical_status_map as status_map
        on status_map.provider = 'esimtrade'
        and status_map.vocabulary = 'esim_status'
        and status_map.raw_value = upper(attempts.esim_status)
    left join canonical_states as states
        on states.state = status_map.canonical_state
    where attempts.fetched_at = attempts.last_attempt_at
    group by attempts.order_no
),

planned as (
    select
        candidates.order_no,
        last_attempt.last_attempt_at,
        coalesce(last_attempt.last_failed, false) as last_failed,
        coalesce(last_attempt.all_terminal, false)
            and last_attempt.state_count = 1
            and (
                listed.listed_status is null
                or listed_map.canonical_state is not distinct from last_attempt.synced_state
            ) as settled
    from candidates
    left join last_attempt using (order_no)
    left join listed using (order_no)
    left join canonical_status_map as listed_map
        on listed_map.provider = 'esimtrade'
        and listed_map.vocabulary = 'esim_status'
        and listed_map.raw_value = listed.listed_status
)

select
    order_no,
    case
        when last_attempt_at is null then 0
        when last_failed then 1
        when settled then 3
        else 2
    end as priority,
    last_attempt_at
from planned
where $full or not settled
order by priority, last_attempt_at nulls first, order_no
