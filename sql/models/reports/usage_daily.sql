with

usage_history as (
    select * from {{ ref('stg_esim_usage_history') }}
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

-- Per eSIM and day first: counting those rows per day counts the eSIMs observed, without a
-- distinct aggregate over every snapshot.
per_esim_day as (
    select
        provider,
        package_code,
        usage_date,
        sum(grown_bytes) as grown_bytes,
        count(*) as snapshots
    from growth
    group by provider, package_code, usage_date, order_no, esim_key
),

final as (
    select
        provider,
        package_code,
        usage_date,
        cast(sum(grown_bytes) as bigint) as used_bytes,
        cast(count(*) as bigint) as esims_observed,
        cast(sum(snapshots) as bigint) as snapshots
    from per_esim_day
    group by provider, package_code, usage_date
)

select * from final
