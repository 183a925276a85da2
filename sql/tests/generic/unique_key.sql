{#- The combination of `columns` is unique in the relation (nulls count as values).

    On a build of the touched orders, a model maintained by touched orders is tested on those
    orders' rows: the other orders' rows are as the last build tested them, and with provider
    and order_no in the key no two orders share a key. -#}
{% test unique_key(model, columns) %}
    -- depends_on: {{ ref('int_touched_orders') }}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ model }}
    {%- if 'provider' in columns and 'order_no' in columns and maintained_by_order(model) %}
    where {{ in_order_batch('provider', 'order_no') }}
    {%- endif %}
    group by all
    having count(*) > 1
{% endtest %}
