{#- The combination of `columns` is unique in the relation (nulls count as values).

    On a build of the touched orders, a model maintained by touched orders is tested on the rows
    that build wrote (its batch copy, see macros/order_batch.sql): the other orders' rows are as
    the last build tested them. With provider and order_no in the key no two orders share a key,
    so the written rows are the whole test, with one more failure: a written row of an order
    that was not touched (its old rows were not deleted). Otherwise the keys of the written rows
    are looked up among every row. -#}
{% test unique_key(model, columns) %}
    -- depends_on: {{ ref('int_touched_orders') }}
    {%- set by_order = maintained_by_order(model) and order_batch_active() %}
    {%- set order_in_key = 'provider' in columns and 'order_no' in columns %}
    {%- if by_order and order_in_key %}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ batch_copy(model) }}
    group by all
    having count(*) > 1
        or (provider, order_no) not in (
            select provider, order_no from {{ ref('int_touched_orders') }}
        )
    {%- else %}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ model }} as keyed
    {%- if by_order %}
    where exists (
        select 1
        from {{ batch_copy(model) }} as written
        where true
        {%- for column in columns %}
            and written.{{ column }} is not distinct from keyed.{{ column }}
        {%- endfor %}
    )
    {%- endif %}
    group by all
    having count(*) > 1
    {%- endif %}
{% endtest %}
