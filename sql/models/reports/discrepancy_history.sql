{{ config(materialized='history', history_key=['provider', 'order_no', 'iccid', 'discrepancy_type']) }}

with

row_findings as (
    select * from {{ ref('int_row_findings') }}
),

finding_money as (
    select * from {{ ref('int_finding_money') }}
),

-- The findings present now, one per finding key: findings of several rows sharing a key are one
-- finding, described by its first row (critical first, then by local line, then by eSIM key).
present as (
    select
        provider,
        order_no,
        iccid,
        discrepancy_type,
        severity,
        local_value,
        provider_value,
        local_line_no,
        provider_esim_key
    from row_findings
    qualify row_number() over (
        partition by provider, order_no, iccid, discrepancy_type
        order by
            case severity when 'critical' then 0 else 1 end,
            local_line_no nulls last,
            provider_esim_key nulls last
    ) = 1
),

-- Each finding's money at risk (one row per finding key).
final as (
    select
        present.*,
        finding_money.amount_at_risk,
        finding_money.currency,
        finding_money.money_direction,
        finding_money.action
    from present
    left join finding_money
        on finding_money.provider = present.provider
        and finding_money.order_no = present.order_no
        and finding_money.iccid = present.iccid
        and finding_money.discrepancy_type = present.discrepancy_type
)

select * from final
