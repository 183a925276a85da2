{{ config(materialized='view') }}

with

esimtrade_esims as (
    select * from {{ ref('stg_esimtrade_esims') }}
),

pressone_esims as (
    select * from {{ ref('stg_pressone_esims') }}
),

-- By name: a column one provider's model lacks would be empty for its rows.
unioned as (
    select * from esimtrade_esims
    union all by name
    select * from pressone_esims
),

final as (
    select
        provider, order_no, esim_key, iccid, status_raw, status_source, canonical_state,
        package_code, amount, currency, total_bytes, used_bytes, is_unlimited, last_synced_at,
        usage_observed, is_order_level
    from unioned
)

select * from final
