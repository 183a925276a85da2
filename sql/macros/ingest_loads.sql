{#- "Complete load", defined once: the ingestion runs of `asset` that logged status complete
    (run_id, finished_at), read from stg_ingest_loads. A crashed or still-running load is never
    one. `latest_complete_load` keeps only the newest (ties broken by run_id). -#}
{% macro complete_loads(asset) -%}
    select run_id, finished_at
    from {{ ref('stg_ingest_loads') }}
    where asset = {{ dbt.string_literal(asset) }} and is_complete
{%- endmacro %}

{% macro latest_complete_load(asset) -%}
    {{ complete_loads(asset) }}
    order by finished_at desc, run_id desc
    limit 1
{%- endmacro %}
