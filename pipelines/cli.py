"""`esim-recon`: run, demo, sql, export, simulate, status."""

from __future__ import annotations

import errno
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from pipelines import progress as progress_events
from pipelines.settings import ConfigError, Settings, load_dotenv_into_environ, load_settings

if TYPE_CHECKING:
    from pipelines.status import Status

EPILOG_RUN = """\b
Examples:
  esim-recon run
  esim-recon run --select pressone_orders
  esim-recon run --select 'esimtrade_order_syncs+'
  esim-recon run --incremental --budget 5000
  esim-recon run --full-refresh                      # rebuild every model from all of raw
  esim-recon run --from 2026-01-01 --to 2026-01-31   # backfill: lists of those days only
"""


def _console(stderr: bool = False) -> Console:
    # Colours only on a terminal, and never when NO_COLOR is set.
    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


class _ProgressBars:
    """Rich progress bars for the tasks a run reports (see `pipelines.progress`)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._ids: dict[int, TaskID] = {}

    @staticmethod
    def _detail(task: progress_events.Task) -> str:
        if task.unit == "pages":
            return f"{task.done} pages, {task.items} rows"
        shown = f"{task.done}/{task.total}" if task.total is not None else str(task.done)
        return f"{shown} {task.unit}"

    def started(self, task: progress_events.Task) -> None:
        self._ids[task.id] = self._progress.add_task(
            task.name, total=task.total, detail=self._detail(task)
        )

    def advanced(self, task: progress_events.Task) -> None:
        self._progress.update(self._ids[task.id], completed=task.done, detail=self._detail(task))

    def finished(self, task: progress_events.Task) -> None:
        self._progress.update(
            self._ids.pop(task.id),
            total=task.total if task.total is not None else task.done,
            completed=task.done,
            detail=self._detail(task),
        )


@contextmanager
def _progress_bars() -> Iterator[None]:
    """Progress bars on stderr while the block runs, only when stderr is a terminal; waits for
    a lock or a rate limit are said on stderr either way (a silent wait looks like a hang)."""
    console = _console(stderr=True)

    def tell_wait(message: str) -> None:
        console.print(f"esim-recon: {message}", markup=False, highlight=False, soft_wrap=True)

    if not console.is_terminal or console.is_dumb_terminal:
        with progress_events.hearing_waits(tell_wait):
            yield
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with (
        Progress(*columns, console=console, transient=True) as bars,
        progress_events.listening(_ProgressBars(bars)),
        progress_events.hearing_waits(tell_wait),
    ):
        yield


# `esim-recon run` completed, but a provider's order list could not be loaded (its previous
# complete load stayed in force); 1 is a failed run, 2 bad configuration.
EXIT_LIST_NOT_LOADED = 3


def _die(message: str, code: int = 1) -> NoReturn:
    # One plain line, never wrapped: schedulers and scripts read it.
    print(f"esim-recon: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _settings() -> Settings:
    load_dotenv_into_environ()
    try:
        return load_settings()
    except ConfigError as exc:
        _die(f"configuration: {exc}", 2)


def _print_summary(
    db_path: Path, export_dir: Path | None, elapsed: float, summary: dict[str, Any] | None = None
) -> None:
    from pipelines.runner import discrepancy_summary

    console = _console()
    # A run's own summary was read under its lock: another run may hold the file by now.
    summary = discrepancy_summary(db_path) if summary is None else summary
    if not summary:
        console.print(f"Done in {elapsed:.1f} s; no reports built yet. Database: {db_path}")
        return
    table = Table(title="Discrepancies (latest run)")
    table.add_column("type")
    table.add_column("severity")
    table.add_column("count", justify="right")
    total = 0
    for discrepancy_type, severity, count in summary["by_type"]:
        table.add_row(discrepancy_type, severity, str(count))
        total += count
    table.add_row("[bold]total[/bold]", "", f"[bold]{total}[/bold]")
    console.print(table)
    _print_money(console, summary.get("money"))
    rows = summary.get("rows", {})
    console.print(
        f"Reconciled {rows.get('reconciliation', 0)} rows; usage for {rows.get('usage', 0)} eSIMs; "
        f"done in {elapsed:.1f} s."
    )
    local = summary.get("local_rows") or {}
    if local.get("rejected"):
        console.print(
            f"Local orders: {local['accepted']} rows loaded, {local['rejected']} rejected "
            "(see raw.local_orders_rejected).",
            markup=False,
        )
    console.print(f"Database: {db_path}", markup=False)
    if export_dir is not None:
        console.print(f"CSV exports: {export_dir}/", markup=False)
        charts = export_dir / "charts.html"
        if charts.is_file():
            console.print(f"Charts: {charts}", markup=False)


def _print_money(console: Console, money: dict[str, Any] | None) -> None:
    """The money at risk of the open findings: every direction that moves money, then the
    headline (recoverable now, customer exposure, lost)."""
    from pipelines.money import headline_text

    if not money:
        return
    table = Table(title="Money at risk (open findings)")
    table.add_column("direction")
    table.add_column("findings", justify="right")
    table.add_column("amount", justify="right")
    for line in money.get("by_direction", []):
        if line["money_direction"] != "none":
            amount = f"{line['amount']} {line['currency']}"
            table.add_row(line["money_direction"], str(line["findings"]), amount)
    console.print(table)
    console.print(headline_text(money), markup=False, soft_wrap=True)


def _run_graph(
    settings: Settings,
    *,
    selection: str | None,
    full_sync: bool,
    budget: int | None,
    tags: dict[str, str] | None = None,
    dagster_home: Path | None = None,
) -> Any:
    from pipelines.automation import DAILY_FULL_REFRESH_JOB, FULL_RECONCILIATION_JOB
    from pipelines.definitions import runnable
    from pipelines.resources import RunOptionsResource, resources_from_settings
    from pipelines.runner import RunError, materialize_all

    resources = resources_from_settings(settings)
    resources["run_options"] = RunOptionsResource(
        full_sync=full_sync, sync_budget=budget, sync_seconds=settings.esim_recon_sync_seconds
    )
    try:
        with _progress_bars():
            outcome = materialize_all(
                runnable,
                resources,
                db_path=settings.esim_recon_db,
                selection=selection,
                tags=tags,
                dagster_home=dagster_home,
                # --incremental is exactly the daily full refresh: whole lists, settled eSIMs
                # not synced again.
                job_name=FULL_RECONCILIATION_JOB if full_sync else DAILY_FULL_REFRESH_JOB,
            )
    except RunError as exc:
        _die(str(exc), exc.exit_code)
    if not outcome.success:
        first = outcome.failures[0] if outcome.failures else "the run failed"
        more = f" (and {len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
        _die(f"run {outcome.run_id[:8]} failed: {first}{more}")
    from assets.raw import LIST_LOAD_CHECK

    # A list not loaded has a line of its own (see the caller); its check is not news twice.
    failed_checks = [
        check for check in outcome.failed_checks if not check.endswith(f":{LIST_LOAD_CHECK}")
    ]
    if failed_checks:
        _console(stderr=True).print(
            f"warning: {len(failed_checks)} asset check(s) failed: " + ", ".join(failed_checks),
            markup=False,
        )
    return outcome


def _window_tags(window_from: Any, window_to: Any) -> dict[str, str] | None:
    """Run tags of the --from/--to day range (None without --from)."""
    if window_from is None:
        if window_to is not None:
            _die("--to needs --from", 2)
        return None
    from datetime import UTC, datetime

    from assets.partitions import range_tags

    last = window_to.date() if window_to is not None else datetime.now(UTC).date()
    try:
        return range_tags(window_from.date(), last)
    except ValueError as exc:
        _die(f"--from/--to: {exc}", 2)


EPILOG_MAIN = """\b
Examples:
  esim-recon demo                  try it end to end against the bundled simulator
  esim-recon run                   one full reconciliation (configured from the environment)
  esim-recon status                last run, feed freshness, findings, rows per table
  esim-recon sql "SELECT * FROM reports.discrepancies WHERE severity = 'critical'"
  esim-recon COMMAND --help        options and examples of one command
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG_MAIN)
def main() -> None:
    """Reconcile an eSIM reseller's order records against eSIMTrade and PressOne.

    Configuration comes from environment variables (and a .env file in the working
    directory); see the README for every variable.
    """


