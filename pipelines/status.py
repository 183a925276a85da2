"""What `esim-recon status` reports: the last run, row counts, findings, money at risk and feed
freshness.

Everything is read-only: the Dagster instance for the runs (see `dagster_home`), the DuckDB file
for the rest. Nothing is created when either is missing.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from pipelines.money import money_summary
from pipelines.warehouse import RAW_TABLES, Warehouse

OPEN_WAIT_SECONDS = 5.0

_FEEDS_SQL = """
with attempts as (
    select
        asset,
        provider,
        status,
        finished_at,
        detail,
        row_number() over (partition by asset order by finished_at desc) as recency
    from raw.ingest_log
),
complete as (
    select asset, max(finished_at) as last_complete_at
    from raw.ingest_log
    where status = 'complete'
    group by asset
)
select
    attempts.asset,
    attempts.provider,
    complete.last_complete_at,
    attempts.status as last_status,
    attempts.finished_at as last_attempt_at,
    attempts.detail as last_detail
from attempts
left join complete using (asset)
where attempts.recency = 1
order by attempts.asset
"""


_RUN_IDS_SQL = "select distinct run_id from raw.ingest_log"

# Refused provider answers and records per asset and kind: in all, and in the asset's latest
# load (its latest run that quarantined anything, compared with its latest load in the log).
_QUARANTINE_SQL = """
with latest_load as (
    select asset, arg_max(run_id, finished_at) as run_id
    from raw.ingest_log
    group by asset
)
select
    quarantine.asset,
    quarantine.kind,
    count(*) as total,
    count(*) filter (where quarantine.run_id = latest_load.run_id) as latest_run
