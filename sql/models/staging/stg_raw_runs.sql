-- What raw holds, per table and ingestion run: how many rows, and for a load whether it completed
-- and when. pipelines.incremental keeps a copy of it after each successful build; the next build
-- compares the two to find the runs it has not built yet (crashed ones included: a run counts by
-- its rows, whatever its log says).
with

ingest_loads as (
    select * from {{ ref('stg_ingest_loads') }}
),

raw_rows as (
    {%- for raw_table in ['esimtrade_orders', 'esimtrade_order_syncs', 'pressone_orders', 'pressone_usage', 'local_orders'] %}
    select {{ dbt.string_literal(raw_table) }} as raw_table, run_id, count(*) as row_count
    from {{ source('raw', raw_table) }}
    group by run_id
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

-- A complete load may have no rows (an empty list or file): it still counts.
logged_loads as (
    select asset as raw_table, run_id, is_complete, finished_at
    from ingest_loads
    where asset in ('esimtrade_orders', 'pressone_orders', 'local_orders')
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
