with

provider_states as not materialized (
    {{ union_provider_models('state_history') }}
),

-- read twice by one_row_per_key
observations as not materialized (
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from provider_states
),

final as (
    -- two runs seeing an eSIM at the same instant: the later run id speaks
    {{ one_row_per_key('observations', ['provider', 'order_no', 'esim_key', 'observed_at'], 'run_id desc') }}
)

select * from final
