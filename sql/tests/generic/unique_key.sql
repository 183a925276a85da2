{#- The combination of `columns` is unique in the relation (nulls count as values).

    On a build of the touched orders, a model maintained by touched orders is tested on the rows
    that build wrote (its batch copy, see macros/order_batch.sql): the other orders' rows are as
    the last build tested them. With provider and order_no in the key no two orders share a key,
    so the written rows are the whole test; otherwise the keys of the written rows are looked up
    among every row. Either way, a written row of an order that was not touched fails too (that
    order's old rows were not deleted, and the models below read the copy as the touched
    orders' rows). -#}
{% test unique_key(model, columns) %}
    -- depends_on: {{ ref('int_touched_orders') }}
    {%- set by_order = maintained_by_order(model) and order_batch_active() %}
    {%- set order_in_key = 'provider' in columns and 'order_no' in columns %}
    select {{ columns | join(', ') }}, count(*) as copies
    {%- if by_order and order_in_key %}
    from {{ batch_copy(model) }}
    {%- else %}
    from {{ model }} as keyed
    {%- endif %}
    {%- if by_order and not order_in_key %}
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
    {%- if by_order %}
    union all
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ batch_copy(model) }}
    where (provider, order_no) not in (
        select provider, order_no from {{ ref('int_touched_orders') }}
    )
    group by all
    {%- endif %}
{% endtest %}
