"""Running the simulator: in a background thread for tests and the demo, or in the foreground for
``esim-recon simulate``."""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, TypedDict, Unpack

import uvicorn

from pipelines.simulator.app import (
    ESIMTRADE_ROOT,
    PRESSONE_ROOT,
    Credentials,
    Envelope,
    SimulatorState,
    SimulatorStats,
    create_app,
)
from pipelines.simulator.dataset import Dataset, generate_dataset
from pipelines.simulator.faults import FaultConfig, RateLimits

LOCAL_ORDERS_FILE = "local_orders.csv"
GROUND_TRUTH_FILE = "ground_truth.json"


class RunningSimulator:
    """A simulator answering on ``host:port``; see ``serve``."""

    def __init__(self, host: str, port: int, state: SimulatorState) -> None:
        self.host = host
        self.port = port
        self.state = state

    @property
    def dataset(self) -> Dataset:
        return self.state.dataset

    @property
    def stats(self) -> SimulatorStats:
        return self.state.stats

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def esimtrade_base_url(self) -> str:
        return self.base_url + ESIMTRADE_ROOT

    @property
    def pressone_base_url(self) -> str:
        return self.base_url + PRESSONE_ROOT

    def env(self) -> dict[str, str]:
        """The contract's environment variables for a pipeline run against this simulator."""
        creds = self.state.credentials
        return {
            "PRESSONE_BASE_URL": self.pressone_base_url,
            "PRESSONE_CLIENT_ID": creds.client_id,
            "PRESSONE_CLIENT_SECRET": creds.client_secret,
            "ESIMTRADE_BASE_URL": self.esimtrade_base_url,
            "ESIMTRADE_ACCESS_CODE": creds.access_code,
            "ESIMTRADE_SECRET_KEY": creds.secret_key,
        }


class SimulatorOptions(TypedDict, total=False):
    """How the server behaves; what ``serve`` and ``run_forever`` take besides where to listen.

    - ``latency_ms`` (0): added before every provider answer.
    - ``rate_limits`` (``None``: ``RateLimits()``, loose defaults; ``RateLimits.unlimited()``
      switches them off).
    - ``faults`` (``None``: no faults): see ``FaultConfig``.
    - ``pressone_envelope`` (``"plain"``): ``"wrapped"`` puts PressOne's success bodies in its
      ``{"success": true, "data": ...}`` envelope.
    - ``token_ttl_seconds`` (366 days): the lifetime of PressOne bearer tokens.
    - ``credentials`` (``Credentials()``): what both providers accept.
    """

    latency_ms: float
    rate_limits: RateLimits | None
    faults: FaultConfig | None
    pressone_envelope: Envelope
    token_ttl_seconds: int
    credentials: Credentials | None


def _prepare(
    state: SimulatorState, host: str, port: int
) -> tuple[socket.socket, uvicorn.Server, RunningSimulator]:
    """Bind ``host:port`` (0 picks a free port) and build a server for it; nothing runs yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=bound_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    return sock, uvicorn.Server(config), RunningSimulator(host, bound_port, state)


@contextmanager
def serve(
    dataset: Dataset,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    startup_timeout: float = 15.0,
    **options: Unpack[SimulatorOptions],
) -> Iterator[RunningSimulator]:
    """Serve ``dataset`` on ``host:port`` (0 picks a free port) from a background thread, with
    the ``SimulatorOptions`` given.

    Returns once the server answers; stops it when the block ends.
    """
    state = SimulatorState(dataset, **options)
    sock, server, running = _prepare(state, host, port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="esim-simulator", daemon=True
    )
    thread.start()
    try:
        _wait_until_up(running, thread, startup_timeout)
        yield running
    finally:
        state.closing.set()
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # pragma: no cover - only when a handler hangs
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


def _wait_until_up(running: RunningSimulator, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = running.base_url + "/_sim/health"
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the simulator's server thread stopped during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback URL we built
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.02)
    raise RuntimeError(f"the simulator did not answer on {url} within {timeout:.0f} s")


def run_forever(
    dataset: Dataset,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    out_dir: Path | None = None,
    on_ready: Callable[[RunningSimulator], None] | None = None,
    **options: Unpack[SimulatorOptions],
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C), with the ``SimulatorOptions`` given.
    ``on_ready`` is called once the port is bound. With ``out_dir``, every
    ``POST /_sim/advance`` rewrites the ground truth file there."""
    on_advance = None
    if out_dir is not None:
        truth_file = out_dir / GROUND_TRUTH_FILE

        def on_advance(advanced: Dataset) -> None:
            advanced.write_ground_truth(truth_file)

    state = SimulatorState(dataset, on_advance=on_advance, **options)
    sock, server, running = _prepare(state, host, port)
    if on_ready is not None:
        on_ready(running)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises the Ctrl-C
        pass
    finally:
        state.closing.set()
        sock.close()


def simulate_main(
    port: int = 8080,
    orders: int = 1000,
    seed: int = 7,
    out_dir: str | Path | None = None,
    latency_ms: float = 0,
    fault_rate: float = 0.0,
    envelope: Envelope = "plain",
    *,
    stream: TextIO | None = None,
) -> None:
    """``esim-recon simulate``: write the local orders and ground truth, print the environment
    to point the pipeline here, then serve until interrupted."""
    out = stream or sys.stdout
    target = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="esim-simulator-"))
    target.mkdir(parents=True, exist_ok=True)
    # The same world whatever the fault rate; drift orders are simply visible when no fault is.
    dataset = generate_dataset(seed, orders, drift_orders=max(2, orders // 50))
    local_path = dataset.write_local_orders(target / LOCAL_ORDERS_FILE).resolve()
    truth_path = dataset.write_ground_truth(target / GROUND_TRUTH_FILE).resolve()
    faults = FaultConfig.uniform(fault_rate) if fault_rate > 0 else None

    def announce(running: RunningSimulator) -> None:
        lines = [f"export {name}={value}" for name, value in running.env().items()]
        lines.append(f"export ESIM_RECON_LOCAL_ORDERS={local_path}")
        lines += [
            f"# ground truth: {truth_path}",
            f"# next epoch:   curl -X POST {running.base_url}/_sim/advance"
            "  (rewrites the ground truth)",
            f"# stats:        curl {running.base_url}/_sim/stats",
            "# Ctrl-C stops the simulator.",
        ]
        print("\n".join(lines), file=out, flush=True)

    run_forever(
        dataset,
        port=port,
        latency_ms=latency_ms,
        faults=faults,
        pressone_envelope=envelope,
        out_dir=target,
        on_ready=announce,
    )
