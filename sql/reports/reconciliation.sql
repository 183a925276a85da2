-- description: Every local row (latest complete load) and every provider eSIM exactly once, both sides' values side by side, with the match verdict and the findings on the row.
-- materialized: table
-- unique_key: row_id
-- state_columns: local_state, provider_state
-- column row_id: Stable row identity: L<file line> for a local row (matched or not), P:<provider>:<order>:<eSIM key> for a provider eSIM with no local row.
-- column provider: esimtrade or pressone (as written in the local file for a local row).
-- column order_no: Order number (eSIMTrade orderNo, PressOne order code).
-- column iccid: The local ICCID, else the provider's; empty when neither is known.
-- column match_verdict: matched (paired, sides agree), mismatched (paired, a status, ICCID, package or amount finding), missing_at_provider, missing_locally, or not_checked (the provider was never ingested, no local load exists, or the provider knows the order but has no eSIM left for this local row).
-- column match_method: How the pair was made: order_and_iccid (same order, same ICCID) or order_position (paired within the order); empty when unpaired.
-- column local_line_no: Line of the local orders file; empty for a provider eSIM with no local row.
-- column local_iccid: ICCID in the local file (empty when not yet known).
-- column local_status: Status as written in the local file.
-- column local_state: Local status mapped to the canonical lifecycle (unknown when unmapped).
-- column local_package_code: Package code in the local file.
-- column local_amount: What the local file says the provider charges for this eSIM (decimal, 4 places).
-- column local_currency: Currency of local_amount.
-- column provider_esim_key: The provider's key of the eSIM: eSIMTrade esimTranNo (the order number while unallocated or never synced), PressOne ICCID (the order code for an order without sims).
-- column provider_iccid: ICCID the provider reports.
-- column provider_status: The provider's raw status: eSIMTrade esimStatus (or the stored list status), PressOne order status/usage status.
-- column provider_state: Provider status mapped to the canonical lifecycle.
-- column provider_package_code: Package code at the provider (eSIMTrade packageCode, PressOne package_id).
-- column provider_amount: What the provider charges per eSIM (eSIMTrade costPrice, PressOne price), decimal, 4 places.
-- column provider_currency: Currency of provider_amount.
-- column provider_total_bytes: Data volume of the eSIM in bytes (empty when unknown or unlimited).
-- column provider_used_bytes: Data used in bytes at the latest successful sync (empty when unknown or unlimited).
-- column provider_last_synced_at: When the provider's eSIM detail was last fetched successfully (UTC).
-- column provider_state_observed_at: When provider_state was observed (UTC): the latest run that judged it. Older than the run when a fetch failed since: the last good observation stands.
-- column discrepancy_count: Number of findings on this row.
-- column discrepancy_types: The discrepancy types found on this row, comma-separated, sorted.
with

recon_rows as (
    select * from reconciliation.int_reconciliation_rows
),

row_findings as (
    select * from reconciliation.int_row_findings
),

findings_per_row as (
    select
        row_id,
        cast(count(*) as bigint) as discrepancy_count,
        array_to_string(list_sort(list_distinct(list(discrepancy_type))), ',')
            as discrepancy_types,
        bool_or(
            discrepancy_type in (
                'status_mismatch', 'iccid_mismatch', 'package_mismatch', 'amount_mismatch'
            )
        ) as sides_disagree
    from row_findings
    where row_id is not null
    group by row_id
),

final as (
    select
        recon_rows.row_id,
        recon_rows.provider,
        recon_rows.order_no,
        coalesce(recon_rows.local_iccid, recon_rows.provider_iccid, '') as iccid,
        case
            when recon_rows.base_verdict <> 'paired' then recon_rows.base_verdict
            when coalesce(findings_per_row.sides_disagree, false) then 'mismatched'
            else 'matched'
        end as match_verdict,
        recon_rows.match_method,
        recon_rows.local_line_no,
        recon_rows.local_iccid,
        recon_rows.local_status,
        recon_rows.local_state,
        recon_rows.local_package_code,
        recon_rows.local_amount,
        recon_rows.local_currency,
        recon_rows.provider_esim_key,
        recon_rows.provider_iccid,
        recon_rows.provider_status,
        recon_rows.provider_state,
        recon_rows.provider_package_code,
        recon_rows.provider_amount,
        recon_rows.provider_currency,
        recon_rows.provider_total_bytes,
        recon_rows.provider_used_bytes,
        recon_rows.provider_last_synced_at,
        recon_rows.provider_state_observed_at,
        coalesce(findings_per_row.discrepancy_count, 0) as discrepancy_count,
        coalesce(findings_per_row.discrepancy_types, '') as discrepancy_types
    from recon_rows
    left join findings_per_row on findings_per_row.row_id = recon_rows.row_id
)

select * from final
