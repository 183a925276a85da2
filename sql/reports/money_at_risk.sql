-- description: Money at risk over the open findings (reports.discrepancies), one row per provider, currency and money_direction: how many findings and how much.
-- materialized: table
-- unique_key: provider, currency, money_direction
-- column provider: esimtrade or pressone.
-- column currency: Currency of the amounts summed.
-- column money_direction: recoverable, unrecorded_cost, customer_exposure, lost_cost, overcharge, books_overstate, unverified or none.
-- column findings: Number of open findings in this group.
-- column amount: Sum of their amount_at_risk (decimal, 2 places).
with

discrepancies as (
    select * from reports.discrepancies
),

final as (
    select
        provider,
        currency,
        money_direction,
        cast(count(*) as bigint) as findings,
        cast(sum(amount_at_risk) as decimal(18, 2)) as amount
    from discrepancies
    group by provider, currency, money_direction
)

select * from final
