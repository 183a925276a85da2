{#-
  materialized='history': the model's SELECT is the set of records present *now*, unique on the
  `history_key` columns. The table keeps every episode of every record with three columns kept
  here: first_detected_at, last_seen_at and resolved_at. Each build, in one transaction, stamped
  with run_at():
    1. open episodes (resolved_at null) whose key is present get last_seen_at = run time and the
       present values of the other columns;
    2. open episodes whose key is absent get resolved_at = run time;
    3. present keys without an open episode start a new episode (first_detected_at = run time).
  A build with nothing changed adds no rows and moves only last_seen_at. On an order batch
  (macros/order_batch.sql), when `provider` and `order_no` are part of the history_key, the SELECT
  may hold the touched orders only: step 2 then looks at the touched orders only, and the other
  orders' open episodes (present, since their findings did not change) just get last_seen_at.
  The table is never dropped, not even by --full-refresh: it is the memory of past runs. A column
  added to the SELECT is added to the table.
-#}
{% materialization history, adapter='duckdb' %}
    {%- set keys = config.require('history_key') -%}
    {%- set kept = ['first_detected_at', 'last_seen_at', 'resolved_at'] -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set stage = '"history_stage__' ~ this.identifier ~ '"' -%}
    {%- set run_at = run_at() -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% if existing is not none and existing.type != 'table' %}
        {% do adapter.drop_relation(existing) %}
        {% set existing = none %}
    {% endif %}

    {% call statement('stage') %}
        create or replace temp table {{ stage }} as {{ sql }}
    {% endcall %}
    {%- set described = run_query('describe ' ~ stage) -%}
    {%- set staged = [] -%}
    {%- set types = {} -%}
    {%- for row in described.rows -%}
        {%- do staged.append(row[0]) -%}
        {%- do types.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {%- for column in kept if column in staged -%}
        {{ exceptions.raise_compiler_error(model.name ~ ": the history materialization keeps " ~ column ~ "; do not select it") }}
    {%- endfor -%}
    {%- for key in keys if key not in staged -%}
        {{ exceptions.raise_compiler_error(model.name ~ ": history_key column " ~ key ~ " is not selected") }}
    {%- endfor -%}
    {%- set key_list = keys | join(', ') -%}
    {%- set by_order = 'provider' in keys and 'order_no' in keys and order_batch_active() -%}
    {%- set bad = run_query(
        'select (select count(*) from ' ~ stage ~ ' where ' ~ (keys | join(' is null or ')) ~ ' is null), '
        ~ '(select count(*) from (select ' ~ key_list ~ ' from ' ~ stage ~ ' group by all having count(*) > 1))'
    ).rows[0] -%}
    {%- if bad[0] or bad[1] -%}
        {{ exceptions.raise_compiler_error(model.name ~ ": history_key must be non-null and unique (" ~ bad[0] ~ " null keys, " ~ bad[1] ~ " duplicated keys)") }}
    {%- endif -%}

    {% if existing is none %}
        {% call statement('create') %}
            create table {{ target_relation }} (
                {%- for column in staged %}{{ adapter.quote(column) }} {{ types[column] }}, {% endfor -%}
                first_detected_at timestamptz, last_seen_at timestamptz, resolved_at timestamptz
            )
        {% endcall %}
    {% else %}
        {%- set present = adapter.get_columns_in_relation(target_relation) | map(attribute='name') | list -%}
        {% for column in staged if column not in present %}
            {% call statement('add_' ~ column) %}
                alter table {{ target_relation }} add column {{ adapter.quote(column) }} {{ types[column] }}
            {% endcall %}
        {% endfor %}
    {% endif %}

    {%- set match -%}
        {%- for key in keys %}h.{{ key }} = c.{{ key }}{% if not loop.last %} and {% endif %}{% endfor -%}
    {%- endset -%}
    {% call statement('main') %}
        update {{ target_relation }} as h
        set last_seen_at = {{ run_at }}
            {%- for column in staged if column not in keys %}, {{ adapter.quote(column) }} = c.{{ adapter.quote(column) }}{% endfor %}
        from {{ stage }} as c
        where h.resolved_at is null and {{ match }};

        update {{ target_relation }} as h
        set resolved_at = {{ run_at }}
        where h.resolved_at is null
            {%- if by_order %}
            and {{ in_order_batch('h.provider', 'h.order_no') }}
            {%- endif %}
            and not exists (select 1 from {{ stage }} as c where {{ match }});
        {%- if by_order %}

        update {{ target_relation }} as h
        set last_seen_at = {{ run_at }}
        where h.resolved_at is null and not ({{ in_order_batch('h.provider', 'h.order_no') }});
        {%- endif %}

        insert into {{ target_relation }} by name
        select c.*, {{ run_at }} as first_detected_at, {{ run_at }} as last_seen_at,
            cast(null as timestamptz) as resolved_at
        from {{ stage }} as c
        where not exists (
            select 1 from {{ target_relation }} as h where h.resolved_at is null and {{ match }}
        );

        drop table {{ stage }}
    {% endcall %}

    {% do persist_docs(target_relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
