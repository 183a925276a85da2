-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Findings are keyed by order (provider, order_no first) and a finding's row is a row of the
-- same order: an order's money derives from that order's rows only.
row_findings as (
    select * from {{ touched_rows(ref('int_row_findings')) }}
),

recon_rows as (
    select * from {{ touched_rows(ref('int_reconciliation_rows')) }}
),

money_rules as (
    select * from {{ ref('money_rules') }}
),

-- One finding per key (findings of several rows sharing a key are one finding), described by
-- its first row: critical first, then by local line, then by eSIM key. reports.discrepancy_history
-- takes the description from here.
findings as (
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
        row_id
    from row_findings
    qualify row_number() over (
        partition by provider, order_no, iccid, discrepancy_type
        order by
            case severity when 'critical' then 0 else 1 end,
            local_line_no nulls last,
            provider_esim_key nulls last
    ) = 1
),

-- Both sides of that row (none for a failed sync of an order no row knows). The states are
-- canonical; an amount is per eSIM (a PressOne price is per eSIM already).
finding_sides as (
    select
        findings.* exclude (row_id),
        coalesce(recon_rows.local_state, '') as local_state,
        coalesce(recon_rows.provider_state, '') as provider_state,
        recon_rows.local_amount,
        recon_rows.local_currency,
        recon_rows.provider_amount
    from findings
    left join recon_rows on recon_rows.row_id = findings.row_id
),

-- An empty rule column means "any"; states are listed with `|`.
ruled as (
    select
        finding_sides.*,
        money_rules.money_direction,
        money_rules.amount_source,
        money_rules.action
    from finding_sides
    inner join money_rules
        on coalesce(money_rules.discrepancy_type, '') in ('', finding_sides.discrepancy_type)
        and (
            coalesce(money_rules.local_states, '') = ''
            or list_contains(string_split(money_rules.local_states, '|'), finding_sides.local_state)
        )
        and (
            coalesce(money_rules.local_states_excluded, '') = ''
            or not list_contains(
                string_split(money_rules.local_states_excluded, '|'), finding_sides.local_state
            )
        )
        and (
            coalesce(money_rules.provider_states, '') = ''
            or list_contains(
                string_split(money_rules.provider_states, '|'), finding_sides.provider_state
            )
        )
        and (
            coalesce(money_rules.amount_comparison, '') = ''
            or (
                money_rules.amount_comparison = 'provider_above_local'
                and finding_sides.provider_amount > finding_sides.local_amount
            )
            or (
                money_rules.amount_comparison = 'provider_below_local'
                and finding_sides.provider_amount < finding_sides.local_amount
            )
        )
    qualify row_number() over (
        partition by
            finding_sides.provider, finding_sides.order_no, finding_sides.iccid,
            finding_sides.discrepancy_type
        order by money_rules.rule_rank
    ) = 1
),

-- Which amount the rule names; provider charges are USD (provider-apis.md).
sourced as (
    select
        *,
        case amount_source
            when 'provider_amount_else_local_amount' then
                case
                    when provider_amount is not null then 'provider_amount'
                    when local_amount is not null then 'local_amount'
                    else 'zero'
                end
            else amount_source
        end as amount_used
    from ruled
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
        local_line_no,
        provider_esim_key,
        cast(
            round(
                greatest(
                    coalesce(
                        case amount_used
                            when 'provider_amount' then provider_amount
                            when 'local_amount' then local_amount
                            when 'difference' then abs(provider_amount - local_amount)
                        end,
                        0
                    ),
                    0
                ),
                2
            ) as decimal(18, 2)
        ) as amount_at_risk,
        case amount_used
            when 'local_amount' then coalesce(local_currency, 'USD')
            else 'USD'
        end as currency,
        money_direction,
        action
    from sourced
)

select * from final
