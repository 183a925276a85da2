{#-
  last_attempts_of_failing_keys(attempts, key, fields): for each `key` (a list of column names)
  of the CTE `attempts` with at least one failed attempt (outcome 'failed'), its latest attempt
  by fetched_at, as the struct `attempt` (outcome and `fields`). Failures are few: only those
  keys are aggregated, not every attempt. Keys are compared by their hash, so a null in the key
  matches itself (a collision only aggregates a few more keys, each still by its exact value).
  `attempts` is read twice: declare it `as not materialized`.
-#}
{% macro last_attempts_of_failing_keys(attempts, key, fields) -%}
    {%- set key_columns = key | join(', ') -%}
    select
        {{ key_columns }},
        arg_max(
            {
                'outcome': outcome
                {%- for field in fields %},
                {{ dbt.string_literal(field) }}: {{ field }}
                {%- endfor %}
            },
            fetched_at
        ) as attempt
    from {{ attempts }}
    where hash({{ key_columns }}) in (
        select hash({{ key_columns }}) from {{ attempts }} where outcome = 'failed'
    )
    group by {{ key_columns }}
{%- endmacro %}
