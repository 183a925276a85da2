-- depends_on: {{ ref('int_touched_orders') }}
with

pressone_orders as (
    select * from {{ source('raw', 'pressone_orders') }}
    where {{ in_order_batch("'pressone'", 'trim(order_code)') }}
),

complete_loads as (
    {{ complete_loads('pressone_orders') }}
),

listed as (
    select
        pressone_orders.order_id,
        trim(pressone_orders.order_code) as order_no,
        lower(trim(pressone_orders.order_type)) as order_type,
        pressone_orders.order_status,
        nullif(upper(trim(pressone_orders.order_status)), '') as order_status_key,
        pressone_orders.created_at,
        nullif(trim(pressone_orders.package_id), '') as package_code,
        pressone_orders.quantity,
        pressone_orders.price,
        nullif(upper(trim(pressone_orders.currency)), '') as currency,
        pressone_orders.sim_id,
        pressone_orders.sim_index,
        nullif(trim(pressone_orders.iccid), '') as iccid,
        pressone_orders.fetched_at,
        pressone_orders.run_id,
        complete_loads.finished_at as load_finished_at
    from pressone_orders
    inner join complete_loads on complete_loads.run_id = pressone_orders.run_id
),

sim_orders as (
    select *
    from listed
    where coalesce(order_type, 'sim') <> 'topup'
),

final as (
    select
        'pressone' as provider,
        order_id,
        order_no,
        order_type,
        order_status,
        order_status_key,
        created_at,
        package_code,
        quantity,
        price,
        currency,
        sim_id,
        sim_index,
        iccid,
        coalesce(iccid, 'sim:' || cast(sim_id as varchar), order_no) as esim_key,
        sim_id is null and iccid is null as is_order_level,
        fetched_at,
        run_id,
        load_finished_at
    from sim_orders
)

select * from final
