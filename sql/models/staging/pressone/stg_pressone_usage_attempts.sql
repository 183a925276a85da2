-- The usage status makes a canonical state only together with the order status: see
-- stg_pressone_state_history.
-- depends_on: {{ ref('int_touched_orders') }}
with
{%- set batch = order_batch_active() %}
{%- set provider_esims = maintained_relation('int_provider_esims') %}

order_sims as (
    select * from {{ ref('stg_pressone_order_sims') }}
),

-- A usage row belongs to the newest order holding its ICCID, among every order: in an order
-- batch, the touched orders' sims and, for the other orders, their sims as the last build left
-- them (untouched, so unchanged).
{%- if batch %}
untouched_sims as (
    select order_no, iccid, created_at
    from {{ provider_esims }}
    where provider = 'pressone'
        and iccid is not null
        and not {{ in_order_batch("'pressone'", 'order_no') }}
),
{%- endif %}

sims as (
    select order_no, iccid, created_at
    from order_sims
    where iccid is not null
    {%- if batch %}
    union all
    select * from untouched_sims
    {%- endif %}
),

{%- if batch %}
touched_orders as (
    select order_no from {{ ref('int_touched_orders') }} where provider = 'pressone'
),
{%- endif %}

-- In an order batch, the rows that can belong to a touched order: those of an ICCID a touched
-- order holds, and those naming a touched order (or none: order '') for an ICCID no order may
-- hold. A row read that belongs to an untouched order resolves to it below (sims_read has every
-- order's sims of the ICCIDs read) and is left out at the end; the untouched orders' sims are
-- never matched against every usage row.
pressone_usage as {% if batch %}materialized {% endif %}(
    select * from {{ source('raw', 'pressone_usage') }}
    {%- if batch %}
    where coalesce(trim(iccid) in (select iccid from order_sims), false)
        or coalesce(nullif(trim(order_code), ''), '') in (select order_no from touched_orders)
    {%- endif %}
),

-- The sims a usage row read can belong to: in an order batch, those of the ICCIDs read only,
-- not every order's sims.
sims_read as {% if batch %}materialized {% endif %}(
    select *
    from sims
    {%- if batch %}
    where iccid in (select trim(iccid) from pressone_usage)
    {%- endif %}
),

newest_order_per_iccid as (
    select iccid, order_no
    from sims_read
    qualify row_number() over (
        partition by iccid order by created_at desc nulls last, order_no desc
    ) = 1
),

typed as (
    select
        run_id,
        fetched_at,
        lower(trim(outcome)) as outcome,
        http_status,
        error,
        trim(iccid) as iccid,
        nullif(trim(order_code), '') as reported_order_no,
        usage_status as status_raw,
        nullif(upper(trim(usage_status)), '') as status_key,
        coalesce(is_unlimited, false) as is_unlimited,
        cast(total_mb as decimal(38, 6)) as total_mb,
        cast(remaining_mb as decimal(38, 6)) as remaining_mb,
        expired_at
    from pressone_usage
),

final as (
    select
        typed.run_id,
        typed.fetched_at,
        typed.outcome,
        typed.http_status,
        typed.error,
        coalesce(exact.order_no, newest.order_no, typed.reported_order_no) as order_no,
        typed.reported_order_no,
        typed.iccid,
        typed.status_raw,
        typed.status_key,
        typed.is_unlimited,
        case when not typed.is_unlimited then
            cast(round(typed.total_mb * 1048576) as bigint)
        end as total_bytes,
        case when not typed.is_unlimited then
            cast(round((typed.total_mb - typed.remaining_mb) * 1048576) as bigint)
        end as used_bytes,
        case when not typed.is_unlimited then
            cast(round(typed.remaining_mb * 1048576) as bigint)
        end as remaining_bytes,
        typed.expired_at
    from typed
    left join sims_read as exact
        on exact.iccid = typed.iccid and exact.order_no = typed.reported_order_no
    left join newest_order_per_iccid as newest on newest.iccid = typed.iccid
    where {{ in_order_batch("'pressone'", "coalesce(exact.order_no, newest.order_no, typed.reported_order_no, '')") }}
)

select * from final
