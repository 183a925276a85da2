with

history as (
    select * from {{ ref('discrepancy_history') }}
),

open_findings as (
    select *
    from history
    where resolved_at is null
),

final as (
    select
        provider,
        order_no,
        iccid,
        discrepancy_type,
        severity,
        local_value,
        provider_value,
        first_detected_at as detected_at,
        amount_at_risk,
        currency,
        money_direction,
        action,
        local_line_no,
        provider_esim_key
    from open_findings
)

select * from final
