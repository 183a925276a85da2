with

-- Each provider's observations in the canonical shape, from its own staging folder.
observations as (
    {{ union_provider_models('usage_history') }}
),

final as (
    select *
    from observations
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by used_bytes desc
    ) = 1
)

select * from final
