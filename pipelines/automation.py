"""Jobs and schedules: what the Dagster daemon runs unattended.

- `hourly_sync` (every hour at :05): the last two days' partitions of both provider lists, the
  per-order syncs of every eSIM not yet settled (incremental: terminal and already synced
  eSIMs are skipped), the local orders, and every model and report.
- `daily_full_refresh` (every day at 03:15 UTC): the whole of both provider lists (an
  unpartitioned run) and everything downstream, syncs still incremental. It is the run that
  lets the reconciliation say a provider does not know an order (see `assets.partitions`).

Both run in-process: every step writes the one DuckDB file, which takes one writer at a time
(the `duckdb` pool has one slot), so separate step processes would only add start-up time.
- `full_reconciliation` (no schedule): both lists in full, full syncs of every eSIM, and
  everything downstream. `esim-recon run` and `esim-recon demo` launch it (`--select` a subset
  of it); `esim-recon run --incremental` launches `daily_full_refresh`. A CLI run is filed
  under its job in the UI like a run started there.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from assets.partitions import recent_days_tags

HOURLY_LIST_DAYS = 2
# The schedules' runs sync incrementally; the launchpad starts from the same config.
INCREMENTAL_SYNCS = {"resources": {"run_options": {"config": {"full_sync": False}}}}

# Every asset and every check on it.
_EVERYTHING = dg.AssetSelection.all()

FULL_RECONCILIATION_JOB = "full_reconciliation"
# `esim-recon run` without --incremental: every known order synced again.
FULL_SYNCS = {"resources": {"run_options": {"config": {"full_sync": True}}}}

full_reconciliation_job = dg.define_asset_job(
    name=FULL_RECONCILIATION_JOB,
    selection=_EVERYTHING,
    executor_def=dg.in_process_executor,
    description=(
        "Both provider lists in full, a full sync of every known order, the local orders, "
        "every model and report: what `esim-recon run` launches."
    ),
    tags={"esim_recon/kind": "full_reconciliation"},
    config=FULL_SYNCS,
)

hourly_sync_job = dg.define_asset_job(
    name="hourly_sync",
    selection=_EVERYTHING,
    executor_def=dg.in_process_executor,
    description=(
        "The last two days of both provider lists, incremental syncs of the eSIMs not yet "
        "settled, the local orders, every model and report."
    ),
    tags={"esim_recon/kind": "hourly"},
    config=INCREMENTAL_SYNCS,
)

DAILY_FULL_REFRESH_JOB = "daily_full_refresh"
daily_full_refresh_job = dg.define_asset_job(
    name=DAILY_FULL_REFRESH_JOB,
    selection=_EVERYTHING,
    executor_def=dg.in_process_executor,
    description=(
        "The whole of both provider lists (no partition: a full walk) and everything downstream, "
        "with incremental syncs."
    ),
    tags={"esim_recon/kind": "full_refresh"},
    config=INCREMENTAL_SYNCS,
)


@dg.schedule(
    job=hourly_sync_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :05 UTC: the hourly_sync job over the last two days' partitions.",
)
def hourly_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(
        run_key=f"hourly:{when.astimezone(UTC):%Y-%m-%dT%H}",
        run_config=INCREMENTAL_SYNCS,
        tags=recent_days_tags(when, HOURLY_LIST_DAYS),
    )


@dg.schedule(
    job=daily_full_refresh_job,
    cron_schedule="15 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 03:15 UTC: the full refresh of both provider lists.",
)
def daily_full_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(
        run_key=f"full:{when.astimezone(UTC):%Y-%m-%d}", run_config=INCREMENTAL_SYNCS
    )


jobs = [full_reconciliation_job, hourly_sync_job, daily_full_refresh_job]
schedules = [hourly_sync_schedule, daily_full_refresh_schedule]