from raw.provider_quarantine as quarantine
left join latest_load using (asset)
group by all
order by 1, 2
"""


@dataclass
class LastRun:
    run_id: str
    job: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    failures: list[str] = field(default_factory=list)
    last_success_at: datetime | None = None
    wrote_database: bool = False  # whether this run loaded anything into the database asked
    # The run that rebuilt the models and reports after this one's provider failed.
    continued_by: str | None = None


@dataclass
class Feed:
    source: str
    provider: str | None
    last_complete_at: datetime | None
    last_status: str
    last_attempt_at: datetime
    last_detail: str | None


@dataclass
class Status:
    database: str
    dagster_home: str
    checked_at: datetime
    last_run: LastRun | None
    tables: dict[str, int]
    findings: list[dict[str, Any]]
    feeds: list[Feed]
    # The money at risk of the open findings (pipelines.money.summary_json); empty before the
    # reports exist.
    money: dict[str, Any] = field(default_factory=dict)
    # Refused provider answers and records (raw.provider_quarantine) per asset and kind.
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_runs(self) -> bool:
        """Whether any run has loaded this database (the Dagster instance may hold others)."""
        return bool(self.feeds)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            return value

        return plain(
            {
                "database": self.database,
                "dagster_home": self.dagster_home,
                "checked_at": self.checked_at,
                "last_run": asdict(self.last_run) if self.last_run else None,
                "tables": self.tables,
                "findings": self.findings,
                "feeds": [asdict(feed) for feed in self.feeds],
                "money": self.money,
                "quarantined": self.quarantined,
            }
        )


# Where `esim-recon demo` keeps its own run history, beside its database.
DEMO_DAGSTER_HOME = "dagster_home"


def dagster_home(db_path: Path | None = None) -> Path:
    """Where the runs that wrote `db_path` are recorded (nothing is created here): the
    `dagster_home` folder beside the database when there is one (the demo's), else
    DAGSTER_HOME, else ./.dagster_home as `esim-recon run` chooses it."""
    if db_path is not None:
        beside = db_path.parent / DEMO_DAGSTER_HOME
        if (beside / "dagster.yaml").is_file():
            return beside.resolve()
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured).resolve() if configured else Path.cwd() / ".dagster_home"


def _time(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _failures(instance: Any, run_id: str) -> list[str]:
    import dagster as dg

    from pipelines.runner import failure_reason

    return [
        failure_reason(entry.dagster_event)
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if entry.dagster_event is not None
    ]


def last_run(home: Path) -> LastRun | None:
    """The newest run in the Dagster instance at `home`, or None when there is none.

    A run that only rebuilt the models after a provider failed (`esim-recon run` starts one,
    tagged `esim_recon/continues`) is reported as part of the run it continues: that run's
    provider failure is the news, not the rebuild's success.
    """
    if not (home / "dagster.yaml").is_file():
        return None
    import dagster as dg

    from pipelines.runner import CONTINUES_TAG

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(limit=1)
        if not records:
            return None
        newest = records[0]
        continued_by = None
        record = newest
        original_id = newest.dagster_run.tags.get(CONTINUES_TAG)
        if original_id:
            original = instance.get_run_record_by_id(original_id)
            if original is not None:
                record, continued_by = original, newest.dagster_run.run_id
        # From the start of the (first) run to the end of the last one.
        group = [record] if continued_by is None else [record, newest]
        started, ended = _time(record.start_time), _time(newest.end_time)
        duration = (
            newest.end_time - record.start_time
            if record.start_time is not None and newest.end_time is not None
            else None
        )
        failed = [item for item in group if item.dagster_run.status.value == "FAILURE"]
        status = "FAILURE" if failed else newest.dagster_run.status.value
        failures = [
            reason for item in failed for reason in _failures(instance, item.dagster_run.run_id)
        ]
        last_success_at = None
        if status != "SUCCESS":
            successes = instance.get_run_records(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]), limit=10
            )
            # A rebuild after a failed provider is not a successful run of its own.
            whole = [item for item in successes if CONTINUES_TAG not in item.dagster_run.tags]
            if whole:
                last_success_at = _time(whole[0].end_time)
        elif ended is not None:
            last_success_at = ended
        run = record.dagster_run
        return LastRun(
            run_id=run.run_id,
            job=run.job_name,
            status=status.lower(),
            started_at=started,
            ended_at=ended,
            duration_seconds=round(duration, 1) if duration is not None else None,
            failures=failures,
            last_success_at=last_success_at,
            continued_by=continued_by,
        )


def _relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select schema_name || '.' || table_name from duckdb_tables() "
        "where schema_name in ('raw', 'reports') order by schema_name, table_name"
    ).fetchall()
    return [name for (name,) in rows]


def _database_part(
    con: duckdb.DuckDBPyConnection,
) -> tuple[dict[str, int], list[dict[str, Any]], list[Feed], set[str]]:
    relations = _relations(con)
    wanted = sorted(RAW_TABLES) + [name for name in relations if name.startswith("reports.")]
    tables = {}
    for name in wanted:
        if name in relations:  # identifiers come from the catalog, never from input
            [(count,)] = con.execute(f"select count(*) from {name}").fetchall()
            tables[name] = int(count)
    findings: list[dict[str, Any]] = []
    if "reports.discrepancies" in relations:
        findings = [
            {"type": kind, "severity": severity, "count": int(count)}
            for kind, severity, count in con.execute(
                "select discrepancy_type, severity, count(*) from reports.discrepancies "
                "group by all order by 1, 2"
            ).fetchall()
        ]
    feeds: list[Feed] = []
    run_ids: set[str] = set()
    if "raw.ingest_log" in relations:
        feeds = [Feed(*row) for row in con.execute(_FEEDS_SQL).fetchall()]
        run_ids = {run_id for (run_id,) in con.execute(_RUN_IDS_SQL).fetchall()}
    return tables, findings, feeds, run_ids


def _quarantined(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return [
        {"asset": asset, "kind": kind, "count": int(total), "latest_run": int(latest)}
        for asset, kind, total, latest in con.execute(_QUARANTINE_SQL).fetchall()
    ]


def collect(db_path: Path, home: Path | None = None) -> Status:
    """Read the status; raises `WarehouseError` when the file is missing or cannot be opened."""
    home = home or dagster_home(db_path)
    with Warehouse(db_path).connect(read_only=True, wait_seconds=OPEN_WAIT_SECONDS) as con:
        tables, findings, feeds, run_ids = _database_part(con)
        money = money_summary(con)
        quarantined = _quarantined(con) if "raw.provider_quarantine" in tables else []
    run = last_run(home)
    if run is not None:
        run.wrote_database = bool({run.run_id, run.continued_by} & run_ids)
    return Status(
        database=str(db_path),
        dagster_home=str(home),
        checked_at=datetime.now(UTC),
        last_run=run,
        tables=tables,
        findings=findings,
        feeds=feeds,
        money=money,
        quarantined=quarantined,
    )
