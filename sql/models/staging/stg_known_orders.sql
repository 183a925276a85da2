with

provider_known as (
    {{ union_provider_models('known_orders') }}
),

final as (
    select provider, order_no, min(known_from) as known_from
    from provider_known
    group by provider, order_no
)

select * from final
