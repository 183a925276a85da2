-- description: The findings as of the latest run, one row per finding; a finding that persists across runs stays one row and keeps its first detected_at.
-- materialized: table
-- unique_key: provider, order_no, iccid, discrepancy_type
-- column provider: esimtrade or pressone.
-- column order_no: Order number the finding concerns.
-- column iccid: The local row's ICCID where there is a local row, else the provider's; empty when unknown.
-- column discrepancy_type: One of missing_at_provider, missing_locally, status_mismatch, iccid_mismatch, package_mismatch, amount_mismatch, usage_exceeds_volume, duplicate_iccid, invalid_iccid, sync_failed, invalid_transition, usage_regression.
-- column severity: critical or warning.
-- column local_value: The local side's value as text (state, ICCID, package code, amount); for invalid_transition and usage_regression the previous state or used bytes.
-- column provider_value: The provider side's value as text; for invalid_transition and usage_regression the current state or used bytes; for sync_failed the error.
-- column detected_at: When the finding was first detected (UTC run time); unchanged while it persists.
-- column amount_at_risk: Money at risk (contract, "Money at risk"): decimal, 2 places, never negative; 0 for a finding that moves no money.
-- column currency: Currency of amount_at_risk: the local row's currency for an amount taken from the local file, USD for a provider's charge.
-- column money_direction: recoverable, unrecorded_cost, customer_exposure, lost_cost, overcharge, books_overstate, unverified or none.
-- column action: What to do about the finding (short text).
-- column local_line_no: Local file line of the row the finding concerns, if any.
-- column provider_esim_key: Provider eSIM key of the row the finding concerns, if any.
with

history as (
    select * from reports.discrepancy_history
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
