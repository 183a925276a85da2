"""Synthetic local and provider rows for the models benchmark, generated inside DuckDB.

`generate(con, rows)` writes two reference tables and the raw tables the models read:

- `bench.local_rows` / `bench.provider_rows`: the reseller's rows and the provider's eSIMs as two
  flat tables, what the two reference comparisons (bare SQL, datacompy) read;
- `raw.local_orders`, `raw.esimtrade_orders`, `raw.esimtrade_order_syncs`, `raw.pressone_orders`,
  `raw.pressone_usage`, `raw.ingest_log`: the same facts the way ingestion lands them, with an
  earlier observation for a tenth of the eSIMs (history), a failed last sync for a few orders.

Order `i` of `rows` belongs to eSIMTrade (60%) or PressOne (40%) and has one eSIM. Its spread
`r = hash(i) % 1000` (stable for a DuckDB version, independent of provider and state, kept in both
tables) plants the disagreements, per thousand orders:

    r <  10  missing at the provider (local row only)
    r <  20  missing locally (provider eSIM only)
    r <  40  status mismatch          r <  75  duplicate local line (same order and ICCID)
    r <  50  amount mismatch          r <  80  usage exceeds the volume
    r <  60  ICCID mismatch           r <  83  last sync / usage fetch failed
    r <  70  package mismatch         r <  88  an earlier observation breaking a rule
"""

from __future__ import annotations

import duckdb

from pipelines.warehouse import Warehouse

