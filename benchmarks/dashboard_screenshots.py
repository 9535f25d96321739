"""Screenshots of what a reviewer sees in MLflow's UI after a workflow run, taken in headless Chromium.

    python benchmarks/dashboard_screenshots.py --tracking-uri sqlite:///mlflow.db --out benchmarks/results/dashboard

It starts `mlflow server` on the store (loopback only), finds the newest workflow run, and saves:
  parent-run.png         the workflow's parent run: description (the summary), metrics, parameters, model links
  runs-table.png         the experiment's runs table
  compare.png            MLflow's Compare view of the evaluation's two runs ("evaluation: parent" / "child")
  registered-model.png   the registered version (description, tags, source run)
Needs Chromium (Debian: `apt-get install chromium`); `--chromium` names another binary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

# The flags a root user in a closed network needs: no sandbox, no GPU, no background connections.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
        if proc.poll() is not None:
            raise SystemExit(f"mlflow server exited with code {proc.returncode}")
    proc.terminate()
    raise SystemExit("mlflow server did not answer /health within 120 s")


def screenshot(chromium: str, url: str, out: Path, size: str, wait_ms: int) -> None:
    user_dir = out.parent / ".chromium-profile"
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_dir}", f"--window-size={size}",
           f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    shutil.rmtree(user_dir, ignore_errors=True)
    print(f"{out}  <-  {url}")


def targets(uri: str, base: str) -> dict[str, str]:
    """The pages to shoot, from the store: the newest workflow run, its evaluation runs, its registered model."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=500)]
    workflows = [r for r in runs if "puzzle_ray.workflow" in r.data.tags and "mlflow.parentRunId" not in r.data.tags]
    if not workflows:
        raise SystemExit(f"{uri}: no workflow run in this store")
    run = max(workflows, key=lambda r: r.info.start_time)
    exp = run.info.experiment_id
    stage_ids = {r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id}
    roles = {r.data.tags["puzzle_ray.eval_role"]: r.info.run_id for r in runs
             if r.data.tags.get("mlflow.parentRunId") in stage_ids and "puzzle_ray.eval_role" in r.data.tags}
    pages = {"parent-run": f"{base}/#/experiments/{exp}/runs/{run.info.run_id}",
             "runs-table": f"{base}/#/experiments/{exp}/runs"}
    if {"parent", "child"} <= roles.keys():
        ids = urllib.parse.quote(json.dumps([roles["parent"], roles["child"]]))
        pages["compare"] = f"{base}/#/compare-runs?runs={ids}&experiments={urllib.parse.quote(json.dumps([exp]))}"
    model = run.data.tags.get("puzzle_ray.registered_model")  # models:/<name>@<alias>
    version = run.data.tags.get("puzzle_ray.registered_version")
    if model and version:
        name = model.removeprefix("models:/").split("@")[0]
        pages["registered-model"] = f"{base}/#/models/{urllib.parse.quote(name)}/versions/{version}"
    return pages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="the MLflow store of the run")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/dashboard"), help="folder for the PNGs")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium", help="the Chromium binary")
    p.add_argument("--size", default="1600,1200", help="window size, W,H")
    p.add_argument("--wait-ms", type=int, default=25000, help="virtual time the page gets to load")
    args = p.parse_args()
    if not shutil.which(args.chromium):
        raise SystemExit(f"--chromium {args.chromium}: not found (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(args.tracking_uri, port)
    try:
        for name, url in targets(args.tracking_uri, f"http://127.0.0.1:{port}").items():
            screenshot(args.chromium, url, args.out / f"{name}.png", args.size, args.wait_ms)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
