{#-
  The orders this build recomputes (see macros/order_batch.sql). One row per touched
  (provider, order_no), or a single row with is_all when every order is rebuilt: in a whole build,
  and whenever the touched set cannot be derived with certainty.

  Touched since the last recorded build (builds.last_build, builds.built_runs, written by
  pipelines.incremental after a successful build only):
  - a provider's fetch row (stg_<provider>_fetch_entries: an eSIMTrade sync, a PressOne usage
    look-up) of a run not built yet (crashed runs included);
  - an order listed (stg_<provider>_list_entries) by a complete list load not built yet whose
    listed rows differ from its listing in the latest complete load of that list the last build
    read (or that this load did not list). A list is re-read whole every run, so an unchanged
    listing touches nothing, except where a listing judges the eSIM's state again
    (int_provider_esims.judged_by_listing: its state_observed_at moves);
  - a local line (by line_no) whose content differs between the latest complete local load and
    the one the last build read, on either side (a vanished line touches its order);
  - the touched set of a build that did not complete (it is recomputed too);
  - every order sharing an ICCID, local or provider, old or new, with the above: a local ICCID
    counts duplicates across orders, and a fetch row may belong to whichever order holds its
    ICCID (PressOne: the newest).
  An order vanishing from a list changes nothing here (the stored list keeps its last listing).
  Every build (on the touched orders or whole) is as of the same raw data: the result equals a
  full refresh.
-#}
{{ config(materialized='table') }}
-- The order-batch branch below is rendered only when a build runs; its dependencies:
-- depends_on: {{ ref('stg_raw_runs') }}, {{ ref('stg_ingest_loads') }}, {{ ref('int_source_coverage') }}
-- depends_on: {{ ref('provider_sources') }}, {{ source('raw', 'local_orders') }}
-- depends_on: {% for p in var('providers') %}{{ ref('stg_' ~ p ~ '_list_entries') }}, {{ ref('stg_' ~ p ~ '_fetch_entries') }} {% endfor %}

with
{%- set recon_rows = maintained_relation('int_reconciliation_rows') %}
{%- set provider_esims = maintained_relation('int_provider_esims') %}
{%- set last_build = adapter.get_relation(database=target.database, schema='builds', identifier='last_build') %}
{%- set previous = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) %}
{%- if not (order_batch_requested() and recon_rows and provider_esims and last_build and previous) %}

final as (
    select
        cast(null as varchar) as provider,
        cast(null as varchar) as order_no,
        true as is_all,
        {{ dbt.string_literal(invocation_id) }} as batch_id
)

{%- else %}

last_build as (
    select * from builds.last_build
),

built_runs as (
    select * from builds.built_runs
),

raw_runs as (
    select * from {{ ref('stg_raw_runs') }}
),

ingest_loads as (
    select * from {{ ref('stg_ingest_loads') }}
),

coverage as (
    select provider, is_ingested, local_loaded from {{ ref('int_source_coverage') }}
),

provider_esims as (
    select provider, order_no, iccid, judged_by_listing from {{ provider_esims }}
),

new_runs as (
    select raw_table, run_id, row_count, is_complete, finished_at from raw_runs
    except
    select raw_table, run_id, row_count, is_complete, finished_at from built_runs
),

-- Raw is append-only: a built run with fewer rows, or gone, or no longer complete, means the
-- recorded state cannot be trusted.
lost_runs as (
    select built_runs.raw_table
    from built_runs
    left join raw_runs
        on raw_runs.raw_table = built_runs.raw_table and raw_runs.run_id = built_runs.run_id
    where raw_runs.run_id is null
        or raw_runs.row_count < built_runs.row_count
        or (built_runs.is_complete and not raw_runs.is_complete)
),