# Every statement takes the row count as $rows; nothing is formatted into the SQL.
_STATEMENTS: tuple[str, ...] = (
    "create schema if not exists bench",
    """
    create or replace table bench.planted as
    select
        i,
        hash(i) % 1000 as r,
        case when i % 5 < 3 then 'esimtrade' else 'pressone' end as provider,
        case when i % 5 < 3 then 'ET' else 'PO' end || lpad(cast(i as varchar), 10, '0')
            as order_no,
        '8901' || lpad(cast(i as varchar), 16, '0') as iccid,
        'PKG-' || cast(i % 40 as varchar) as package_code,
        cast((i % 25 + 1) * 0.5 as decimal(18, 4)) as amount,
        case
            when i % 20 < 14 then 'active'
            when i % 20 < 17 then 'depleted'
            when i % 20 < 19 then 'expired'
            else 'ready'
        end as state,
        cast(1024 * (i % 5 + 1) as bigint) as total_mb
    from (select range as i from range($rows))
    """,
    """
    create or replace table bench.local_rows as
    select i, r, i * 2 + 2 as line_no, provider, order_no, iccid, package_code, state, amount
    from bench.planted
    where not (r >= 10 and r < 20)
    union all
    select i, r, i * 2 + 3 as line_no, provider, order_no, iccid, package_code, state, amount
    from bench.planted
    where r >= 70 and r < 75
    """,
    """
    create or replace table bench.provider_rows as
    select
        i,
        r,
        provider,
        order_no,
        case when r >= 50 and r < 60 then '8902' || lpad(cast(i as varchar), 16, '0')
            else iccid end as iccid,
        case when r >= 60 and r < 70 then 'PKG-X' else package_code end as package_code,
        case when r >= 20 and r < 40 then
            case when state = 'active' then 'depleted' else 'active' end
            else state end as state,
        case when r >= 40 and r < 50 then amount + 1 else amount end as amount,
        total_mb,
        case when r >= 75 and r < 80 then total_mb + 1 else total_mb * (i % 97) // 100 end
            as used_mb,
        i % 10 = 0 or (r >= 83 and r < 88) as has_earlier,
        r >= 80 and r < 83 as last_failed,
        case
            when r >= 83 and r < 85 then 'expired'
            else case when r >= 20 and r < 40 then
                case when state = 'active' then 'depleted' else 'active' end
                else state end
        end as earlier_state,
        case when r >= 85 and r < 88 then total_mb else total_mb * (i % 97) // 200 end
            as earlier_used_mb
    from bench.planted
    where r >= 10
    """,
    "drop table bench.planted",
    """
    insert into raw.local_orders by name
    select
        'bench-local' as run_id,
        timestamptz '2026-11-01 12:00:00+00' as loaded_at,
        'orders.csv' as source_file,
        cast(line_no as integer) as line_no,
        provider,
        order_no,
        iccid,
        package_code,
        state as status,
        amount,
        'USD' as currency,
        timestamptz '2026-10-01 00:00:00+00' + to_seconds(i % 2000000) as created_at,
        '{}' as payload
    from bench.local_rows
    """,
    """
    insert into raw.esimtrade_orders by name
    select
        'bench-et-list' as run_id,
        timestamptz '2026-11-01 11:00:00+00' as fetched_at,
        '/reseller/orders' as source_endpoint,
        'esimtrade' as provider,
        order_no as provider_order_no,
        case state when 'active' then 'in_use' when 'depleted' then 'used_up'
            when 'expired' then 'used_expired' else 'got_resource' end as status,
        package_code,
        1 as quantity,
        amount as cost_price,
        amount * 1.3 as sell_price,
        cast(i // 100 as integer) as page,
        '{}' as payload
    from bench.provider_rows
    where provider = 'esimtrade'
    """,
    """
    insert into raw.esimtrade_order_syncs by name
    select
        case when earlier then 'bench-et-sync-0' else 'bench-et-sync' end as run_id,
        case when earlier then timestamptz '2026-10-31 11:30:00+00'
            else timestamptz '2026-11-01 11:30:00+00' end as fetched_at,
        '/portal/orders' as source_endpoint,
        'esimtrade' as provider,
        order_no as requested_order_no,
        'ok' as outcome,
        200 as http_status,
        'T' || cast(i as varchar) as esim_tran_no,
        order_no,
        iccid,
        case state_now when 'active' then 'IN_USE' when 'depleted' then 'USED_UP'
            when 'expired' then 'USED_EXPIRED' else 'GOT_RESOURCE' end as esim_status,
        'ENABLED' as smdp_status,
        total_mb * 1048576 as total_volume,
        used_now * 1048576 as order_usage,
        package_code,
        '{}' as payload
    from (
        select *, false as earlier, state as state_now, used_mb as used_now
        from bench.provider_rows where provider = 'esimtrade'
        union all
        select *, true, earlier_state, earlier_used_mb
        from bench.provider_rows where provider = 'esimtrade' and has_earlier
    )
    union all by name
    select
        'bench-et-sync' as run_id,
        timestamptz '2026-11-01 11:50:00+00' as fetched_at,
        '/portal/orders' as source_endpoint,
        'esimtrade' as provider,
        order_no as requested_order_no,
        'failed' as outcome,
        500 as http_status,
        'HTTP 500 from the provider' as error,
        '{}' as payload
    from bench.provider_rows
    where provider = 'esimtrade' and last_failed
    """,
    """
    insert into raw.pressone_orders by name
    select
        'bench-po-list' as run_id,
        timestamptz '2026-10-30 12:00:00+00' as fetched_at,
        '/customer/v2/orders' as source_endpoint,
        'pressone' as provider,
        i as order_id,
        order_no as order_code,
        'sim' as order_type,
        'completed' as order_status,
        timestamptz '2026-10-01 00:00:00+00' + to_seconds(i % 2000000) as created_at,
        package_code as package_id,
        1 as quantity,
        amount as price,
        'USD' as currency,
        i as sim_id,
        0 as sim_index,
        iccid,
        '{}' as payload
    from bench.provider_rows
    where provider = 'pressone'
    """,
    """
    insert into raw.pressone_usage by name
    select
        case when earlier then 'bench-po-usage-0' else 'bench-po-usage' end as run_id,
        case when earlier then timestamptz '2026-10-31 11:30:00+00'
            else timestamptz '2026-11-01 11:30:00+00' end as fetched_at,
        '/customer/v2/sims/usage' as source_endpoint,
        'pressone' as provider,
        iccid,
        order_no as order_code,
        'ok' as outcome,
        200 as http_status,
        case state_now when 'active' then 'ACTIVE' when 'depleted' then 'FINISHED'
            when 'expired' then 'EXPIRED' else 'NOT_ACTIVE' end as usage_status,
        cast(total_mb as double) as total_mb,
        cast(total_mb - used_now as double) as remaining_mb,
        false as is_unlimited,
        '{}' as payload
    from (
        select *, false as earlier, state as state_now, used_mb as used_now
        from bench.provider_rows where provider = 'pressone'
        union all
        select *, true, earlier_state, earlier_used_mb
        from bench.provider_rows where provider = 'pressone' and has_earlier
    )
    union all by name
    select
        'bench-po-usage' as run_id,
        timestamptz '2026-11-01 11:50:00+00' as fetched_at,
        '/customer/v2/sims/usage' as source_endpoint,
        'pressone' as provider,
        iccid,
        order_no as order_code,
        'failed' as outcome,
        503 as http_status,
        'HTTP 503 from the provider' as error,
        '{}' as payload
    from bench.provider_rows
    where provider = 'pressone' and last_failed
    """,
    """
    insert into raw.ingest_log by name
    select
        run_id,
        asset,
        provider,
        finished_at - interval 10 minute as started_at,
        finished_at,
        'complete' as status,
        $rows as rows_written
    from (values
        ('bench-local', 'local_orders', null, timestamptz '2026-11-01 12:00:00+00'),
        ('bench-et-list', 'esimtrade_orders', 'esimtrade', timestamptz '2026-11-01 11:10:00+00'),
        ('bench-et-sync-0', 'esimtrade_order_syncs', 'esimtrade',
            timestamptz '2026-10-31 11:55:00+00'),
        ('bench-et-sync', 'esimtrade_order_syncs', 'esimtrade',
            timestamptz '2026-11-01 11:55:00+00'),
        ('bench-po-list', 'pressone_orders', 'pressone', timestamptz '2026-10-30 12:10:00+00'),
        ('bench-po-usage-0', 'pressone_usage', 'pressone', timestamptz '2026-10-31 11:55:00+00'),
        ('bench-po-usage', 'pressone_usage', 'pressone', timestamptz '2026-11-01 11:55:00+00')
    ) as loads(run_id, asset, provider, finished_at)
    """,
    "checkpoint",
)

