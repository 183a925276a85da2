{#- The time that stamps this build (history episodes, detected_at): ESIM_RECON_RUN_AT when the
    caller sets it (a replayed run, a test), else when dbt started, as a TIMESTAMPTZ literal.
    Read when the model runs, not when the project is parsed, so it never forces a re-parse. -#}
{% macro run_at() -%}
    {%- set given = env_var('ESIM_RECON_RUN_AT', '') | trim -%}
    {%- set when = given if given else run_started_at.isoformat() -%}
    cast({{ dbt.string_literal(when) }} as timestamptz)
{%- endmacro %}