@main.command(epilog=EPILOG_RUN)
@click.option("--select", "selection", help="Dagster asset selection, e.g. 'pressone_orders+'.")
@click.option(
    "--incremental",
    is_flag=True,
    help="Skip eSIMs already synced in a terminal state (the hourly job's mode).",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild every SQL model from all of raw (default: recompute only the orders touched "
    "since the last successful build).",
)
@click.option("--budget", type=click.IntRange(min=0), help="At most N syncs per provider.")
@click.option(
    "--from",
    "window_from",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Backfill: ingest the provider lists' orders created from this UTC day (one run).",
)
@click.option(
    "--to",
    "window_to",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last UTC day of the backfill (default: today); needs --from.",
)
def run(
    selection: str | None,
    incremental: bool,
    full_refresh: bool,
    budget: int | None,
    window_from: Any,
    window_to: Any,
) -> None:
    """One full reconciliation against the configured providers.

    With --from/--to, the provider lists are read for those created_at days only (the day
    partitions of the list assets, in one run); everything else runs as usual. The SQL models
    recompute only the orders touched since the last successful build; --full-refresh (and the
    daily job, which --incremental launches) rebuilds them from all of raw.
    """
    settings = _settings()
    try:
        settings.require_run_inputs()
    except ConfigError as exc:
        _die(f"configuration: {exc}", 2)
    tags = _window_tags(window_from, window_to)
    if full_refresh:
        from pipelines.incremental import FULL_REFRESH_TAG

        tags = {**(tags or {}), FULL_REFRESH_TAG: "true"}
    started = time.monotonic()
    outcome = _run_graph(
        settings, selection=selection, full_sync=not incremental, budget=budget, tags=tags
    )
    _print_summary(
        settings.esim_recon_db,
        settings.esim_recon_export_dir,
        time.monotonic() - started,
        outcome.summary,
    )
    if outcome.lists_not_loaded:
        # The run completed on the previous complete list load: a separate code, so that a
        # scheduler can tell "stale provider list" from "failed".
        for line in outcome.lists_not_loaded:
            print(f"esim-recon: {' '.join(line.split())}", file=sys.stderr)
        sys.exit(EXIT_LIST_NOT_LOADED)


@main.command(
    epilog="\b\nExamples:\n  esim-recon demo\n  esim-recon demo --orders 5000 --faults 0.2"
)
@click.option("--orders", default=1000, show_default=True, help="Provider orders to simulate.")
@click.option("--seed", default=7, show_default=True, help="Dataset seed.")
@click.option(
    "--dir",
    "demo_dir",
    type=click.Path(path_type=Path),
    default=Path("demo"),
    show_default=True,
    help=(
        "Where the demo keeps everything: database, local orders, exports and its own Dagster "
        "home (dagster_home/), apart from real runs."
    ),
)
@click.option(
    "--runs",
    default=2,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Runs to make; the simulated world moves on between runs (usage, state changes).",
)
@click.option("--faults", default=0.0, show_default=True, help="Injected provider fault rate.")
def demo(orders: int, seed: int, demo_dir: Path, runs: int, faults: float) -> None:
    """Run end to end against the bundled simulator with generated local orders."""
    from pipelines.simulator import FaultConfig, RateLimits, generate_dataset, serve
    from pipelines.status import DEMO_DAGSTER_HOME

    console = _console()
    started = time.monotonic()
    demo_dir.mkdir(parents=True, exist_ok=True)
    # Its own run history: the demo's runs never mix with real ones in the Dagster UI.
    demo_home = (demo_dir / DEMO_DAGSTER_HOME).resolve()  # where `status` looks for it too
    dataset = generate_dataset(seed=seed, orders=orders, drift_orders=orders // 50)
    local_file = demo_dir / "local_orders.csv"
    dataset.write_local_orders(local_file)
    fault_config = FaultConfig.uniform(faults) if faults else FaultConfig()
    with serve(dataset, faults=fault_config, rate_limits=RateLimits.unlimited()) as simulator:
        env = {key.lower(): value for key, value in simulator.env().items()}
        settings = Settings(
            **env,
            esim_recon_local_orders=local_file,
            esim_recon_db=demo_dir / "esim_recon.duckdb",
            esim_recon_export_dir=demo_dir / "exports",
            # The simulator has no provider quota; the real eSIMTrade default is 120/min.
            esimtrade_requests_per_minute=600_000,
            esim_recon_max_concurrency=16,
            # It also answers in milliseconds: long waits between attempts would only slow the
            # demo down without exercising anything more.
            esim_recon_retry_initial_wait=0.02,
            esim_recon_retry_max_wait=0.2,
        )
        console.print(
            f"Simulator on 127.0.0.1:{simulator.port} with {orders} orders (seed {seed})."
        )
        for number in range(1, runs + 1):
            if number > 1:
                dataset.advance()
                console.print("The simulated world moved on (usage, state changes).")
            run_started = time.monotonic()
            outcome = _run_graph(
                settings, selection=None, full_sync=True, budget=None, dagster_home=demo_home
            )
            console.print(
                f"Run {number}: {len(outcome.materialized)} assets in "
                f"{time.monotonic() - run_started:.1f} s."
            )
    dataset.write_ground_truth(demo_dir / "ground_truth.json")
    _print_summary(
        settings.esim_recon_db, settings.esim_recon_export_dir, time.monotonic() - started
    )
    console.print(f"Local orders: {local_file}; planted truth: {demo_dir / 'ground_truth.json'}")
    command = _self_command()
    db_option = shlex.quote(str(settings.esim_recon_db))
    console.print("Next:", markup=False)
    for line in (
        f"  {command} sql --db {db_option} "
        + shlex.quote("SELECT discrepancy_type, count(*) FROM reports.discrepancies GROUP BY 1"),
        f"  {command} status --db {db_option}",
        f"  DAGSTER_HOME={shlex.quote(str(demo_home))} {_dagster_command()} dev"
        "   # the demo's runs in the Dagster UI",
    ):
        console.print(line, markup=False, soft_wrap=True)


def _beside(path: Path) -> str:
    """`path` relative to the working directory when it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _self_command() -> str:
    """How to run esim-recon again from this shell: the installed script as it was called."""
    import shutil

    invoked = Path(sys.argv[0])
    if invoked.name == "esim-recon" and invoked.is_file():
        on_path = shutil.which("esim-recon")
        if on_path and Path(on_path).resolve() == invoked.resolve():
            return "esim-recon"
        return shlex.quote(_beside(invoked))
    script = Path(sys.executable).with_name("esim-recon")
    if script.is_file():
        return shlex.quote(_beside(script))
    return "python3 -m uv run esim-recon"


def _dagster_command() -> str:
    script = Path(sys.executable).with_name("dagster")
    return shlex.quote(_beside(script)) if script.is_file() else "python3 -m uv run dagster"


EPILOG_SQL = """\b
Examples:
  esim-recon sql "SELECT * FROM reports.discrepancies WHERE severity = 'critical'"
  esim-recon sql --csv "SELECT * FROM reports.usage" > usage.csv
  esim-recon sql --db demo/esim_recon.duckdb "SELECT count(*) FROM reports.discrepancies"

On a terminal the result is a table; piped or redirected, tab-separated text with every value
in full. The database is opened read-only and no other file can be read or written.
"""


def _write_delimited(columns: list[str], rows: list[tuple[str | None, ...]], dialect: str) -> None:
    import csv

    writer = csv.writer(sys.stdout, dialect=dialect, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)


# A query copied with its leading `-- comment` line is a query, not an unknown option.
@main.command(epilog=EPILOG_SQL, context_settings={"ignore_unknown_options": True})
@click.argument("query")
@click.option("--csv", "as_csv", is_flag=True, help="Print every row as CSV.")
@click.option("--db", type=click.Path(path_type=Path), help="DuckDB file (default ESIM_RECON_DB).")
@click.option("--limit", default=200, show_default=True, help="Rows shown without --csv.")
def sql(query: str, as_csv: bool, db: Path | None, limit: int) -> None:
    """Read-only SQL on the DuckDB file."""
    import duckdb

    from pipelines.exports import EmptyQueryError, read_only_text_query
    from pipelines.warehouse import WarehouseError

    db_path = db or _settings().esim_recon_db
    try:
        result = read_only_text_query(db_path, query, limit=None if as_csv else limit)
    except EmptyQueryError as exc:
        _die(f'{exc}: give a SELECT statement, e.g. esim-recon sql "SELECT 1"', 2)
    except WarehouseError as exc:  # missing file, or a run is writing it
        _die(str(exc))
    except duckdb.PermissionException:
        _die("the query reads or writes a file outside the database; this command cannot", 2)
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "read-only" in message.lower():
            _die(f"the database is opened read-only; this command cannot write ({message})")
        _die(f"query failed: {message}")
    if as_csv:
        _write_delimited(result.columns, result.rows, "excel")
        return
    console = _console()
    note = None
    if result.total_rows > len(result.rows):
        note = f"({result.total_rows} rows, first {len(result.rows)} shown; use --csv for all)"
    if not console.is_terminal:
        # Scripts and pagers get every value whole, never cut to a terminal's width.
        _write_delimited(result.columns, result.rows, "excel-tab")
        if note:
            print(note, file=sys.stderr)
        return
    table = Table(show_lines=False)
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(*("" if cell is None else cell for cell in row))
    console.print(table)
    if note:
        console.print(note, markup=False)


@main.command(epilog="\b\nExample:\n  esim-recon export --out /srv/finance/esim")
@click.option("--db", type=click.Path(path_type=Path), help="DuckDB file (default ESIM_RECON_DB).")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Folder (default ESIM_RECON_EXPORT_DIR)."
)
def export(db: Path | None, out: Path | None) -> None:
    """Write the CSV and Parquet reports and the charts again from the DuckDB file."""
    import duckdb

    from pipelines.charts import write_charts
    from pipelines.exports import write_exports

    settings = _settings()
    db_path = db or settings.esim_recon_db
    out_dir = out or settings.esim_recon_export_dir
    if not db_path.exists():
        _die(f"no database at {db_path}: run `esim-recon run` first")
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.IOException:
        _die(f"{db_path} is being written by a running esim-recon run; try again shortly")
    try:
        written = write_exports(con, out_dir)
        written.update(write_charts(con, out_dir).as_dict())
    except duckdb.CatalogException as exc:
        _die(f"reports missing in {db_path} (run `esim-recon run` first): {exc}")
    finally:
        con.close()
    for name, path in written.items():
        _console().print(f"{name}: {path}", markup=False)


EPILOG_STATUS = """\b
Examples:
  esim-recon status
  esim-recon status --db demo/esim_recon.duckdb
  esim-recon status --json | jq '.feeds[] | select(.last_status != "complete")'
"""


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0.0, (now - moment).total_seconds())
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if moment else "-"


_FEED_STYLES = {"complete": "green", "failed": "red"}


def _detail(text: str | None) -> str:
    """An ingest-log detail for people: request outcome counts as `49 ok, 2 failed`."""
    if not text:
        return ""
    try:
        counts = json.loads(text)
    except ValueError:
        return text
    if isinstance(counts, dict):
        return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    return text


def _print_status(report: Status) -> None:
    console = _console()
    now = report.checked_at
    console.print(f"Database: {report.database}", markup=False)
    run = report.last_run
    if run is None:
        console.print(f"Last run: none recorded in {report.dagster_home}", markup=False)
    else:
        style = "green" if run.status == "success" else "red"
        took = f", {run.duration_seconds:.1f} s" if run.duration_seconds is not None else ""
        console.print(
            f"Last run: {run.run_id[:8]} [{style}]{run.status}[/{style}], started "
            f"{_when(run.started_at)} ({_ago(run.started_at, now)}){took}"
        )
        if not run.wrote_database:
            console.print(f"  (it loaded nothing into {report.database})", markup=False)
        for failure in run.failures:
            console.print(f"  failed: {failure}", markup=False)
        if run.continued_by:
            console.print(
                f"  reports rebuilt from the last complete loads by run {run.continued_by[:8]}",
                markup=False,
            )
        if run.status != "success":
            console.print(f"  last successful run ended {_when(run.last_success_at)}")

    feeds = Table(title="Provider feeds (raw.ingest_log)", title_justify="left")
    feeds.add_column("source", no_wrap=True)
    feeds.add_column("last complete load", no_wrap=True)
    feeds.add_column("last attempt", no_wrap=True)
    feeds.add_column("detail", overflow="fold")
    for feed in report.feeds:
        style = _FEED_STYLES.get(feed.last_status, "yellow")
        attempt = f"[{style}]{feed.last_status}[/{style}]"
        if feed.last_attempt_at != feed.last_complete_at:
            attempt += f" {_ago(feed.last_attempt_at, now)}"
        feeds.add_row(
            feed.source,
            _ago(feed.last_complete_at, now),
            attempt,
            escape(_detail(feed.last_detail)),
        )
    console.print(feeds)

    findings = Table(title="Findings (reports.discrepancies)", title_justify="left")
    for column, justify in (("type", "left"), ("severity", "left"), ("count", "right")):
        findings.add_column(column, justify=justify)
    for finding in report.findings:
        style = "red" if finding["severity"] == "critical" else ""
        findings.add_row(
            finding["type"], Text(finding["severity"], style=style), str(finding["count"])
        )
    total = sum(finding["count"] for finding in report.findings)
    findings.add_row("total", "", str(total), style="bold")
    console.print(findings)
    _print_money(console, report.money)

    for entry in report.quarantined:  # refused provider answers (raw.provider_quarantine)
        console.print(
            f"Quarantined: {entry['asset']} {entry['kind']}: {entry['count']} "
            f"({entry['latest_run']} in its latest load)",
            markup=False,
        )

    tables = Table(title="Rows per table", title_justify="left")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    for name, count in report.tables.items():
        tables.add_row(name, f"{count:,}")
    console.print(tables)


@main.command(epilog=EPILOG_STATUS)
@click.option("--db", type=click.Path(path_type=Path), help="DuckDB file (default ESIM_RECON_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def status(db: Path | None, as_json: bool) -> None:
    """Last run, rows per table, findings and provider feed freshness (read-only)."""
    from pipelines.status import collect
    from pipelines.warehouse import WarehouseError

    db_path = db or _settings().esim_recon_db
    try:
        report = collect(db_path)
    except WarehouseError as exc:
        _die(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    if not report.has_runs:
        _console().print(
            f"No runs yet: {db_path} holds no loads. Start one with `esim-recon run`.",
            markup=False,
        )
        return
    _print_status(report)


@main.command(epilog="\b\nExample:\n  esim-recon simulate --port 8080 --orders 1000 --seed 7")
@click.option("--port", default=8080, show_default=True)
@click.option("--orders", default=1000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("simulator"),
    show_default=True,
    help="Where to write local_orders.csv and ground_truth.json.",
)
@click.option("--latency-ms", default=0, show_default=True, help="Added to every response.")
@click.option("--faults", default=0.0, show_default=True, help="Injected fault rate (0..1).")
@click.option(
    "--envelope",
    type=click.Choice(["plain", "wrapped"]),
    default="plain",
    show_default=True,
    help="PressOne success body form.",
)
def simulate(
    port: int, orders: int, seed: int, out: Path, latency_ms: int, faults: float, envelope: str
) -> None:
    """Serve both provider APIs on loopback from a generated dataset, until interrupted."""
    from pipelines.simulator import simulate_main

    # Before the dataset is generated: a port in use is a one-line answer, not a traceback.
    _require_free_port(port)
    try:
        simulate_main(
            port=port,
            orders=orders,
            seed=seed,
            out_dir=out,
            latency_ms=latency_ms,
            fault_rate=faults,
            envelope=envelope,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        _die(f"port {port} on 127.0.0.1: already in use; pick another with --port", 2)


def _require_free_port(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            _die(f"port {port} on 127.0.0.1: {reason}; pick another with --port", 2)


if __name__ == "__main__":
    main()