# The reference tables as the comparisons read them: the same columns on both sides.
LOCAL_SELECT = (
    "select provider, order_no, iccid, package_code, state, cast(amount as double) as amount "
    "from bench.local_rows"
)
PROVIDER_SELECT = (
    "select provider, order_no, iccid, package_code, state, cast(amount as double) as amount, "
    "total_mb * 1048576 as total_bytes, used_mb * 1048576 as used_bytes "
    "from bench.provider_rows"
)

# The floor: one statement pairing the two tables and classifying the row-level findings the
# models also find (missing on either side, four disagreements, usage over volume, duplicate
# ICCIDs), materialised as a temporary table.
BARE_SQL = f"""
create temp table bare_findings as
with
local_side as (
    select *, count(*) over (partition by iccid) as rows_with_iccid
    from ({LOCAL_SELECT})
),
provider_side as ({PROVIDER_SELECT}),
paired as (
    select
        coalesce(l.provider, p.provider) as provider,
        coalesce(l.order_no, p.order_no) as order_no,
        coalesce(l.iccid, p.iccid, '') as iccid,
        l.provider is not null as has_local,
        p.provider is not null as has_provider,
        l.state as local_state, p.state as provider_state,
        l.iccid as local_iccid, p.iccid as provider_iccid,
        l.package_code as local_package, p.package_code as provider_package,
        l.amount as local_amount, p.amount as provider_amount,
        p.total_bytes, p.used_bytes, l.rows_with_iccid
    from local_side as l
    full outer join provider_side as p
        on p.provider = l.provider and p.order_no = l.order_no
),
findings as (
    select provider, order_no, iccid, unnest(list_filter([
        case when not has_provider then 'missing_at_provider' end,
        case when not has_local then 'missing_locally' end,
        case when local_state <> provider_state then 'status_mismatch' end,
        case when local_iccid <> provider_iccid then 'iccid_mismatch' end,
        case when local_package <> provider_package then 'package_mismatch' end,
        case when abs(local_amount - provider_amount) > 0.01 then 'amount_mismatch' end,
        case when used_bytes > total_bytes then 'usage_exceeds_volume' end,
        case when rows_with_iccid > 1 then 'duplicate_iccid' end
    ], lambda x: x is not null)) as discrepancy_type
    from paired
)
select * from findings
"""


def generate(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    Warehouse(":memory:").ensure_raw_schema(con)
    for statement in _STATEMENTS:
        if "$rows" in statement:
            con.execute(statement, {"rows": rows})
        else:
            con.execute(statement)
