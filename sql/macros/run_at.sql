{#- The time that stamps this build (history episodes, detected_at): the `run_at` var when the
    caller gives one (a replayed run, a test), else when dbt started, as a TIMESTAMPTZ literal. -#}
{% macro run_at() -%}
    {%- set given = var('run_at', none) -%}
    {%- set when = given if given else run_started_at.isoformat() -%}
    cast({{ dbt.string_literal(when) }} as timestamptz)
{%- endmacro %}
