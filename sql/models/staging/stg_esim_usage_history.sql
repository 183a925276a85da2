-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Each provider's observations in the canonical shape, from its own staging folder.
observations as (
    {{ union_provider_models('usage_history') }}
),

final as (
    select *
    from observations
    where {{ in_order_batch('provider', 'order_no') }}
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by used_bytes desc
    ) = 1
)

select * from final
