{{ config(materialized='ephemeral') }}

with

order_syncs as (
    select * from {{ source('raw', 'esimtrade_order_syncs') }}
),

final as (
    select
        'esimtrade' as provider,
        'esimtrade_order_syncs' as raw_table,
        run_id,
        -- as stg_esimtrade_sync_attempts files the row: the two must agree, or an order batch
        -- would miss the order a new sync belongs to
        coalesce(nullif(trim(order_no), ''), nullif(trim(requested_order_no), '')) as order_no,
        nullif(trim(iccid), '') as iccid,
        nullif(trim(requested_iccid), '') as requested_iccid,
        cast(null as varchar) as unheld_order_no
    from order_syncs
)

select * from final
