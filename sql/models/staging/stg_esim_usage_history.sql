-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Each provider's observations in the canonical shape, from its own staging folder (read twice
-- by one_row_per_key).
observations as not materialized (
    select *
    from (
        {{ union_provider_models('usage_history') }}
    ) as provider_usage
    where {{ in_order_batch('provider', 'order_no') }}
),

final as (
    -- two fetches of an eSIM at the same instant: the higher usage speaks
    {{ one_row_per_key('observations', ['provider', 'order_no', 'esim_key', 'observed_at'], 'used_bytes desc') }}
)

select * from final
