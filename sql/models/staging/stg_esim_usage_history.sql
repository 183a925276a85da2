with

esimtrade_syncs as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

esimtrade_list as (
    select * from {{ ref('stg_esimtrade_list_orders') }}
),

pressone_usage as (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

pressone_sims as (
    select * from {{ ref('stg_pressone_order_sims') }}
),

esimtrade_observations as (
    select
        'esimtrade' as provider,
        esimtrade_syncs.order_no,
        esimtrade_syncs.esim_key,
        esimtrade_syncs.iccid,
        coalesce(esimtrade_syncs.package_code, esimtrade_list.package_code) as package_code,
        esimtrade_syncs.fetched_at as observed_at,
        esimtrade_syncs.used_bytes,
        esimtrade_syncs.total_bytes
    from esimtrade_syncs
    left join esimtrade_list on esimtrade_list.order_no = esimtrade_syncs.order_no
    where esimtrade_syncs.outcome = 'ok'
        and esimtrade_syncs.order_no is not null
        and esimtrade_syncs.used_bytes is not null
),

pressone_observations as (
    select
        'pressone' as provider,
        pressone_usage.order_no,
        pressone_sims.esim_key,
        pressone_usage.iccid,
        pressone_sims.package_code,
        pressone_usage.fetched_at as observed_at,
        pressone_usage.used_bytes,
        pressone_usage.total_bytes
    from pressone_usage
    inner join pressone_sims
        on pressone_sims.order_no = pressone_usage.order_no
        and pressone_sims.iccid = pressone_usage.iccid
    where pressone_usage.outcome = 'ok' and pressone_usage.used_bytes is not null
),

observations as (
    select * from esimtrade_observations
    union all
    select * from pressone_observations
),

final as (
    select *
    from observations
    qualify row_number() over (
        partition by provider, order_no, esim_key, observed_at order by used_bytes desc
    ) = 1
)

select * from final
