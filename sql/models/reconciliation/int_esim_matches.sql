-- depends_on: {{ ref('int_touched_orders') }}
with

local_orders as not materialized (
    select * from {{ ref('stg_local_orders') }}
),

-- Read twice below: in an order batch the touched orders' eSIMs, few, found in one scan and kept.
provider_esims as {% if order_batch_active() %}materialized{% else %}not materialized{% endif %} (
    select * from {{ touched_rows(ref('int_provider_esims')) }}
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

-- Both sides by (provider, order_no, iccid), keyed by its hash.
local_keyed as not materialized (
    select line_no, provider, order_no, iccid, hash(provider, order_no, iccid) as key_hash
    from local_rows
    where iccid is not null
),

provider_keyed as not materialized (
    select provider, order_no, iccid, esim_key, hash(provider, order_no, iccid) as key_hash
    from provider_esims
    where iccid is not null
),

-- Keys (by their hash) that more than one row has on either side. Few: only their rows are
-- numbered below; numbering every row cost a window over each side's whole table.
repeated_keys as (
    select key_hash from local_keyed group by key_hash having count(*) > 1
    union
    select key_hash from provider_keyed group by key_hash having count(*) > 1
),

-- The n-th row of a key on one side pairs with the n-th on the other. Every row of a repeated
-- key is numbered (its hash is the same); a key with one row on each side is row 1 on both.
local_by_iccid as (
    select line_no, provider, order_no, iccid, 1 as iccid_seq
    from local_keyed
    where key_hash not in (select key_hash from repeated_keys)
    union all
    select
        line_no,
        provider,
        order_no,
        iccid,
        row_number() over (partition by provider, order_no, iccid order by line_no) as iccid_seq
    from local_keyed
    where key_hash in (select key_hash from repeated_keys)
),

provider_by_iccid as (
    select provider, order_no, iccid, esim_key, 1 as iccid_seq
    from provider_keyed
    where key_hash not in (select key_hash from repeated_keys)
    union all
    select
        provider,
        order_no,
        iccid,
        esim_key,
        row_number() over (partition by provider, order_no, iccid order by esim_key) as iccid_seq
    from provider_keyed
    where key_hash in (select key_hash from repeated_keys)
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
