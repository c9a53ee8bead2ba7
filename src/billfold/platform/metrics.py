"""Prometheus metrics, correct with one uvicorn worker or several.

With several workers each is a separate process, so metric values live in files under
PROMETHEUS_MULTIPROC_DIR and a scrape of any worker sums them all. prometheus_client decides
between in-memory and file-backed values when it is first imported, so `serve` calls
`prepare_multiprocess_dir` before it starts the workers, which inherit the variable.
"""

from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from billfold.config import Settings
from billfold.platform.processes import process_exists

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "billfold_http_requests",
    "HTTP requests served, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "billfold_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS_SHED = Counter(
    "billfold_requests_shed",
    "API requests refused with 503 overloaded, before any work, because the process had "
    "requests_in_flight_max requests in flight (api.admission).",
)

LOG_WARNINGS = Counter(
    "billfold_log_warnings",
    "Warnings logged, by logger and message (its template, before any values are put in), "
    "whether written or counted into a repeat line (platform.logging.RepeatedWarnings).",
    ["logger", "event"],
)

RISK_ASSESSMENT_DURATION = Histogram(
    "billfold_risk_assessment_seconds",
    "Time the risk engine took to score a movement before money moved, by kind of movement.",
    ["kind"],
    buckets=(
        0.0005,
        0.001,
        0.0015,
        0.002,
        0.003,
        0.004,
        0.005,
        0.0075,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        1.0,
    ),
)

RISK_TIMEOUTS = Counter(
    "billfold_risk_timeouts",
    "Movements whose scoring overran its time budget, by kind of movement: let through "
    "unscored, or refused from the fail-closed amount (risk_fail_closed_minor) up.",
    ["kind"],
)


def prepare_multiprocess_dir(settings: Settings) -> Path | None:
    """Give this server's workers a fresh shared metrics folder when there is more than one.

    The folder is per supervising process (`data_dir/prometheus/<pid>`), since two servers may
    share a data dir; folders left by servers that are gone are removed. Returns the folder, or
    None for a single worker, whose metrics stay in memory.
    """
    if settings.workers <= 1:
        return None
    parent = settings.data_dir.resolve() / "prometheus"
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.iterdir():
        if stale.name.isdigit() and not process_exists(int(stale.name)):
            shutil.rmtree(stale, ignore_errors=True)
    folder = parent / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    os.environ[MULTIPROC_ENV] = str(folder)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape_registry() -> CollectorRegistry:
    """The registry to expose: every worker's values when multiprocess, else this process's."""
    if not is_multiprocess():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_latest() -> tuple[bytes, str]:
    """The exposition body and its content type, for GET /metrics."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST


def mark_worker_exited() -> None:
    """Tell the multiprocess collector this worker is gone (its live gauges stop counting)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
