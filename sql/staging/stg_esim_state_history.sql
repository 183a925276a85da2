-- description: The state of each provider eSIM in each run that judged it, both providers, keyed by provider + order number + eSIM key (esimTranNo or ICCID), never ICCID alone: one observation per run, as that run saw it last (rules section 4).
-- materialized: table
-- unique_key: provider, order_no, esim_key, observed_at
-- state_columns: canonical_state
with

esimtrade_states as (
    select * from staging.stg_esimtrade_state_history
),

pressone_states as (
    select * from staging.stg_pressone_state_history
),

esimtrade_observations as (
    select provider, order_no, esim_key, iccid, run_id, observed_at, status_raw, canonical_state
    from esimtrade_states
),

pressone_observations as (
    select
        provider,
        order_no,
        esim_key,
        iccid,
        run_id,
        observed_at,
        concat_ws('/', lower(order_status_key), usage_status_key) as status_raw,
        canonical_state
    from pressone_states
),

observations as (
    select * from esimtrade_observations
    union all
    select * from pressone_observations
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
