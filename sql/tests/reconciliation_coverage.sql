{{ config(meta={'dagster': {'ref': {'name': 'reconciliation'}}}) }}
{#- Every latest local row and every provider eSIM appears exactly once in
    reports.reconciliation, and nothing else does. Returns the offending items. A build on the
    touched orders checks those orders (staging holds no other). -#}
-- depends_on: {{ ref('int_touched_orders') }}
with

local_rows as (
    select line_no from {{ ref('stg_local_orders') }}
),

provider_esims as (
    select provider, order_no, esim_key from {{ ref('int_provider_esims') }}
    where {{ in_order_batch('provider', 'order_no') }}
),

report_rows as (
    select * from {{ ref('reconciliation') }}
    where {{ in_order_batch('provider', 'order_no') }}
),

report_local as (
    select local_line_no, count(*) as copies
    from report_rows
    where local_line_no is not null
    group by local_line_no
),

report_provider as (
    select provider, order_no, provider_esim_key, count(*) as copies
    from report_rows
    where provider_esim_key is not null
    group by all
),

final as (
    select 'local row' as side, cast(local_rows.line_no as varchar) as item,
        coalesce(report_local.copies, 0) as copies
    from local_rows
    left join report_local on report_local.local_line_no = local_rows.line_no
    where coalesce(report_local.copies, 0) <> 1
    union all
    select 'local row (unknown)', cast(report_local.local_line_no as varchar), report_local.copies
    from report_local
    left join local_rows on local_rows.line_no = report_local.local_line_no
    where local_rows.line_no is null
    union all
    select 'provider eSIM',
        provider_esims.provider || ':' || provider_esims.order_no || ':' || provider_esims.esim_key,
        coalesce(report_provider.copies, 0)
    from provider_esims
    left join report_provider
        on report_provider.provider = provider_esims.provider
        and report_provider.order_no = provider_esims.order_no
        and report_provider.provider_esim_key = provider_esims.esim_key
    where coalesce(report_provider.copies, 0) <> 1
    union all
    select 'provider eSIM (unknown)',
        report_provider.provider || ':' || report_provider.order_no || ':'
            || report_provider.provider_esim_key,
        report_provider.copies
    from report_provider
    left join provider_esims
        on provider_esims.provider = report_provider.provider
        and provider_esims.order_no = report_provider.order_no
        and provider_esims.esim_key = report_provider.provider_esim_key
    where provider_esims.esim_key is null
)

select * from final
