{#- The combination of `columns` is unique in the relation (nulls count as values). -#}
{% test unique_key(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as copies
    from {{ model }}
    group by all
    having count(*) > 1
{% endtest %}
