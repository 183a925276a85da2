{{ config(materialized='view') }}

-- A view, never stale: {{ source('raw', 'ingest_log') }} is written by every ingestion asset, so no single
-- upstream asset could tell Dagster to rebuild a table here.
with

ingest_log as (
    select * from {{ source('raw', 'ingest_log') }}
),

typed as (
    select
        run_id,
        lower(trim(asset)) as asset,
        lower(trim(provider)) as provider,
        started_at,
        finished_at,
        lower(trim(status)) as status,
        rows_written,
        requests,
        window_from,
        window_to,
        detail
    from ingest_log
),

deduplicated as (
    select *
    from typed
    qualify row_number() over (
        partition by run_id, asset order by finished_at desc, status
    ) = 1
),

final as (
    select
        *,
        status = 'complete' as is_complete,
        window_from is not null or window_to is not null as is_windowed
    from deduplicated
)

select * from final
