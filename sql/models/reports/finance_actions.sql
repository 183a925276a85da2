with

discrepancies as (
    select * from {{ ref('discrepancies') }}
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
