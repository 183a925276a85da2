-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Every provider's eSIMs (stg_<provider>_esims), by name: a column one provider's model lacks
-- would be empty for its rows.
unioned as (
    {{ union_provider_models('esims') }}
),

final as (
    select
        provider, order_no, esim_key, iccid, status_raw, status_source, canonical_state,
        package_code, amount, currency, total_bytes, used_bytes, is_unlimited, last_synced_at,
        state_observed_at, usage_observed, is_order_level, created_at, judged_by_listing
    from unioned
    where {{ in_order_batch('provider', 'order_no') }}
)

select * from final
