"""The private local Ray cluster (`puzzle_ray.cluster.connect`) listens on the loopback interface only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from puzzle_ray import ui

DRIVER = """
import json, os, time
import psutil, ray
from ray._private import ray_constants
from puzzle_ray.cluster import SINGLE_MACHINE, connect

connect(num_cpus=1, object_store_mb=128)
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
deadline, sockets = time.monotonic() + 60, []
while time.monotonic() < deadline:
    sockets = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            # basenames only: the install path (longer on CI) must not push the program's name out of view
            name = " ".join(os.path.basename(a) for a in proc.cmdline())[:120]
            sockets += [[c.laddr.ip, c.laddr.port, name] for c in proc.net_connections(kind="inet")
                        if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    if any("agent" in s[2].lower() for s in sockets):  # the dashboard agent, which serves the metrics, is up
        break
    time.sleep(1)
print("OUT", json.dumps({"sockets": sockets, "node": ray.util.get_node_ip_address(),
                         "env_after": os.environ.get(SINGLE_MACHINE), "flag_after": ray_constants.ENABLE_RAY_CLUSTER}))
ray.shutdown()
"""
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_local_cluster_listens_on_loopback_only(tmp_path):
    """Without single-machine mode Ray's GCS, raylet, workers and three Prometheus endpoints listen on the
    machine's address or all interfaces (measured with Ray 2.60)."""
    env = {k: v for k, v in os.environ.items() if k not in ui.QUIET_ENV and k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", DRIVER], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("OUT "))[4:])
    names = " ".join(s[2] for s in result["sockets"])
    assert "gcs_server" in names and "raylet" in names and "agent" in names.lower(), result["sockets"]
    exposed = [s for s in result["sockets"] if s[0] not in LOOPBACK]
    assert not exposed, exposed
    assert result["node"] == "127.0.0.1"
    # the driver's own view is restored: a later connection to a real cluster announces its real address
    assert result["env_after"] is None and result["flag_after"] is True
