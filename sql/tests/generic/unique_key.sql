{#- The combination of `columns` is unique in the relation (nulls count as values).

    On a build of the touched orders, a model maintained by touched orders is tested on those
    orders' rows: the other orders' rows are as the last build tested them. With provider and
    order_no in the key no two orders share a key, so the touched orders' rows are the whole
    test; otherwise the keys of the touched orders' rows are looked up among every row. -#}
{% test unique_key(model, columns) %}
    -- depends_on: {{ ref('int_touched_orders') }}
    {%- set by_order = maintained_by_order(model) and order_batch_active() %}
    {%- set order_in_key = 'provider' in columns and 'order_no' in columns %}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ model }} as keyed
    {%- if by_order and order_in_key %}
    where {{ in_order_batch('provider', 'order_no') }}
    {%- elif by_order %}
    where exists (
        select 1
        from {{ model }} as touched
        where {{ in_order_batch('touched.provider', 'touched.order_no') }}
        {%- for column in columns %}
            and touched.{{ column }} is not distinct from keyed.{{ column }}
        {%- endfor %}
    )
    {%- endif %}
    group by all
    having count(*) > 1
{% endtest %}
