with

transitions as (
    select * from {{ ref('int_state_transitions') }}
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
