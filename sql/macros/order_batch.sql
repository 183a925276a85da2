{#-
  Incremental runs by touched orders (see models/reconciliation/int_touched_orders.sql).

  A build runs in one of two modes:
  - whole: every model reads every order. Always so with --full-refresh, and whenever the caller
    did not ask for an order batch (ESIM_RECON_ORDER_BATCH unset): the incremental models then
    replace all their rows, in one transaction, like a full refresh that keeps the table.
  - order batch: ESIM_RECON_ORDER_BATCH=1 (set by pipelines.incremental only after a successful
    build was recorded) and int_touched_orders found a touched set it is sure of. Staging models
    then hold the touched orders only; the maintained models (materialized='incremental',
    incremental_strategy='touched_orders') delete every touched (provider, order_no) and insert
    what the batch yields for them. An order that is touched but yields no rows any more loses
    its rows: the delete is by the touched set, not by the keys of the new rows.
  The env var is read when a model runs, never at parse time, so it does not force a re-parse.
-#}

{% macro order_batch_requested() -%}
    {%- set asked = env_var('ESIM_RECON_ORDER_BATCH', '') | trim -%}
    {{ return(execute and asked == '1' and not flags.FULL_REFRESH) }}
{%- endmacro %}

{#- True when this build reads only the touched orders. Models calling it declare
    `-- depends_on: {{ ref('int_touched_orders') }}`. -#}
{% macro order_batch_active() -%}
    {%- if not order_batch_requested() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set whole = run_query(
        'select count(*) from ' ~ ref('int_touched_orders') ~ ' where is_all'
    ).rows[0][0] -%}
    {{ return(whole == 0) }}
{%- endmacro %}

{#- A predicate on (provider, order_no): true for every row in a whole build, else true for
    the touched orders only. -#}
{% macro in_order_batch(provider_expr, order_expr) -%}
    {%- if order_batch_active() -%}
        ({{ provider_expr }}, {{ order_expr }}) in (
            select provider, order_no from {{ ref('int_touched_orders') }}
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- A maintained model as the previous build left it, read without a dependency (the touched set
    is computed before the maintained models are updated). None when it does not exist yet. -#}
{% macro maintained_relation(name) -%}
    {{ return(adapter.get_relation(database=target.database, schema='reconciliation', identifier=name)) }}
{%- endmacro %}

{#- incremental_strategy='touched_orders': delete the touched orders' rows (every row in a whole
    build), then insert the new rows; one transaction (the incremental materialization commits
    once, after these statements). An order batch also keeps the rows it wrote as the model's
    batch copy (see touched_rows). -#}
{% macro get_incremental_touched_orders_sql(arg_dict) -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- set copy = batch_copy(arg_dict['target_relation']) -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ in_order_batch('provider', 'order_no') }};

    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
    {%- if order_batch_active() %};

    create schema if not exists {{ copy.schema }};
    create or replace table {{ copy }} as
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
    {%- endif %}
{%- endmacro %}

{#- Where a model maintained by touched orders keeps the rows the last order batch wrote:
    schema order_batches, the model's name. Only a build on the touched orders reads it, after
    the model has written it. -#}
{% macro batch_copy(relation) -%}
    {{ return(api.Relation.create(
        database=relation.database, schema='order_batches', identifier=relation.identifier
    )) }}
{%- endmacro %}

{#- The touched orders' rows of `relation` (every row in a whole build). A model maintained by
    touched orders has just replaced them and kept a copy of exactly those (its batch copy):
    reading the copy spares a scan of every stored order's key. The model's unique_key tests
    check that it holds touched orders only. -#}
{% macro touched_rows(relation) -%}
    {%- if order_batch_active() and maintained_by_order(relation) -%}
        {{ batch_copy(relation) }}
    {%- else -%}
        (select * from {{ relation }} where {{ in_order_batch('provider', 'order_no') }})
    {%- endif -%}
{%- endmacro %}

{#- Whether `relation` is a model maintained by touched orders (incremental_strategy
    'touched_orders'). -#}
{% macro maintained_by_order(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.schema == relation.schema
            and node.alias == relation.identifier -%}
            {{ return(node.config.materialized == 'incremental'
                and node.config.incremental_strategy == 'touched_orders') }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}