-- A new complete load finishing before a built one of the same table would change which load
-- is latest for orders it did not list: not derived here.
late_loads as (
    select new_runs.raw_table
    from new_runs
    inner join (
        select raw_table, max(finished_at) as last_built_at
        from built_runs
        where is_complete
        group by raw_table
    ) as built on built.raw_table = new_runs.raw_table
    where new_runs.is_complete and new_runs.finished_at <= built.last_built_at
),

coverage_changes as (
    (select * from coverage except select provider, is_ingested, local_loaded from builds.built_coverage)
    union all
    (select provider, is_ingested, local_loaded from builds.built_coverage except select * from coverage)
),

-- The previous build's touched set when that build did not complete.
unfinished as (
    select provider, order_no, is_all
    from {{ previous }}
    where batch_id <> (select batch_id from last_build)
),

local_loads as (
    select
        (
            select run_id from ingest_loads
            where asset = 'local_orders' and is_complete
            order by finished_at desc, run_id desc
            limit 1
        ) as current_run_id,
        (select local_run_id from last_build) as built_run_id
),

local_lines as (
    select
        local_orders.run_id,
        local_orders.line_no,
        lower(trim(local_orders.provider)) as provider,
        trim(local_orders.order_no) as order_no,
        nullif(trim(local_orders.iccid), '') as iccid,
        hash(
            local_orders.provider, local_orders.order_no, local_orders.iccid,
            local_orders.package_code, local_orders.status, local_orders.amount,
            local_orders.currency, local_orders.created_at
        ) as line_hash
    from {{ source('raw', 'local_orders') }} as local_orders
    where local_orders.run_id in (
        select current_run_id from local_loads where current_run_id is distinct from built_run_id
        union all
        select built_run_id from local_loads where current_run_id is distinct from built_run_id
    )
),

changed_local_lines as (
    (
        select line_no, provider, order_no, iccid, line_hash from local_lines
        where run_id = (select current_run_id from local_loads)
        except
        select line_no, provider, order_no, iccid, line_hash from local_lines
        where run_id = (select built_run_id from local_loads)
    )
    union all
    (
        select line_no, provider, order_no, iccid, line_hash from local_lines
        where run_id = (select built_run_id from local_loads)
        except
        select line_no, provider, order_no, iccid, line_hash from local_lines
        where run_id = (select current_run_id from local_loads)
    )
),

list_assets as (
    select list_asset as raw_table from {{ ref('provider_sources') }}
),

new_list_loads as (
    select raw_table, run_id, finished_at, true as is_new
    from new_runs
    where is_complete and raw_table in (select raw_table from list_assets)
),

-- What a list's new loads are compared with: its latest complete load the last build read, and
-- only when it has a new one, so a build reads two loads of a list, not its whole history (and
-- none after a run that read no list). An order that load did not list counts as changed: at
-- worst an order is recomputed that need not be.
baseline_list_loads as (
    select raw_table, run_id, finished_at, false as is_new
    from built_runs
    where is_complete and raw_table in (select raw_table from new_list_loads)
    qualify row_number() over (
        partition by raw_table order by finished_at desc, run_id desc
    ) = 1
),

list_loads as (
    select * from baseline_list_loads
    union all
    select * from new_list_loads
),

-- Each provider's listed rows (stg_<provider>_list_entries), of the loads compared only.
listed as (
    {{ union_provider_models(
        'list_entries', where='(raw_table, run_id) in (select raw_table, run_id from list_loads)'
    ) }}
),

-- One content per order and load: its listed rows, in any order.
listings as (
    select
        listed.provider,
        listed.order_no,
        listed.run_id,
        any_value(list_loads.finished_at) as finished_at,
        bool_or(list_loads.is_new) as is_new,
        hash(list_sort(list(listed.row_hash))) as content
    from listed
    inner join list_loads
        on list_loads.raw_table = listed.raw_table and list_loads.run_id = listed.run_id
    group by listed.provider, listed.order_no, listed.run_id
),

relisted_orders as (
    select distinct provider, order_no from listings where is_new
),

