"""The `esim-recon` command as a user runs it: in a subprocess, from a working directory."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import duckdb
import pytest

CLI = [sys.executable, "-m", "pipelines.cli"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    environment = _environment(env)
    environment["NO_COLOR"] = "1"
    return subprocess.run(
        CLI + args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ESIM", "PRESSONE"))}
    environment.pop("NO_COLOR", None)
    environment.update(env or {})
    return environment


def _cli_on_a_terminal(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    stream: str,
    timeout: float = 300,
    command: list[str] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run the CLI with `stream` (stdout or stderr) on a pseudo-terminal; return the exit code,
    the other stream's bytes and the terminal's bytes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: slave}
    environment = _environment(env) | {"TERM": "xterm-256color"}
    process = subprocess.Popen((command or CLI) + args, cwd=cwd, env=environment, **streams)
    os.close(slave)
    other = process.stderr if stream == "stdout" else process.stdout
    assert other is not None
    received: dict[int, list[bytes]] = {master: [], other.fileno(): []}
    open_fds = set(received)
    deadline = time.monotonic() + timeout
    while open_fds and time.monotonic() < deadline:
        ready, _, _ = select.select(sorted(open_fds), [], [], 0.2)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal's far end closed
                data = b""
            if data:
                received[fd].append(data)
            else:
                open_fds.discard(fd)
    os.close(master)
    returncode = process.wait(timeout=30)
    return returncode, b"".join(received[other.fileno()]), b"".join(received[master])


# The installed script, as a user runs it after `uv sync` (its own path shows in the hints).
SCRIPT = Path(sys.executable).with_name("esim-recon")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One demo run per module in a fresh checkout (a git work tree with the project's
    .gitignore), stderr on a terminal (progress bars), stdout piped."""
    cwd = tmp_path_factory.mktemp("cli_demo")
    shutil.copyfile(PROJECT_ROOT / ".gitignore", cwd / ".gitignore")
    subprocess.run(["git", "init", "-q", str(cwd)], check=True)
    # As after the README's set-up command: the virtual environment's scripts are not on PATH
    # (a test run under `uv run` has them there).
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != SCRIPT.parent.resolve()
    )
    env = {"NO_COLOR": "1", "PATH": path}
    returncode, stdout, terminal = _cli_on_a_terminal(
        ["demo", "--orders", "300", "--dir", "demo"],
        cwd,
        env,
        stream="stderr",
        command=[str(SCRIPT)],
    )
    assert returncode == 0, terminal.decode(errors="replace")[-3000:]
    return {"cwd": cwd, "env": env, "stdout": stdout.decode(), "terminal": terminal.decode()}


@pytest.mark.slow
def test_demo_keeps_everything_under_demo_and_ignored(demo: dict) -> None:
    cwd = demo["cwd"]
    assert sorted(path.name for path in cwd.iterdir()) == [".git", ".gitignore", "demo"]
    home = cwd / "demo" / "dagster_home"
    assert (home / "dagster.yaml").is_file() and (home / "storage").is_dir()
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert untracked == ["?? .gitignore"]


