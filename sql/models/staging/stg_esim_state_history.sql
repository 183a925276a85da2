with

provider_states as not materialized (
    {{ union_provider_models('state_history') }}
),

-- Read twice below, from the provider tables each time: kept whole, it would be copied into
-- memory first (two tables' rows).
observations as not materialized (
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from provider_states
),

-- Keys (by their hash) that more than one row has. Few: a window over every row only to find
-- them cost twice the whole model at 10M rows.
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
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from flagged
    where not is_repeated
    union all
    -- two runs seeing an eSIM at the same instant: the later run id speaks (every row of a
    -- repeated key is here, as its hash is the same)
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from flagged
    where is_repeated
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by run_id desc
    ) = 1
)

select * from final
