-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

local_orders as (
    select * from {{ ref('stg_local_orders') }}
),

provider_esims as (
    select * from {{ touched_rows(ref('int_provider_esims')) }}
),

matches as (
    select * from {{ ref('int_esim_matches') }}
),

coverage as (
    select * from {{ ref('int_source_coverage') }}
),

known_orders as (
    select * from {{ ref('stg_known_orders') }}
),

local_side as (
    select
        local_orders.provider,
        local_orders.order_no,
        local_orders.line_no as local_line_no,
        local_orders.iccid as local_iccid,
        local_orders.iccid_shape_ok as local_iccid_shape_ok,
        local_orders.status_raw as local_status,
        local_orders.local_state,
        local_orders.package_code as local_package_code,
        local_orders.amount as local_amount,
        local_orders.currency as local_currency,
        matches.provider_esim_key,
        matches.match_method
    from local_orders
    left join matches on matches.local_line_no = local_orders.line_no
),

provider_side as (
    select
        provider,
        order_no,
        esim_key as provider_esim_key,
        iccid as provider_iccid,
        status_raw as provider_status,
        canonical_state as provider_state,
        package_code as provider_package_code,
        amount as provider_amount,
        currency as provider_currency,
        total_bytes as provider_total_bytes,
        used_bytes as provider_used_bytes,
        is_unlimited as provider_is_unlimited,
        last_synced_at as provider_last_synced_at,
        state_observed_at as provider_state_observed_at,
        is_order_level as provider_is_order_level
    from provider_esims
),

-- Local rows the matching left without a provider eSIM: few, so only they are looked up in the
-- provider's known orders (not every row of the full join below).
unpaired_local as (
    select
        local_orders.line_no,
        known_orders.order_no is not null as order_known
    from local_orders
    left join matches on matches.local_line_no = local_orders.line_no
    left join known_orders
        on known_orders.provider = local_orders.provider
        and known_orders.order_no = local_orders.order_no
    where matches.local_line_no is null
),

-- Matching is one to one: a matched pair becomes one row, a local row or a provider eSIM
-- left over becomes a row with the other side empty.
both_sides as (
    select
        coalesce(local_side.provider, provider_side.provider) as provider,
        coalesce(local_side.order_no, provider_side.order_no) as order_no,
        local_side.* exclude (provider, order_no, provider_esim_key, match_method),
        provider_side.* exclude (provider, order_no),
        local_side.match_method
    from local_side
    full outer join provider_side
        on provider_side.provider = local_side.provider
        and provider_side.order_no = local_side.order_no
        and provider_side.provider_esim_key = local_side.provider_esim_key
),

final as (
    select
        case
            when both_sides.local_line_no is not null
                then 'L' || cast(both_sides.local_line_no as varchar)
            else 'P:' || both_sides.provider || ':' || both_sides.order_no || ':'
                || both_sides.provider_esim_key
        end as row_id,
        both_sides.*,
        case
            when both_sides.local_line_no is null then
                case
                    when coalesce(coverage.is_ingested, false)
                        and coalesce(coverage.local_loaded, false)
                        then 'missing_locally'
                    else 'not_checked'
                end
            when both_sides.provider_esim_key is not null then 'paired'
            when not coalesce(coverage.is_ingested, false) then 'not_checked'
            when not unpaired_local.order_known then 'missing_at_provider'
            -- The provider knows the order but has no eSIM left for this row: the rules
            -- (section 2.3) name no finding for it, so it is not judged.
            else 'not_checked'
        end as base_verdict,
        -- The finding key's ICCID (rules section 3): the local row's where there is a local
        -- row, else the provider's; empty string when unknown.
        case
            when both_sides.local_line_no is not null then coalesce(both_sides.local_iccid, '')
            else coalesce(both_sides.provider_iccid, '')
        end as finding_iccid
    from both_sides
    left join coverage on coverage.provider = both_sides.provider
    left join unpaired_local on unpaired_local.line_no = both_sides.local_line_no
    where {{ in_order_batch('both_sides.provider', 'both_sides.order_no') }}
)

select * from final
