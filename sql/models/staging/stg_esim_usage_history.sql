-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Each provider's observations in the canonical shape, from its own staging folder. Read twice
-- below, from the provider models each time: kept whole, it would be copied into memory first.
observations as not materialized (
    select *
    from (
        {{ union_provider_models('usage_history') }}
    ) as provider_usage
    where {{ in_order_batch('provider', 'order_no') }}
),

-- Keys (by their hash) that more than one row has. Few: a window over every row only to find
-- them cost as much as the rest of the model.
repeated_keys as (
    select hash(provider, order_no, esim_key, observed_at) as key_hash
    from observations
    group by key_hash
    having count(*) > 1
),

flagged as not materialized (
    select
        *,
        hash(provider, order_no, esim_key, observed_at) in (
            select key_hash from repeated_keys
        ) as is_repeated
    from observations
),

final as (
    select * exclude (is_repeated)
    from flagged
    where not is_repeated
    union all by name
    -- two fetches of an eSIM at the same instant: the higher usage speaks (every row of a
    -- repeated key is here, as its hash is the same)
    select * exclude (is_repeated)
    from flagged
    where is_repeated
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by used_bytes desc
    ) = 1
)

select * from final
