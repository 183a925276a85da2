-- depends_on: {{ ref('int_touched_orders') }}
-- Per order, so it is maintained by touched orders; reports.usage_daily sums it across orders.
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

usage_history as (
    select * from {{ touched_rows(ref('stg_esim_usage_history')) }}
),

growth as (
    select
        provider,
        order_no,
        esim_key,
        coalesce(package_code, '') as package_code,
        cast(timezone('UTC', observed_at) as date) as usage_date,
        greatest(
            0,
            used_bytes - coalesce(
                max(used_bytes) over (
                    partition by provider, order_no, esim_key order by observed_at
                    rows between unbounded preceding and 1 preceding
                ),
                0
            )
        ) as grown_bytes
    from usage_history
),

final as (
    select
        provider,
        order_no,
        esim_key,
        package_code,
        usage_date,
        cast(sum(grown_bytes) as bigint) as grown_bytes,
        cast(count(*) as bigint) as snapshots
    from growth
    group by provider, order_no, esim_key, package_code, usage_date
)

select * from final
