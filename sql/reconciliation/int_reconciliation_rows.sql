-- description: Every latest local row and every provider eSIM exactly once: matched pairs, local rows left over and provider eSIMs left over, with both sides' values and the verdict before findings (paired / missing_at_provider / missing_locally / not_checked).
-- materialized: table
-- unique_key: row_id
-- state_columns: local_state, provider_state
with

local_orders as (
    select * from staging.stg_local_orders
),

provider_esims as (
    select * from reconciliation.int_provider_esims
),

matches as (
    select * from reconciliation.int_esim_matches
),

coverage as (
    select * from reconciliation.int_source_coverage
),

known_orders as (
    select * from staging.stg_known_orders
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

local_rows as (
    select
        'L' || cast(local_side.local_line_no as varchar) as row_id,
        local_side.provider,
        local_side.order_no,
        local_side.local_line_no,
        local_side.local_iccid,
        local_side.local_iccid_shape_ok,
        local_side.local_status,
        local_side.local_state,
        local_side.local_package_code,
        local_side.local_amount,
        local_side.local_currency,
        provider_esims.esim_key as provider_esim_key,
        provider_esims.iccid as provider_iccid,
        provider_esims.status_raw as provider_status,
        provider_esims.canonical_state as provider_state,
        provider_esims.package_code as provider_package_code,
        provider_esims.amount as provider_amount,
        provider_esims.currency as provider_currency,
        provider_esims.total_bytes as provider_total_bytes,
        provider_esims.used_bytes as provider_used_bytes,
        provider_esims.is_unlimited as provider_is_unlimited,
        provider_esims.last_synced_at as provider_last_synced_at,
        provider_esims.is_order_level as provider_is_order_level,
        local_side.match_method,
        case
            when provider_esims.esim_key is not null then 'paired'
            when not coalesce(coverage.is_ingested, false) then 'not_checked'
            when known_orders.order_no is null then 'missing_at_provider'
            -- The provider knows the order but has no eSIM left for this row: the rules
            -- (section 2.3) name no finding for it, so it is not judged.
            else 'not_checked'
        end as base_verdict
    from local_side
    left join provider_esims
        on provider_esims.provider = local_side.provider
        and provider_esims.order_no = local_side.order_no
        and provider_esims.esim_key = local_side.provider_esim_key
    left join coverage on coverage.provider = local_side.provider
    left join known_orders
        on known_orders.provider = local_side.provider
        and known_orders.order_no = local_side.order_no
),

provider_rows as (
    select
        'P:' || provider_esims.provider || ':' || provider_esims.order_no || ':'
            || provider_esims.esim_key as row_id,
        provider_esims.provider,
        provider_esims.order_no,
        cast(null as integer) as local_line_no,
        cast(null as varchar) as local_iccid,
        cast(null as boolean) as local_iccid_shape_ok,
        cast(null as varchar) as local_status,
        cast(null as varchar) as local_state,
        cast(null as varchar) as local_package_code,
        cast(null as decimal(18, 4)) as local_amount,
        cast(null as varchar) as local_currency,
        provider_esims.esim_key as provider_esim_key,
        provider_esims.iccid as provider_iccid,
        provider_esims.status_raw as provider_status,
        provider_esims.canonical_state as provider_state,
        provider_esims.package_code as provider_package_code,
        provider_esims.amount as provider_amount,
        provider_esims.currency as provider_currency,
        provider_esims.total_bytes as provider_total_bytes,
        provider_esims.used_bytes as provider_used_bytes,
        provider_esims.is_unlimited as provider_is_unlimited,
        provider_esims.last_synced_at as provider_last_synced_at,
        provider_esims.is_order_level as provider_is_order_level,
        cast(null as varchar) as match_method,
        case
            when coalesce(coverage.is_ingested, false) and coalesce(coverage.local_loaded, false)
                then 'missing_locally'
            else 'not_checked'
        end as base_verdict
    from provider_esims
    left join matches
        on matches.provider = provider_esims.provider
        and matches.order_no = provider_esims.order_no
        and matches.provider_esim_key = provider_esims.esim_key
    left join coverage on coverage.provider = provider_esims.provider
    where matches.provider_esim_key is null
),

unioned as (
    select * from local_rows
    union all
    select * from provider_rows
),

final as (
    select
        *,
        -- The finding key's ICCID (rules section 3): the local row's where there is a local
        -- row, else the provider's; empty string when unknown.
        case
            when local_line_no is not null then coalesce(local_iccid, '')
            else coalesce(provider_iccid, '')
        end as finding_iccid
    from unioned
)

select * from final
