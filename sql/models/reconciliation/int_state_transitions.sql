-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

state_history as (
    select * from {{ ref('stg_esim_state_history') }}
),

canonical_states as (
    select * from {{ ref('canonical_states') }}
),

transition_exceptions as (
    select * from {{ ref('transition_exceptions') }}
),

sequenced as (
    select
        *,
        lag(canonical_state) over by_esim as previous_state,
        lag(observed_at) over by_esim as previous_observed_at
    from state_history
    window by_esim as (partition by provider, order_no, esim_key order by observed_at, run_id)
),

changes as (
    select *
    from sequenced
    where previous_state is not null and previous_state <> canonical_state
),

classified as (
    select
        changes.provider,
        changes.order_no,
        changes.esim_key,
        changes.iccid,
        changes.previous_state as from_state,
        changes.canonical_state as to_state,
        changes.previous_observed_at as previous_seen_at,
        changes.observed_at as first_seen_at,
        changes.status_raw as to_status_raw,
        case
            when changes.previous_state = 'unknown' or changes.canonical_state = 'unknown'
                then null
            when transition_exceptions.from_state is not null then null
            when from_states.is_terminal
                then 'leaves the terminal state ' || changes.previous_state
            when from_states.main_line_rank is not null
                and to_states.main_line_rank is not null
                and to_states.main_line_rank < from_states.main_line_rank
                then 'goes backwards along the main line'
        end as invalid_reason
    from changes
    left join canonical_states as from_states on from_states.state = changes.previous_state
    left join canonical_states as to_states on to_states.state = changes.canonical_state
    left join transition_exceptions
        on transition_exceptions.from_state = changes.previous_state
        and transition_exceptions.to_state = changes.canonical_state
),

final as (
    select
        *,
        invalid_reason is not null as is_invalid,
        row_number() over (
            partition by provider, order_no, esim_key order by first_seen_at desc
        ) = 1 as is_latest
    from classified
    where {{ in_order_batch('provider', 'order_no') }}
)

select * from final
