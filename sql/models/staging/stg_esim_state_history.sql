with

esimtrade_states as (
    select * from {{ ref('stg_esimtrade_state_history') }}
),

pressone_states as (
    select * from {{ ref('stg_pressone_state_history') }}
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
