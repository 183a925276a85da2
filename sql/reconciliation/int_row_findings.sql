-- description: Every finding (rules section 3) attached to the reconciliation row it concerns (row_id; null for a failed sync of an order no row knows), before findings sharing a key are merged into one (in reports.discrepancy_history).
-- materialized: table
with

recon_rows as (
    select * from reconciliation.int_reconciliation_rows
),

canonical_states as (
    select * from seeds.canonical_states
),

state_transitions as (
    select * from reconciliation.int_state_transitions
),

usage_changes as (
    select * from reconciliation.int_usage_changes
),

esimtrade_syncs as (
    select * from staging.stg_esimtrade_sync_attempts
),

pressone_usage as (
    select * from staging.stg_pressone_usage_attempts
),

missing_at_provider as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'missing_at_provider' as discrepancy_type,
        'critical' as severity,
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
        'critical' as severity,
        cast(null as varchar) as local_value,
        provider_state as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where base_verdict = 'missing_locally'
),

status_mismatch as (
    select
        recon_rows.row_id, recon_rows.provider, recon_rows.order_no,
        recon_rows.finding_iccid as iccid,
        'status_mismatch' as discrepancy_type,
        case
            when coalesce(local_states.is_money_side_exit, false)
                <> coalesce(provider_states.is_money_side_exit, false)
                then 'critical'
            else 'warning'
        end as severity,
        recon_rows.local_state as local_value,
        recon_rows.provider_state as provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from recon_rows
    left join canonical_states as local_states
        on local_states.state = recon_rows.local_state
    left join canonical_states as provider_states
        on provider_states.state = recon_rows.provider_state
    where recon_rows.base_verdict = 'paired'
        and recon_rows.local_state <> recon_rows.provider_state
),

iccid_mismatch as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'iccid_mismatch' as discrepancy_type,
        'warning' as severity,
        local_iccid as local_value,
        provider_iccid as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
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
        'warning' as severity,
        local_package_code as local_value,
        provider_package_code as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where base_verdict = 'paired'
        and local_package_code is not null
        and provider_package_code is not null
        and local_package_code <> provider_package_code
),

amount_mismatch as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'amount_mismatch' as discrepancy_type,
        'critical' as severity,
        cast(local_amount as varchar) as local_value,
        cast(provider_amount as varchar) as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where base_verdict = 'paired'
        and local_amount is not null
        and provider_amount is not null
        and abs(local_amount - provider_amount) > 0.01
),

usage_exceeds_volume as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'usage_exceeds_volume' as discrepancy_type,
        'warning' as severity,
        cast(null as varchar) as local_value,
        cast(provider_used_bytes as varchar) || ' bytes used of '
            || cast(provider_total_bytes as varchar) as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where provider_used_bytes > provider_total_bytes
        and not coalesce(provider_is_unlimited, false)
),

local_iccid_counts as (
    select
        *,
        count(*) over (partition by local_iccid) as rows_with_iccid
    from recon_rows
    where local_line_no is not null and local_iccid is not null
),

duplicate_iccid as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'duplicate_iccid' as discrepancy_type,
        'warning' as severity,
        local_iccid as local_value,
        cast(rows_with_iccid as varchar) || ' local rows' as provider_value,
        local_line_no, provider_esim_key
    from local_iccid_counts
    where rows_with_iccid > 1
),

invalid_iccid as (
    select
        row_id, provider, order_no, finding_iccid as iccid,
        'invalid_iccid' as discrepancy_type,
        'warning' as severity,
        local_iccid as local_value,
        cast(null as varchar) as provider_value,
        local_line_no, provider_esim_key
    from recon_rows
    where local_line_no is not null and local_iccid is not null and not local_iccid_shape_ok
),

esimtrade_last_attempts as (
    select *
    from esimtrade_syncs
    where order_no is not null
    qualify row_number() over (partition by order_no order by fetched_at desc) = 1
),

esimtrade_order_rows as (
    select
        *,
        bool_or(provider_esim_key is not null) over (partition by order_no)
            as order_has_provider_rows
    from recon_rows
    where provider = 'esimtrade'
),

-- An order-level failure lands on the order's provider eSIM rows; only an order with none
-- (not in the stored list, never synced) puts it on its local rows.
esimtrade_sync_failed as (
    select
        order_rows.row_id,
        'esimtrade' as provider,
        esimtrade_last_attempts.order_no,
        coalesce(order_rows.finding_iccid, esimtrade_last_attempts.requested_iccid, '') as iccid,
        'sync_failed' as discrepancy_type,
        'warning' as severity,
        cast(null as varchar) as local_value,
        coalesce(
            esimtrade_last_attempts.error,
            'HTTP ' || cast(esimtrade_last_attempts.http_status as varchar),
            'failed'
        ) as provider_value,
        order_rows.local_line_no, order_rows.provider_esim_key
    from esimtrade_last_attempts
    left join esimtrade_order_rows as order_rows
        on order_rows.order_no = esimtrade_last_attempts.order_no
        and (order_rows.provider_esim_key is not null or not order_rows.order_has_provider_rows)
    where esimtrade_last_attempts.outcome = 'failed'
),

pressone_last_attempts as (
    select *
    from pressone_usage
    qualify row_number() over (
        partition by order_no, iccid order by fetched_at desc
    ) = 1
),

pressone_sync_failed as (
    select
        recon_rows.row_id,
        'pressone' as provider,
        coalesce(pressone_last_attempts.order_no, '') as order_no,
        coalesce(recon_rows.finding_iccid, pressone_last_attempts.iccid) as iccid,
        'sync_failed' as discrepancy_type,
        'warning' as severity,
        cast(null as varchar) as local_value,
        coalesce(
            pressone_last_attempts.error,
            'HTTP ' || cast(pressone_last_attempts.http_status as varchar),
            'failed'
        ) as provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from pressone_last_attempts
    left join recon_rows
        on recon_rows.provider = 'pressone'
        and recon_rows.order_no = pressone_last_attempts.order_no
        and recon_rows.provider_iccid = pressone_last_attempts.iccid
    where pressone_last_attempts.outcome = 'failed'
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
        'warning' as severity,
        latest_bad_changes.local_value,
        latest_bad_changes.provider_value,
        recon_rows.local_line_no, recon_rows.provider_esim_key
    from latest_bad_changes
    inner join recon_rows
        on recon_rows.provider = latest_bad_changes.provider
        and recon_rows.order_no = latest_bad_changes.order_no
        and recon_rows.provider_esim_key = latest_bad_changes.esim_key
),

final as (
    select * from missing_at_provider
    union all select * from missing_locally
    union all select * from status_mismatch
    union all select * from iccid_mismatch
    union all select * from package_mismatch
    union all select * from amount_mismatch
    union all select * from usage_exceeds_volume
    union all select * from duplicate_iccid
    union all select * from invalid_iccid
    union all select * from esimtrade_sync_failed
    union all select * from pressone_sync_failed
    union all select * from history_findings
)

select * from final
