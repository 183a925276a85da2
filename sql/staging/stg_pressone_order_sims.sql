-- description: PressOne eSIMs as listed now: the sims of the latest snapshot of each `sim` order across complete list loads (an order without sims is one order-level row).
-- materialized: table
-- unique_key: order_no, esim_key
with

order_snapshots as (
    select * from staging.stg_pressone_order_snapshots
),

latest_snapshot as (
    select *
    from order_snapshots
    qualify dense_rank() over (
        partition by order_id order by load_finished_at desc, run_id desc, fetched_at desc
    ) = 1
),

final as (
    select *
    from latest_snapshot
    qualify row_number() over (
        partition by order_id, esim_key order by sim_index nulls last, sim_id nulls last
    ) = 1
)

select * from final
