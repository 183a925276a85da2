with

provider_states as (
    {{ union_provider_models('state_history') }}
),

observations as (
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from provider_states
),

final as (
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from observations
    -- two runs seeing an eSIM at the same instant: the later run id speaks
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by run_id desc
    ) = 1
)

select * from final
