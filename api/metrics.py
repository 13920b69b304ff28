"""``/metrics`` in Prometheus text format: requests and latencies per route template.

With several uvicorn workers the figures of all of them are added up through
prometheus_client's multiprocess mode: ``crmkit serve`` starts the workers with
``PROMETHEUS_MULTIPROC_DIR`` pointing at a fresh directory in their environment (prometheus_client
reads it when it is imported), and the app is given the same directory (``Metrics(directory)``).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The API's counters and histograms, in a registry of its own."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        #: where all workers' figures are (prometheus_client's multiprocess mode), or None: this process's
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crmkit_api_requests", "HTTP requests answered.", ("method", "route", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "crmkit_api_request_duration_seconds",
            "Time to answer a request.",
            ("method", "route"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        #: the labelled children, looked up once per label set (``labels()`` takes a lock and
        #: builds a key on every call)
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = self.requests.labels(method, route, str(status))
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[(method, route)] = self.latency.labels(method, route)
        counter.inc()
        histogram.observe(seconds)

    def render(self) -> bytes:
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task): times every HTTP request by route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "(unmatched)"
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)
