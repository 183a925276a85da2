-- What raw holds, per table and ingestion run: how many rows, and for a load whether it completed
-- and when. pipelines.incremental keeps a copy of it after each successful build; the next build
-- compares the two to find the runs it has not built yet (crashed ones included: a run counts by
-- its rows, whatever its log says).
with

ingest_loads as (
    select * from {{ ref('stg_ingest_loads') }}
),

-- Each provider's list and fetch tables, through its entries views (one row per raw row).
raw_rows as (
    {%- for provider in var('providers') %}
    {%- for entries in ['list_entries', 'fetch_entries'] %}
    select raw_table, run_id, count(*) as row_count
    from {{ ref('stg_' ~ provider ~ '_' ~ entries) }}
    group by raw_table, run_id
    union all
    {%- endfor %}
    {%- endfor %}
    select 'local_orders' as raw_table, run_id, count(*) as row_count
    from {{ source('raw', 'local_orders') }}
    group by run_id
),

-- A complete load may have no rows (an empty list or file): it still counts.
logged_loads as (
    select asset as raw_table, run_id, is_complete, finished_at
    from ingest_loads
    where asset = 'local_orders'
        or asset in (select list_asset from {{ ref('provider_sources') }})
),

final as (
    select
        coalesce(raw_rows.raw_table, logged_loads.raw_table) as raw_table,
        coalesce(raw_rows.run_id, logged_loads.run_id) as run_id,
        cast(coalesce(raw_rows.row_count, 0) as bigint) as row_count,
        coalesce(logged_loads.is_complete, false) as is_complete,
        logged_loads.finished_at
    from raw_rows
    full join logged_loads
        on logged_loads.raw_table = raw_rows.raw_table
        and logged_loads.run_id = raw_rows.run_id
)

select * from final
