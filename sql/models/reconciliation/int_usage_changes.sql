-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

usage_history as (
    select * from {{ touched_rows(ref('stg_esim_usage_history')) }}
),

sequenced as (
    select
        *,
        lag(used_bytes) over by_esim as previous_used_bytes,
        lag(observed_at) over by_esim as previous_observed_at
    from usage_history
    window by_esim as (partition by provider, order_no, esim_key order by observed_at)
),

changes as (
    select *
    from sequenced
    where previous_used_bytes is not null and previous_used_bytes <> used_bytes
),

final as (
    select
        provider,
        order_no,
        esim_key,
        iccid,
        previous_observed_at,
        observed_at,
        previous_used_bytes,
        used_bytes,
        used_bytes < previous_used_bytes as is_decrease,
        row_number() over (
            partition by provider, order_no, esim_key order by observed_at desc
        ) = 1 as is_latest
    from changes
)

select * from final
