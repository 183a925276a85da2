{{ config(materialized='history', history_key=['provider', 'order_no', 'iccid', 'discrepancy_type']) }}

with

row_findings as (
    select * from {{ ref('int_row_findings') }}
),

-- The findings present now, one per finding key: findings of several rows sharing a key are one
-- finding, described by its first row (critical first, then by local line, then by eSIM key).
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
        provider_esim_key
    from row_findings
    qualify row_number() over (
        partition by provider, order_no, iccid, discrepancy_type
        order by
            case severity when 'critical' then 0 else 1 end,
            local_line_no nulls last,
            provider_esim_key nulls last
    ) = 1
)

select * from final
