-- description: The worklist for finance: every open finding that moves money (money_direction other than none), action first, one row per finding.
-- materialized: table
-- unique_key: provider, order_no, iccid, discrepancy_type
-- column action: What to do (from the money rules); the list is worked through one action at a time.
-- column order_no: Order number the finding concerns.
-- column iccid: The eSIM's ICCID; empty when unknown.
-- column provider: esimtrade or pressone.
-- column amount: Money at risk (amount_at_risk), decimal, 2 places.
-- column currency: Currency of the amount.
-- column money_direction: recoverable, unrecorded_cost, customer_exposure, lost_cost, overcharge, books_overstate or unverified.
-- column discrepancy_type: The finding's discrepancy code.
-- column first_detected_at: When the finding was first detected (UTC run time).
with

discrepancies as (
    select * from reports.discrepancies
),

final as (
    select
        action,
        order_no,
        iccid,
        provider,
        amount_at_risk as amount,
        currency,
        money_direction,
        discrepancy_type,
        detected_at as first_detected_at
    from discrepancies
    where money_direction <> 'none'
)

select * from final
