-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='history', history_key=['provider', 'order_no', 'iccid', 'discrepancy_type']) }}

with

finding_money as (
    select * from {{ touched_rows(ref('int_finding_money')) }}
),

-- The findings present now, one per finding key, each with its description and its money at
-- risk (int_finding_money picks the row a finding is described by).
final as (
    select
        provider,
        order_no,
        iccid,
        discrepancy_type,
        severity,
        local_value,
        provider_value,
        local_line_no,
        provider_esim_key,
        amount_at_risk,
        currency,
        money_direction,
        action
    from finding_money
)

select * from final
