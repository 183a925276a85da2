with

discrepancies as (
    select * from {{ ref('discrepancies') }}
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
