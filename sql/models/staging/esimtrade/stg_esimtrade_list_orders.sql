-- depends_on: {{ ref('int_touched_orders') }}
with

esimtrade_orders as (
    select * from {{ source('raw', 'esimtrade_orders') }}
    where {{ in_order_batch("'esimtrade'", 'trim(provider_order_no)') }}
),

complete_loads as (
    {{ complete_loads('esimtrade_orders') }}
),

listed as (
    select
        trim(esimtrade_orders.provider_order_no) as order_no,
        esimtrade_orders.status as status_raw,
        nullif(upper(trim(esimtrade_orders.status)), '') as status_key,
        nullif(trim(esimtrade_orders.package_code), '') as package_code,
        esimtrade_orders.quantity,
        esimtrade_orders.cost_price,
        esimtrade_orders.sell_price,
        esimtrade_orders.fetched_at,
        esimtrade_orders.page,
        esimtrade_orders.run_id,
        complete_loads.finished_at as load_finished_at
    from esimtrade_orders
    inner join complete_loads on complete_loads.run_id = esimtrade_orders.run_id
),

latest as (
    select *
    from listed
    qualify row_number() over (
        partition by order_no
        order by load_finished_at desc, run_id desc, fetched_at desc, page nulls last
    ) = 1
),

final as (
    select
        'esimtrade' as provider,
        order_no,
        status_raw,
        status_key,
        package_code,
        quantity,
        cost_price,
        sell_price,
        fetched_at as listed_at,
        run_id
    from latest
)

select * from final
