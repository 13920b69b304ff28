"""``python -m crmkit.api --port N [--workers N]``: uvicorn over the target in ``CRMKIT_API_TARGET``, no checks.

For a process started with the target in its environment, after the checks ``crmkit serve``
would do (crmkit's own, such as the load-test runner's, start uvicorn directly:
``crmkit.api.server.background_api``); people use ``crmkit serve``.
"""

from __future__ import annotations

import argparse

from crmkit.api.server import TARGET_ENV, is_loopback, run_uvicorn
from crmkit.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m crmkit.api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    target = Settings.from_env().api_target
    if target is None or not is_loopback(args.host):
        parser.error(f"needs {TARGET_ENV} and a loopback --host; people use `crmkit serve`")
    run_uvicorn(target, args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
