-- depends_on: {{ ref('int_touched_orders') }}
with

local_orders as not materialized (
    select * from {{ ref('stg_local_orders') }}
),

-- Read twice below: in an order batch the touched orders' eSIMs, few, found in one scan and kept.
provider_esims as {% if order_batch_active() %}materialized{% else %}not materialized{% endif %} (
    select * from {{ ref('int_provider_esims') }}
    where {{ in_order_batch('provider', 'order_no') }}
),

coverage as (
    select * from {{ ref('int_source_coverage') }}
),

local_rows as not materialized (
    select local_orders.line_no, local_orders.provider, local_orders.order_no, local_orders.iccid
    from local_orders
    inner join coverage on coverage.provider = local_orders.provider
    where coverage.is_ingested
),

local_by_iccid as (
    select
        *,
        row_number() over (partition by provider, order_no, iccid order by line_no) as iccid_seq
    from local_rows
    where iccid is not null
),

provider_by_iccid as (
    select
        provider,
        order_no,
        iccid,
        esim_key,
        row_number() over (partition by provider, order_no, iccid order by esim_key) as iccid_seq
    from provider_esims
    where iccid is not null
),

exact_matches as (
    select
        local_by_iccid.line_no as local_line_no,
        local_by_iccid.provider,
        local_by_iccid.order_no,
        provider_by_iccid.esim_key as provider_esim_key,
        'order_and_iccid' as match_method
    from local_by_iccid
    inner join provider_by_iccid
        on provider_by_iccid.provider = local_by_iccid.provider
        and provider_by_iccid.order_no = local_by_iccid.order_no
        and provider_by_iccid.iccid = local_by_iccid.iccid
        and provider_by_iccid.iccid_seq = local_by_iccid.iccid_seq
),

local_rest as (
    select
        local_rows.*,
        row_number() over (
            partition by local_rows.provider, local_rows.order_no
            order by local_rows.iccid nulls last, local_rows.line_no
        ) as order_seq
    from local_rows
    left join exact_matches on exact_matches.local_line_no = local_rows.line_no
    where exact_matches.local_line_no is null
),

provider_rest as (
    select
        provider_esims.provider,
        provider_esims.order_no,
        provider_esims.esim_key,
        row_number() over (
            partition by provider_esims.provider, provider_esims.order_no
            order by provider_esims.iccid nulls last, provider_esims.esim_key
        ) as order_seq
    from provider_esims
    left join exact_matches
        on exact_matches.provider = provider_esims.provider
        and exact_matches.order_no = provider_esims.order_no
        and exact_matches.provider_esim_key = provider_esims.esim_key
    where exact_matches.provider_esim_key is null
),

paired_in_order as (
    select
        local_rest.line_no as local_line_no,
        local_rest.provider,
        local_rest.order_no,
        provider_rest.esim_key as provider_esim_key,
        'order_position' as match_method
    from local_rest
    inner join provider_rest
        on provider_rest.provider = local_rest.provider
        and provider_rest.order_no = local_rest.order_no
        and provider_rest.order_seq = local_rest.order_seq
),

final as (
    select * from exact_matches
    union all
    select * from paired_in_order
)

select * from final
