{#- One relation per provider, unioned by column name: `stg_<provider>_<suffix>` for every
    provider in the project var `providers` (dbt_project.yml). A third provider adds its
    staging folder with these models and its name to the var; the shared models that call
    this macro do not change. `where`, when given, filters each provider's relation before the
    union (so DuckDB filters each scan instead of the union's rows). -#}
{% macro union_provider_models(suffix, where=none) -%}
    {%- for provider in var('providers') %}
    select * from {{ ref('stg_' ~ provider ~ '_' ~ suffix) }}
    {%- if where %}
    where {{ where }}
    {%- endif %}
    {%- if not loop.last %}
    union all by name
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
