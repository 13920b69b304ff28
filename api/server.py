"""Running the API: checks done before uvicorn starts, so that mistakes are one-line errors.

``serve()`` refuses a bind address off this machine unless asked (``allow_remote``), a port
already taken, and a target without the CRM schema; it brings the schema up to this
crmkit's head (the API's tables are revision 0003), then hands over to uvicorn, in a process
of its own whose environment carries the target (never a command line, nor this process's
``os.environ``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from crmkit.errors import CrmkitError, TargetError

TARGET_ENV = "CRMKIT_API_TARGET"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: what uvicorn runs in each worker: the app over the worker's Settings.from_env()
APP_FACTORY = "crmkit.api.app:app_from_env"


class ServeError(CrmkitError):
    """The API cannot be started as asked: address not allowed, port taken."""


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without brackets)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_url(url: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL on a loopback address, else ServeError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServeError(f"--host {url!r} is not an http:// URL: give e.g. http://127.0.0.1:8000")
    if not is_loopback(parts.hostname):
        raise ServeError(
            f"--host {url!r} is not a loopback address: load is only ever aimed at "
            "127.0.0.0/8, localhost or ::1 (tunnel a remote API to a local port)"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ServeError(f"--host {url!r}: the port is not a number") from None
    return url.strip().rstrip("/")


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def prepare_target(url: str) -> str:
    """Check that ``url`` holds a CRM schema and bring it to this crmkit's head; returns the revision."""
    from sqlalchemy.engine import make_url

    from crmkit.db.url import mask_url
    from crmkit.schema import versions

    try:
        parsed = make_url(url)
    except Exception:
        raise TargetError(f"target {mask_url(url)}: not a database URL (e.g. sqlite:///crm.db)") from None
    if parsed.get_backend_name() == "sqlite" and not os.path.exists(parsed.database or ":memory:"):
        raise TargetError(
            f"target {mask_url(url)}: no such SQLite file; migrate data into it first "
            f"(crmkit migrate run MAPPING --target URL)"
        )
    engine = versions.connect(url)
    try:
        rev = versions.current(engine)
    finally:
        engine.dispose()
    if rev is None:
        raise TargetError(
            f"target {mask_url(url)} has no CRM schema: migrate data into it first "
            f"(crmkit migrate run MAPPING --target URL) or create it (crmkit db upgrade)"
        )
    return versions.ensure_schema(url)[1]


def serve(
    target: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    allow_remote: bool = False,
    log_level: str = "warning",
    access_log: bool = False,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run the API over ``target`` until interrupted; ``announce`` hears the URL once checks pass."""
    if not allow_remote and not is_loopback(host):
        raise ServeError(
            f"--host {host} would serve the CRM beyond this machine: pass --allow-remote "
            "if that is intended (and put the API behind TLS)"
        )
    if workers < 1:
        raise ServeError("--workers must be at least 1")
    check_port_free(host, port)
    prepare_target(target)
    if announce:
        announce(f"http://{host}:{port}")
    run_uvicorn(target, host, port, workers, log_level, access_log)


def uvicorn_command(
    host: str, port: int, workers: int, log_level: str = "warning", access_log: bool = False
) -> list[str]:
    """The command of a uvicorn process serving the API (the target goes in its environment: :func:`api_env`)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APP_FACTORY,
        "--factory",
        "--host",
        host.strip("[]"),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
        "--access-log" if access_log else "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


def api_env(target: str, metrics_dir: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an API process: this one's, ``extra``, the target and where the workers add up
    their metrics (prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` when a worker imports it)."""
    return {**os.environ, **(extra or {}), TARGET_ENV: target, METRICS_ENV: metrics_dir}


@contextmanager
def metrics_dir() -> Iterator[str]:
    """A fresh directory for the workers' metrics, removed at the end."""
    path = tempfile.mkdtemp(prefix="crmkit-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_uvicorn(
    target: str, host: str, port: int, workers: int, log_level: str = "warning", access_log: bool = False
) -> None:
    """uvicorn with ``workers`` processes over ``target`` (no checks) until it ends; the workers' metrics add up.

    uvicorn runs in a process of its own, whose environment (never the command line) carries the
    target; SIGINT, SIGTERM and SIGHUP to this process stop it gracefully.
    """
    with metrics_dir() as metrics:
        cmd = uvicorn_command(host, port, workers, log_level, access_log)
        proc = subprocess.Popen(cmd, env=api_env(target, metrics), start_new_session=True)
        try:
            with _forwarding_signals(proc):
                code = proc.wait()
        finally:
            stop_processes([proc])
    if code > 0:
        raise ServeError(f"uvicorn stopped with exit code {code}: see its messages above")


@contextmanager
def _forwarding_signals(proc: subprocess.Popen[Any]) -> Iterator[None]:
    """Pass the signals that stop this process on to ``proc`` (in a session of its own, it gets no Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def background_api(
    target: str,
    workers: int = 1,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """The API over ``target`` in a process of its own on a free loopback port; yields its URL.

    No checks (the caller has done what ``serve`` would); the URL of the target goes through
    the process's environment, never the command line.  The process is stopped when the block ends.
    """
    port = free_port()
    log: IO[str] = open(log_path, "w+", encoding="utf-8") if log_path else tempfile.TemporaryFile("w+")
    url = f"http://127.0.0.1:{port}"
    with metrics_dir() as metrics:
        cmd = uvicorn_command("127.0.0.1", port, workers)
        proc = subprocess.Popen(
            cmd, env=api_env(target, metrics, env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_healthy(url, proc, log, timeout)
            yield url
        finally:
            stop_processes([proc])
            log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: IO[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = " ".join(log.read().strip().splitlines()[-1:])
            raise ServeError(f"the API did not start: {tail or f'exit code {proc.returncode}'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    stop_processes([proc])
    raise ServeError(f"the API did not answer {url}/health within {timeout:.0f} s")


def stop_processes(procs: list[subprocess.Popen[Any]], grace_s: float = 10.0) -> None:
    """SIGTERM the process group of each process still running; SIGKILL after ``grace_s``."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(p, signal.SIGKILL)
            p.wait()


def _signal(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own group (start_new_session=True): the process and its children
    except ProcessLookupError:
        pass
