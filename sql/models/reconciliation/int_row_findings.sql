-- depends_on: {{ ref('int_touched_orders') }}
{{ config(materialized='incremental', incremental_strategy='touched_orders') }}

with

-- Read by every finding below. In a whole build: scanned each time (only the columns and rows
-- it needs), never copied whole into memory first. In an order batch: the touched orders' rows
-- (the batch copy of int_reconciliation_rows), few, materialized once.
recon_rows as {% if order_batch_active() %}materialized{% else %}not materialized{% endif %} (
    select * from {{ touched_rows(ref('int_reconciliation_rows')) }}
),

canonical_states as (
    select * from {{ ref('canonical_states') }}
),

state_transitions as (
    select * from {{ touched_rows(ref('int_state_transitions')) }}
),

usage_changes as (
    select * from {{ touched_rows(ref('int_usage_changes')) }}
),

discrepancy_types as (
    select * from {{ ref('discrepancy_types') }}
),

-- Each provider's fetches whose latest attempt failed, in one canonical shape.
failed_fetches as (
    {{ union_provider_models('failed_fetches') }}
),

missing_at_provider as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'missing_at_provider' as discrepancy_type,
        cast(null as varchar) as severity,
        local_state as local_value,
        cast(null as varchar) as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where base_verdict = 'missing_at_provider'
),

missing_locally as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'missing_locally' as discrepancy_type,
        cast(null as varchar) as severity,
        cast(null as varchar) as local_value,
        provider_state as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where base_verdict = 'missing_locally'
),

-- The rows a comparison of two columns could flag, found in one pass over the rows: paired rows
-- whose sides differ somewhere, rows using more than their volume. Each check below picks its
-- own from this small set.
flagged_rows as materialized (
    select *
    from recon_rows
    where (
            base_verdict = 'paired'
            and (
                local_state <> provider_state
                or local_iccid <> provider_iccid
                or local_package_code <> provider_package_code
                or abs(local_amount - provider_amount) > 0.01
            )
        )
        or provider_used_bytes > provider_total_bytes
),

status_mismatch as (
    select
        pairs.row_id, pairs.provider, pairs.order_no,
        pairs.finding_iccid as iccid,
        'status_mismatch' as discrepancy_type,
        case
            when coalesce(local_states.is_money_side_exit, false)
                <> coalesce(provider_states.is_money_side_exit, false)
                then 'critical'
            else 'warning'
        end as severity,
        pairs.local_state as local_value,
        pairs.provider_state as provider_value,
        pairs.local_line_no, pairs.provider_esim_key
    from flagged_rows as pairs
    left join canonical_states as local_states
        on local_states.state = pairs.local_state
    left join canonical_states as provider_states
        on provider_states.state = pairs.provider_state
    where pairs.base_verdict = 'paired'
        and pairs.local_state <> pairs.provider_state
),

iccid_mismatch as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'iccid_mismatch' as discrepancy_type,
        cast(null as varchar) as severity,
        local_iccid as local_value,
        provider_iccid as provider_value,
        local_line_no, provider_esim_key
    from flagged_rows
    where base_verdict = 'paired'
        and local_iccid is not null
        and provider_iccid is not null
        and local_iccid <> provider_iccid
        and local_iccid_shape_ok
),

package_mismatch as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'package_mismatch' as discrepancy_type,
        cast(null as varchar) as severity,
        local_package_code as local_value,
        provider_package_code as provider_value,
        local_line_no, provider_esim_key
    from flagged_rows
    where base_verdict = 'paired'
        and local_package_code is not null
        and provider_package_code is not null
        and local_package_code <> provider_package_code
),

amount_mismatch as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'amount_mismatch' as discrepancy_type,
        cast(null as varchar) as severity,
        cast(local_amount as varchar) as local_value,
        cast(provider_amount as varchar) as provider_value,
        local_line_no, provider_esim_key
    from flagged_rows
    where base_verdict = 'paired'
        and local_amount is not null
        and provider_amount is not null
        and abs(local_amount - provider_amount) > 0.01
),

usage_exceeds_volume as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'usage_exceeds_volume' as discrepancy_type,
        cast(null as varchar) as severity,
        cast(null as varchar) as local_value,
        cast(provider_used_bytes as varchar) || ' bytes used of '
            || cast(provider_total_bytes as varchar) as provider_value,
        local_line_no, provider_esim_key
    from flagged_rows
    where provider_used_bytes > provider_total_bytes
        and not coalesce(provider_is_unlimited, false)
),

-- Over every order (an ICCID shared with a touched order touches the order holding it too),
-- for the ICCIDs of the rows at hand.
duplicated_local_iccids as (
    select local_iccid, count(*) as rows_with_iccid
    from {{ ref('int_reconciliation_rows') }}
    where local_line_no is not null and local_iccid is not null
    {%- if order_batch_active() %}
        and local_iccid in (select local_iccid from recon_rows where local_line_no is not null)
    {%- endif %}
    group by local_iccid
    having count(*) > 1
),