@pytest.mark.slow
def test_the_demo_next_commands_work_as_printed(demo: dict) -> None:
    lines = demo["stdout"].splitlines()
    hints = lines[lines.index("Next:") + 1 :]
    assert len(hints) == 3
    for hint in hints[:2]:
        args = shlex.split(hint)
        assert args[0] == str(SCRIPT)  # not on PATH here: the script's own path
        result = subprocess.run(
            args,
            cwd=demo["cwd"],
            env=_environment({"NO_COLOR": "1"}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (hint, result.stderr)
        assert result.stdout.strip()
    assert "Last run:" in result.stdout and "success" in result.stdout
    ui = shlex.split(hints[2].split("#")[0])
    assert ui[0] == f"DAGSTER_HOME={demo['cwd'] / 'demo' / 'dagster_home'}"
    assert Path(ui[1]).name == "dagster" and Path(ui[1]).is_file() and ui[2] == "dev"


@pytest.mark.slow
def test_demo_runs_end_to_end_and_finds_every_discrepancy_type(demo: dict) -> None:
    tmp_path = demo["cwd"]
    assert "Discrepancies (latest run)" in demo["stdout"]
    demo_dir = tmp_path / "demo"
    truth = json.loads((demo_dir / "ground_truth.json").read_text())
    expected_types = {item["discrepancy_type"] for item in truth["findings"]}
    assert len(expected_types) == 12
    for name in ("reconciliation", "discrepancies", "usage"):
        assert (demo_dir / "exports" / f"{name}.csv").is_file()
    for name in ("usage_daily.png", "discrepancy_trend.png", "charts.html"):
        assert (demo_dir / "exports" / name).stat().st_size > 1000
    with (demo_dir / "exports" / "discrepancies.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["discrepancy_type"] for row in rows} == expected_types
    assert len(rows) == len(truth["findings"])
    # The run ends with the money at risk, as the oracle sums it.
    money = truth["money"]
    for direction, label in (
        ("recoverable", "recoverable now"),
        ("customer_exposure", "customer exposure"),
        ("lost_cost", "lost"),
    ):
        amount = money.get(direction, {}).get("amount", {}).get("USD", "0.00")
        assert f"{label} {amount} USD" in demo["stdout"], direction
    assert "Money at risk (open findings)" in demo["stdout"]
    with (demo_dir / "exports" / "finance_actions.csv").open(newline="") as handle:
        worklist = list(csv.DictReader(handle))
    assert len(worklist) == sum(
        entry["findings"] for direction, entry in money.items() if direction != "none"
    )

    query = _cli(
        [
            "sql",
            "--db",
            "demo/esim_recon.duckdb",
            "--csv",
            "SELECT count(*) AS n FROM reports.discrepancies",
        ],
        cwd=tmp_path,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == str(len(rows))

    write = _cli(
        ["sql", "--db", "demo/esim_recon.duckdb", "DELETE FROM reports.discrepancies"],
        cwd=tmp_path,
    )
    assert write.returncode != 0
    assert "read-only" in write.stderr
    assert len(write.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_shows_progress_on_a_terminal_and_plain_text_on_a_pipe(demo: dict) -> None:
    terminal = demo["terminal"]
    for name in ("esimtrade_orders", "pressone_orders", "esimtrade_order_syncs", "pressone_usage"):
        assert name in terminal
    assert re.search(r"\d+/\d+ requests", terminal)
    assert re.search(r"\d+ pages, \d+ rows", terminal)
    assert not COLOUR.search(terminal)  # NO_COLOR: bars, but no colours
    assert not ANSI.search(demo["stdout"])  # stdout is a pipe: no escapes at all
    assert "requests" not in demo["stdout"]


def _status(demo: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(["status", "--db", "demo/esim_recon.duckdb", *args], demo["cwd"], demo["env"])


@pytest.mark.slow
def test_status_on_the_demo_database(demo: dict) -> None:
    db = demo["cwd"] / "demo" / "esim_recon.duckdb"
    result = _status(demo)
    assert result.returncode == 0, result.stderr
    assert not ANSI.search(result.stdout + result.stderr)
    assert "Last run:" in result.stdout and "success" in result.stdout
    for name in ("esimtrade_orders", "esimtrade_order_syncs", "pressone_orders", "local_orders"):
        assert name in result.stdout

    report = json.loads(_status(demo, "--json").stdout)
    assert report["last_run"]["status"] == "success"
    assert report["last_run"]["wrote_database"] is True
    assert report["last_run"]["duration_seconds"] > 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, rows in report["tables"].items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows, table
        assert set(report["tables"]) >= {"raw.ingest_log", "reports.discrepancies"}
        findings = dict(
            ((kind, severity), count)
            for kind, severity, count in con.execute(
                "SELECT discrepancy_type, severity, count(*) FROM reports.discrepancies "
                "GROUP BY ALL"
            ).fetchall()
        )
        money = {
            (direction, currency): (count, f"{amount:.2f}")
            for direction, currency, count, amount in con.execute(
                "SELECT money_direction, currency, count(*), sum(amount_at_risk) "
                "FROM reports.discrepancies GROUP BY ALL"
            ).fetchall()
        }
        latest = dict(
            con.execute(
                "SELECT asset, strftime(max(finished_at) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S') "
                "FROM raw.ingest_log WHERE status = 'complete' GROUP BY asset"
            ).fetchall()
        )
    finally:
        con.close()
    assert {(f["type"], f["severity"]): f["count"] for f in report["findings"]} == findings
    assert {
        (line["money_direction"], line["currency"]): (line["findings"], line["amount"])
        for line in report["money"]["by_direction"]
    } == money
    assert set(report["money"]["headline"]) == {"recoverable", "customer_exposure", "lost_cost"}
    assert "Money at risk: recoverable now" in result.stdout
    feeds = {feed["source"]: feed for feed in report["feeds"]}
    assert set(feeds) == set(latest)
    for source, feed in feeds.items():
        assert feed["last_status"] == "complete"
        assert feed["last_complete_at"].startswith(latest[source])


@pytest.mark.slow
def test_status_colours_only_on_a_terminal_without_no_color(demo: dict) -> None:
    args = ["status", "--db", "demo/esim_recon.duckdb"]
    env = {k: v for k, v in demo["env"].items() if k != "NO_COLOR"}
    code, _, coloured = _cli_on_a_terminal(args, demo["cwd"], env, stream="stdout")
    assert code == 0
    assert COLOUR.search(coloured.decode())
    code, _, plain = _cli_on_a_terminal(args, demo["cwd"], env | {"NO_COLOR": "1"}, "stdout")
    assert code == 0
    assert "Last run:" in plain.decode() and not COLOUR.search(plain.decode())


def test_status_without_a_database_says_so_in_one_line(tmp_path: Path) -> None:
    result = _cli(["status", "--db", "missing.duckdb"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "no database at missing.duckdb" in line


def test_status_on_an_empty_database_says_no_runs_yet(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    env = {"DAGSTER_HOME": str(tmp_path / "no_home")}
    result = _cli(["status", "--db", "empty.duckdb"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "No runs yet: empty.duckdb holds no loads. Start one with `esim-recon run`."
    ]
    report = json.loads(_cli(["status", "--db", "empty.duckdb", "--json"], tmp_path, env).stdout)
    assert report["last_run"] is None and report["feeds"] == [] and report["findings"] == []
    assert not (tmp_path / "no_home").exists()  # status creates nothing


def test_run_without_configuration_names_the_variable(tmp_path: Path) -> None:
    result = _cli(["run"], cwd=tmp_path)
    assert result.returncode == 2
    assert "ESIMTRADE_BASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_with_a_url_but_no_secret_names_the_missing_secret(tmp_path: Path) -> None:
    result = _cli(["run"], cwd=tmp_path, env={"ESIMTRADE_BASE_URL": "http://127.0.0.1:9/api/v1"})
    assert result.returncode == 2
    assert "ESIMTRADE_ACCESS_CODE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_without_local_orders_file_says_so(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ESIMTRADE_BASE_URL=http://127.0.0.1:9/api/v1\n"
        "ESIMTRADE_ACCESS_CODE=ac-unreached-31\nESIMTRADE_SECRET_KEY=sk-unreached-31\n"
        "ESIM_RECON_LOCAL_ORDERS=missing.csv\n"
    )
    result = _cli(["run"], cwd=tmp_path)
    assert result.returncode == 2
    assert "ESIM_RECON_LOCAL_ORDERS" in result.stderr and "missing.csv" in result.stderr


def test_every_command_has_help_with_examples(tmp_path: Path) -> None:
    for command in ("", "run", "demo", "sql", "export", "simulate", "status"):
        result = _cli([command, "--help"] if command else ["--help"], cwd=tmp_path)
        assert result.returncode == 0
        assert "Example" in result.stdout, command


@pytest.fixture
def orders_db(tmp_path: Path) -> Path:
    db = tmp_path / "orders.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE orders AS SELECT 'B26010112000001' || i AS order_no, "
        "'89440000000000000' || (10000 + i) AS iccid, INTERVAL (i) DAY AS age "
        "FROM range(3) AS t(i)"
    )
    con.close()
    return db


def test_sql_prints_interval_columns(orders_db: Path) -> None:
    for query in ("SELECT INTERVAL 1 DAY AS waited", "SELECT age FROM orders ORDER BY age"):
        result = _cli(["sql", "--db", str(orders_db), query], cwd=orders_db.parent)
        assert result.returncode == 0, result.stderr
        assert "1 day" in result.stdout
    csv_result = _cli(
        ["sql", "--db", str(orders_db), "--csv", "SELECT age FROM orders"], orders_db.parent
    )
    assert csv_result.returncode == 0, csv_result.stderr
    assert csv_result.stdout.splitlines()[:2] == ["age", "00:00:00"]


def test_sql_writes_no_file_anywhere(orders_db: Path) -> None:
    for query in (
        "COPY (SELECT 1) TO 'copied.csv'",
        "COPY orders TO 'copied.parquet' (FORMAT parquet)",
        "EXPORT DATABASE 'exported'",
        "ATTACH 'other.duckdb' AS other",
    ):
        result = _cli(["sql", "--db", str(orders_db), query], cwd=orders_db.parent)
        assert result.returncode == 2, (query, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
        assert "cannot" in result.stderr
    assert sorted(path.name for path in orders_db.parent.iterdir()) == ["orders.duckdb"]


@pytest.mark.parametrize("query", ["", "   ", ";", "/* only a comment */"])
def test_sql_without_a_statement_is_an_error(orders_db: Path, query: str) -> None:
    result = _cli(["sql", "--db", str(orders_db), query], cwd=orders_db.parent)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("esim-recon: ") and "query" in line


def test_sql_piped_prints_every_value_whole(orders_db: Path) -> None:
    result = _cli(
        [
            "sql",
            "--db",
            str(orders_db),
            "SELECT order_no, iccid, order_no AS again, iccid AS "
            "again_iccid, order_no || iccid AS both_keys FROM orders ORDER BY 1",
        ],
        cwd=orders_db.parent,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["order_no", "iccid", "again", "again_iccid", "both_keys"]
    assert lines[1].split("\t")[:2] == ["B260101120000010", "8944000000000000010000"]
    assert lines[1].split("\t")[4] == "B2601011200000108944000000000000010000"
    assert len(lines) == 4


def test_simulate_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli(["simulate", "--port", str(port), "--orders", "10"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"esim-recon: port {port} on 127.0.0.1: already in use; pick another with --port"
    )
    assert not (tmp_path / "simulator").exists()


def test_run_with_a_malformed_selection_says_so_in_one_line(tmp_path: Path) -> None:
    env = {
        "ESIMTRADE_BASE_URL": "http://127.0.0.1:9/api/v1",
        "ESIMTRADE_ACCESS_CODE": "ac-unreached-32",
        "ESIMTRADE_SECRET_KEY": "sk-unreached-32",
        "ESIM_RECON_LOCAL_ORDERS": str(PROJECT_ROOT / "examples" / "local_orders.template.csv"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    result = _cli(["run", "--select", "pressone_orders+("], cwd=tmp_path, env=env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("esim-recon: --select 'pressone_orders+(' is not a selection")
