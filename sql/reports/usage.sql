-- description: Data usage per provider eSIM, one row per eSIM with a successful usage observation (an eSIMTrade sync carrying totalVolume and orderUsage, a PressOne usage fetch), in bytes.
-- materialized: table
-- unique_key: provider, order_no, esim_key
-- state_columns: state
-- column provider: esimtrade or pressone.
-- column order_no: Order number.
-- column iccid: ICCID the provider reports (empty when not known yet).
-- column esim_key: The provider's key of the eSIM (eSIMTrade esimTranNo, PressOne ICCID).
-- column package_code: Package code at the provider.
-- column state: Canonical state at the provider.
-- column total_bytes: Data volume in bytes (PressOne MB x 1,048,576); empty for unlimited plans or when unknown.
-- column used_bytes: Data used in bytes at the latest successful observation; empty for unlimited plans.
-- column remaining_bytes: total_bytes - used_bytes; negative when usage exceeds the volume.
-- column pct_used: used_bytes / total_bytes as a percentage, 2 decimals; empty when total is unknown or zero.
-- column is_unlimited: True for unlimited plans, which have no byte totals.
-- column last_synced_at: When the usage was last fetched successfully (UTC).
with

provider_esims as (
    select * from reconciliation.int_provider_esims
),

observed as (
    select *
    from provider_esims
    where usage_observed
),

final as (
    select
        provider,
        order_no,
        coalesce(iccid, '') as iccid,
        esim_key,
        package_code,
        canonical_state as state,
        total_bytes,
        used_bytes,
        total_bytes - used_bytes as remaining_bytes,
        case
            when total_bytes > 0 and used_bytes is not null
                then cast(round(100.0 * used_bytes / total_bytes, 2) as decimal(9, 2))
        end as pct_used,
        is_unlimited,
        last_synced_at
    from observed
)

select * from final