duplicate_iccid as (
    select
        recon_rows.row_id, recon_rows.provider, recon_rows.order_no,
        recon_rows.finding_iccid as iccid,
        'duplicate_iccid' as discrepancy_type,
        cast(null as varchar) as severity,
        recon_rows.local_iccid as local_value,
        cast(duplicated_local_iccids.rows_with_iccid as varchar) || ' local rows'
            as provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from recon_rows
    inner join duplicated_local_iccids
        on duplicated_local_iccids.local_iccid = recon_rows.local_iccid
    where recon_rows.local_line_no is not null
),

invalid_iccid as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'invalid_iccid' as discrepancy_type,
        cast(null as varchar) as severity,
        local_iccid as local_value,
        cast(null as varchar) as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where local_line_no is not null and local_iccid is not null and not local_iccid_shape_ok
),

failed_orders as (
    select provider, order_no, iccid, error, http_status
    from failed_fetches
    where is_order_level
),

failed_esims as (
    select provider, order_no, iccid, error, http_status
    from failed_fetches
    where not is_order_level
),

failed_order_rows as (
    select
        *,
        bool_or(provider_esim_key is not null) over (partition by provider, order_no)
            as order_has_provider_rows
    from recon_rows
    where (provider, order_no) in (select provider, order_no from failed_orders)
),

-- A failure of a whole order lands on the order's provider eSIM rows; only an order with none
-- (not in the stored list, never synced) puts it on its local rows.
order_sync_failed as (
    select
        order_rows.row_id,
        failed_orders.provider,
        failed_orders.order_no,
        coalesce(order_rows.finding_iccid, failed_orders.iccid, '') as iccid,
        'sync_failed' as discrepancy_type,
        cast(null as varchar) as severity,
        cast(null as varchar) as local_value,
        coalesce(
            failed_orders.error, 'HTTP ' || cast(failed_orders.http_status as varchar), 'failed'
        ) as provider_value,
        order_rows.local_line_no, order_rows.provider_esim_key
    from failed_orders
    left join failed_order_rows as order_rows
        on order_rows.provider = failed_orders.provider
        and order_rows.order_no = failed_orders.order_no
        and (order_rows.provider_esim_key is not null or not order_rows.order_has_provider_rows)
),

-- A failure of one eSIM lands on that eSIM's row; with no order holding its ICCID, under
-- order_no ''.
esim_sync_failed as (
    select
        recon_rows.row_id,
        failed_esims.provider,
        coalesce(failed_esims.order_no, '') as order_no,
        coalesce(recon_rows.finding_iccid, failed_esims.iccid, '') as iccid,
        'sync_failed' as discrepancy_type,
        cast(null as varchar) as severity,
        cast(null as varchar) as local_value,
        coalesce(
            failed_esims.error, 'HTTP ' || cast(failed_esims.http_status as varchar), 'failed'
        ) as provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from failed_esims
    left join recon_rows
        on recon_rows.provider = failed_esims.provider
        and recon_rows.order_no = failed_esims.order_no
        and recon_rows.provider_iccid = failed_esims.iccid
),

-- The eSIM's most recent change of state or of used bytes, when it breaks a rule (sections 4
-- and 5): the previous value is the local_value, the current one the provider_value.
latest_bad_changes as (
    select
        provider, order_no, esim_key,
        'invalid_transition' as discrepancy_type,
        from_state as local_value,
        to_state as provider_value
    from state_transitions
    where is_latest and is_invalid
    union all
    select
        provider, order_no, esim_key,
        'usage_regression' as discrepancy_type,
        cast(previous_used_bytes as varchar) as local_value,
        cast(used_bytes as varchar) as provider_value
    from usage_changes
    where is_latest and is_decrease
),

history_findings as (
    select
        recon_rows.row_id, recon_rows.provider, recon_rows.order_no,
        recon_rows.finding_iccid as iccid,
        latest_bad_changes.discrepancy_type,
        cast(null as varchar) as severity,
        latest_bad_changes.local_value,
        latest_bad_changes.provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from latest_bad_changes
    inner join recon_rows
        on recon_rows.provider = latest_bad_changes.provider
        and recon_rows.order_no = latest_bad_changes.order_no
        and recon_rows.provider_esim_key = latest_bad_changes.esim_key
),

found as (
    select * from missing_at_provider
    union all select * from missing_locally
    union all select * from status_mismatch
    union all select * from iccid_mismatch
    union all select * from package_mismatch
    union all select * from amount_mismatch
    union all select * from usage_exceeds_volume
    union all select * from duplicate_iccid
    union all select * from invalid_iccid
    union all select * from order_sync_failed
    union all select * from esim_sync_failed
    union all select * from history_findings
),

-- The severity is the discrepancy_types seed's, except where its rule is computed per finding
-- (status_mismatch: critical when exactly one side left the money side).
final as (
    select
        found.row_id, found.provider, found.order_no, found.iccid, found.discrepancy_type,
        coalesce(found.severity, discrepancy_types.severity_rule) as severity,
        found.local_value, found.provider_value, found.local_line_no, found.provider_esim_key
    from found
    left join discrepancy_types on discrepancy_types.discrepancy_type = found.discrepancy_type
    where {{ in_order_batch('found.provider', 'found.order_no') }}
)

select * from final
