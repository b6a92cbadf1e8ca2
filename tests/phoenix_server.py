"""Arize Phoenix on 127.0.0.1 for tests: started from the venv scripts/phoenix_venv.sh makes,
with its data in a temporary folder, read back through its REST API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

VERSION = "20.26.1"
STARTUP_S = 90.0
# Phoenix binds its gRPC collector to every interface and has no setting for it; these tests
# reach nothing but loopback, so the launcher narrows that one bind to 127.0.0.1.
LAUNCHER = """
import sys
from grpc.aio import _server

_bind = _server.Server.add_insecure_port
_server.Server.add_insecure_port = lambda self, address: _bind(
    self, address.replace("[::]", "127.0.0.1")
)
from phoenix.server.main import main

sys.argv = ["phoenix", "serve"]
sys.exit(main())
"""


def venv() -> Path:
    """Where scripts/phoenix_venv.sh puts Phoenix (RLM_PHOENIX_VENV overrides it)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("RLM_PHOENIX_VENV") or cache / "rlm-tracer" / f"phoenix-{VERSION}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Phoenix:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Phoenix:
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(self.folder),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(_free_port()),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        log = (self.folder / "phoenix.log").open("wb")
        self.process = subprocess.Popen(
            [str(venv() / "bin" / "python"), "-c", LAUNCHER],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                tail = (self.folder / "phoenix.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Phoenix did not start:\n{tail}")
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def spans(self, project: str = "default") -> list[dict[str, Any]]:
        """Every span of a project, page by page."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            url = f"{self.base}/v1/projects/{project}/spans?limit=500"
            if cursor:
                url += f"&cursor={cursor}"
            with urllib.request.urlopen(url, timeout=10) as r:
                page = json.load(r)
            found += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return found
