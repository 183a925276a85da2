with

esimtrade_syncs as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

pressone_states as (
    select * from {{ ref('stg_pressone_state_history') }}
),

esimtrade_observations as (
    select
        'esimtrade' as provider,
        order_no,
        esim_key,
        iccid,
        fetched_at as observed_at,
        0 as event_order,
        status_raw,
        canonical_state
    from esimtrade_syncs
    where outcome = 'ok' and order_no is not null and canonical_state is not null
),

pressone_observations as (
    select
        provider,
        order_no,
        esim_key,
        iccid,
        observed_at,
        event_order,
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
    select provider, order_no, esim_key, iccid, observed_at, status_raw, canonical_state
    from observations
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by event_order desc
    ) = 1
)

select * from final
