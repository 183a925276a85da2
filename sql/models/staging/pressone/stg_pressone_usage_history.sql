{{ config(materialized='view') }}

with

pressone_usage as (
    select * from {{ ref('stg_pressone_usage_attempts') }}
),

pressone_sims as (
    select * from {{ ref('stg_pressone_order_sims') }}
),

final as (
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
)

select * from final
