-- description: One row per observed change of canonical state per provider eSIM, with when the new state was first seen and whether the change is invalid (rules section 4).
-- materialized: table
-- unique_key: provider, order_no, esim_key, first_seen_at
-- state_columns: from_state, to_state
-- column provider: esimtrade or pressone.
-- column order_no: Order number.
-- column iccid: ICCID the provider reported at the change.
-- column esim_key: The provider's key of the eSIM (eSIMTrade esimTranNo, PressOne ICCID).
-- column from_state: Canonical state at the previous observation.
-- column to_state: Canonical state at this observation.
-- column previous_seen_at: When from_state was last observed before the change (UTC).
-- column first_seen_at: When to_state was first observed (UTC).
-- column is_invalid: True when the change leaves a terminal state (except depleted to active or expired) or goes backwards along the main line; changes to or from unknown are valid.
-- column invalid_reason: Why the change is invalid; empty when valid.
-- column is_latest: True for the eSIM's most recent change of state.
with

transitions as (
    select * from reconciliation.int_state_transitions
),

final as (
    select
        provider,
        order_no,
        iccid,
        esim_key,
        from_state,
        to_state,
        previous_seen_at,
        first_seen_at,
        is_invalid,
        invalid_reason,
        is_latest
    from transitions
)

select * from final