previous_listings as (
    select provider, order_no, arg_max(content, finished_at) as content
    from listings
    where not is_new
    group by provider, order_no
),

list_changes as (
    select listings.provider, listings.order_no
    from listings
    left join previous_listings
        on previous_listings.provider = listings.provider
        and previous_listings.order_no = listings.order_no
    where listings.is_new and listings.content is distinct from previous_listings.content
),

-- An order (by the provider's id) listed under a new code: its former code loses its sims.
code_moves as (
    select distinct earlier.provider, earlier.order_no
    from listed as earlier
    inner join listed as later
        on later.provider = earlier.provider
        and later.order_id = earlier.order_id
        and later.order_no <> earlier.order_no
    where (later.raw_table, later.run_id) in (select raw_table, run_id from new_runs)
),

-- Listed again unchanged, but the listing judges the state again (it moves state_observed_at).
rejudged as (
    select provider_esims.provider, provider_esims.order_no
    from provider_esims
    inner join relisted_orders
        on relisted_orders.provider = provider_esims.provider
        and relisted_orders.order_no = provider_esims.order_no
    where provider_esims.judged_by_listing is not false
),

-- Each provider's per-order fetches (stg_<provider>_fetch_entries) of runs not built yet.
new_fetches as (
    {{ union_provider_models(
        'fetch_entries', where='(raw_table, run_id) in (select raw_table, run_id from new_runs)'
    ) }}
),

direct as (
    select provider, order_no from list_changes
    union
    select provider, order_no from rejudged
    union
    select provider, order_no from code_moves
    union
    select provider, order_no from new_fetches where order_no is not null
    -- a fetch of an ICCID no order holds is reported under its provider's unheld order
    union
    select provider, unheld_order_no from new_fetches where unheld_order_no is not null
    union
    select provider, order_no from changed_local_lines
    union
    select provider, order_no from unfinished where not is_all
),

touched_iccids as (
    select iccid from new_fetches
    union
    select requested_iccid from new_fetches
    union
    select iccid from changed_local_lines
    union
    select listed.iccid
    from listed
    inner join direct
        on direct.provider = listed.provider and direct.order_no = listed.order_no
    where listed.iccid is not null
        and (listed.raw_table, listed.run_id) in (select raw_table, run_id from new_runs)
    union
    select unnest([direct_rows.local_iccid, direct_rows.provider_iccid])
    from {{ recon_rows }} as direct_rows
    where (direct_rows.provider, direct_rows.order_no) in (select provider, order_no from direct)
),

-- The stored rows are read here and in touched_iccids, not through one CTE: DuckDB materializes
-- a CTE read twice, which here is every stored row.
sharing_an_iccid as (
    select provider, order_no
    from {{ recon_rows }}
    where local_iccid in (select iccid from touched_iccids where iccid is not null)
        or provider_iccid in (select iccid from touched_iccids where iccid is not null)
),

touched as (
    select provider, order_no from direct
    union
    select provider, order_no from sharing_an_iccid
),

unsure as (
    select 'lost run' as reason from lost_runs
    union all
    select 'late load' from late_loads
    union all
    select 'coverage changed' from coverage_changes
    union all
    select 'unfinished whole build' from unfinished where is_all
    union all
    select 'local load missing'
    from local_loads
    where current_run_id is distinct from built_run_id
        and (current_run_id is null or built_run_id is null)
    union all
    select 'touched order without a key'
    from touched
    where provider is null or order_no is null
),

final as (
    select
        cast(null as varchar) as provider,
        cast(null as varchar) as order_no,
        true as is_all,
        {{ dbt.string_literal(invocation_id) }} as batch_id
    where exists (select 1 from unsure)
    union all
    select
        provider,
        order_no,
        false as is_all,
        {{ dbt.string_literal(invocation_id) }} as batch_id
    from touched
    where not exists (select 1 from unsure)
)

{%- endif %}

select * from final
