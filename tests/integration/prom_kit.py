"""A real Prometheus server for integration tests: start it against one scrape target with
forgeoned's rules loaded, and read its API (bounded waits, no sleeps on a condition)."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from waiting import poll_until, stop_process

RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus" / "forgeoned-rules.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    result: list[dict[str, Any]] = get_json(url)["data"]["result"]
    return result


def firing_alerts(base: str, name: str) -> list[dict[str, Any]]:
    """The alerts named ``name`` that are firing now."""
    data = get_json(f"{base}/api/v1/alerts")["data"]["alerts"]
    return [a for a in data if a["labels"]["alertname"] == name and a["state"] == "firing"]


@contextmanager
def prometheus(workdir: Path, target_port: int) -> Iterator[str]:
    """Run Prometheus scraping ``127.0.0.1:target_port`` every second; yields its base URL."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        "  - job_name: forgeoned\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        poll_until(
            lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200,
            60,
            "Prometheus ready",
            tolerate=(OSError,),
        )
        yield base
    finally:
        stop_process(proc)
