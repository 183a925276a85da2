{#-
  one_row_per_key(rows, key, order_by): the rows of the CTE `rows`, one per `key` (a list of
  column names); among rows sharing a key, the first by `order_by`. The result of
      select * from rows qualify row_number() over (partition by key order by order_by) = 1
  for models where a shared key is rare: the keys more than one row has are found by their hash
  in one aggregate, and only their rows go through the window (every row of such a key has the
  same hash; a collision only sends a few more rows through it). At 10M rows a window over every
  row cost two to three times as much.
  `rows` is read twice: declare it `as not materialized`, or DuckDB copies it into memory first.
-#}
{% macro one_row_per_key(rows, key, order_by) -%}
    {%- set key_columns = key | join(', ') -%}
    with

    repeated_keys as (
        select hash({{ key_columns }}) as key_hash
        from {{ rows }}
        group by key_hash
        having count(*) > 1
    ),

    flagged as not materialized (
        select
            *,
            hash({{ key_columns }}) in (select key_hash from repeated_keys) as is_repeated_key
        from {{ rows }}
    )

    select * exclude (is_repeated_key)
    from flagged
    where not is_repeated_key
    union all by name
    select * exclude (is_repeated_key)
    from flagged
    where is_repeated_key
    qualify row_number() over (partition by {{ key_columns }} order by {{ order_by }}) = 1
{%- endmacro %}
