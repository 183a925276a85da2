-- depends_on: {{ ref('int_touched_orders') }}
-- The enforced contract needs on_schema_change 'fail' (dbt); a changed project is rebuilt by a
-- full refresh anyway (pipelines.incremental).
{{
    config(
        materialized='incremental',
        incremental_strategy='touched_orders',
        on_schema_change='fail',
    )
}}

with

provider_esims as (
    select * from {{ touched_rows(ref('int_provider_esims')) }}
),

observed as (
    select *
    from provider_esims
    where usage_observed
),

final as (
    select
        provider,
        order_no,
        coalesce(iccid, '') as iccid,
        esim_key,
        package_code,
        canonical_state as state,
        total_bytes,
        used_bytes,
        total_bytes - used_bytes as remaining_bytes,
        case
            when total_bytes > 0 and used_bytes is not null
                then cast(round(100.0 * used_bytes / total_bytes, 2) as decimal(9, 2))
        end as pct_used,
        is_unlimited,
        last_synced_at
    from observed
)

select * from final
