{#- A model's folder names its schema as is (reports, staging, ...), never prefixed by the
    target's schema: analysts and the contract rely on `reports.discrepancies`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
