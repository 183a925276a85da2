with

-- Per eSIM and day first (int_usage_esim_days): counting those rows per day counts the eSIMs
-- observed, without a distinct aggregate over every snapshot.
esim_days as (
    select * from {{ ref('int_usage_esim_days') }}
),

final as (
    select
        provider,
        package_code,
        usage_date,
        cast(sum(grown_bytes) as bigint) as used_bytes,
        cast(count(*) as bigint) as esims_observed,
        cast(sum(snapshots) as bigint) as snapshots
    from esim_days
    group by provider, package_code, usage_date
)

select * from final
