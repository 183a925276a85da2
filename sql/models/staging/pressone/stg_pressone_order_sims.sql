with

order_snapshots as (
    select * from {{ ref('stg_pressone_order_snapshots') }}
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
