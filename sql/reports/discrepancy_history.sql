-- description: Every finding ever seen, one row per episode: when it was first detected, last seen and resolved (empty while still open). A finding that disappears is closed here; if it comes back it opens a new episode.
-- materialized: history
-- history_key: provider, order_no, iccid, discrepancy_type
-- unique_key: provider, order_no, iccid, discrepancy_type, first_detected_at
-- column provider: esimtrade or pressone.
-- column order_no: Order number the finding concerns.
-- column iccid: The local row's ICCID where there is a local row, else the provider's; empty when unknown.
-- column discrepancy_type: One of the twelve discrepancy codes.
-- column severity: critical or warning, as last seen.
-- column local_value: The local side's value as text, as last seen (for history types: the previous state or used bytes).
-- column provider_value: The provider side's value as text, as last seen (for history types: the current state or used bytes).
-- column local_line_no: Local file line of the row the finding was seen on, if any.
-- column provider_esim_key: Provider eSIM key of the row the finding was seen on, if any.
-- column amount_at_risk: Money at risk, as last seen (contract, "Money at risk"): decimal, 2 places, never negative.
-- column currency: Currency of amount_at_risk, as last seen.
-- column money_direction: recoverable, unrecorded_cost, customer_exposure, lost_cost, overcharge, books_overstate, unverified or none, as last seen.
-- column action: What to do about the finding, as last seen.
-- column first_detected_at: Run time (UTC) at which this episode of the finding was first detected.
-- column last_seen_at: Run time (UTC) of the latest run that still found it.
-- column resolved_at: Run time (UTC) of the first run that no longer found it; empty while open.
with

row_findings as (
    select * from reconciliation.int_row_findings
),

finding_money as (
    select * from reconciliation.int_finding_money
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
