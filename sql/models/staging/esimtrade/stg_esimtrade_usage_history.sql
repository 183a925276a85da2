{{ config(materialized='view') }}

with

esimtrade_syncs as (
    select * from {{ ref('stg_esimtrade_sync_attempts') }}
),

esimtrade_list as (
    select * from {{ ref('stg_esimtrade_list_orders') }}
),

final as (
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
)

select * from final
