{{ config(materialized='view') }}

-- A view over the ingest log (see stg_ingest_loads): always current, whatever part of the
-- graph a run selects. A windowed list load (a backfill of some days) says nothing about orders
-- created on other days, so only a full load makes the provider's absence of an order a verdict.
with

providers as (
    select * from {{ ref('provider_sources') }}
),

ingest_loads as (
    select * from {{ ref('stg_ingest_loads') }}
),

complete_list_loads as (
    select asset, count(*) as complete_loads, max(finished_at) as last_complete_at
    from ingest_loads
    where is_complete and not is_windowed
    group by asset
),

local_load as (
    select count(*) > 0 as local_loaded
    from ingest_loads
    where asset = 'local_orders' and is_complete
),

final as (
    select
        providers.provider,
        providers.list_asset,
        coalesce(complete_list_loads.complete_loads, 0) > 0 as is_ingested,
        complete_list_loads.last_complete_at as last_list_load_at,
        local_load.local_loaded
    from providers
    left join complete_list_loads on complete_list_loads.asset = providers.list_asset
    cross join local_load
)

select * from final
