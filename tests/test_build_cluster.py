"""A build on a 2-node local Ray cluster gives the same bytes as an in-process build."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from tests.conftest import write_image


def _job_server_installed() -> bool:
    """True when Ray's dashboard and job server are installed (``ray[default]``, the ``cluster`` extra)."""
    try:
        import ray.dashboard.modules.job  # noqa: F401
    except ImportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DASHBOARD_PORT = _free_port() if _job_server_installed() else None


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "include_dashboard": DASHBOARD_PORT is not None}
    if DASHBOARD_PORT is not None:
        head |= {"dashboard_host": "127.0.0.1", "dashboard_port": DASHBOARD_PORT}
    c = Cluster(initialize_head=True, head_node_args=head)
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def test_two_node_cluster_matches_in_process(cluster, tmp_path: Path) -> None:
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    rng = np.random.default_rng(5)
    for c in ("a", "b"):
        for i in range(5):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=16)
    store = Store(tmp_path / "store")
    ingest(tmp_path / "imgs", name="src", store=store, options=IngestOptions(shard_rows=2), workers=0)
    spec = {
        "input": "src",
        "output": "local",
        "seed": 3,
        "stages": [{"op": [{"op": "rotate", "limit": 40}], "copies": 3}],
    }
    local = build(load_recipe(spec), store, workers=0)
    dist = build(load_recipe(spec | {"output": "dist"}), store, workers=2)
    assert local.version == dist.version
    ds = {name: [(store.version_dir(name, v.version) / s.path).read_bytes() for s in v.manifest.shards]
          for name, v in (("local", local), ("dist", dist))}  # fmt: skip
    assert ds["local"] == ds["dist"] and len(ds["local"]) == 5


def _cluster_source(tmp_path: Path) -> Store:
    rng = np.random.default_rng(9)
    for c in ("a", "b", "c"):
        for i in range(6):
            write_image(tmp_path / "imgs" / c / f"{i}.png", rng, size=16)
    store = Store(tmp_path / "store")
    ingest(tmp_path / "imgs", name="src", store=store, options=IngestOptions(shard_rows=2), workers=0)
    return store


def _shard_hashes(store: Store, name: str, version: str) -> list[str]:
    return [s.sha256 for s in store.manifest(name, version).shards]


def test_service_build_on_cluster_matches_local(cluster, tmp_path: Path) -> None:
    """A build submitted over HTTP to a service attached to the cluster: same version id and shard hashes as an
    in-process build of the same recipe."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import time

    from fastapi.testclient import TestClient

    from augsvc.service import ServiceConfig, create_app

    store = _cluster_source(tmp_path)
    spec = {
        "input": "src",
        "output": "viasvc",
        "seed": 4,
        "stages": [{"op": [{"op": "rotate", "limit": 30}], "copies": 2}],
    }
    local = build(load_recipe(spec | {"output": "local"}), store, workers=0)
    app = create_app(ServiceConfig(store=store, db=tmp_path / "db.sqlite3", workers=2, address=cluster.address,
                                   poll_s=0.05))  # fmt: skip
    with TestClient(app, base_url="http://127.0.0.1") as c:  # no tokens: the service answers loopback Hosts only
        sub = c.post("/api/builds", json=spec).json()
        assert sub["version"] == local.version
        t_end = time.monotonic() + 120
        while (b := c.get(f"/api/builds/{sub['id']}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < t_end, b
            time.sleep(0.1)
    assert b["state"] == "succeeded", b
    assert _shard_hashes(store, "viasvc", local.version) == _shard_hashes(store, "local", local.version)
    assert store.verify("viasvc", local.version) == []


def test_worker_node_killed_mid_build_still_completes(cluster, tmp_path: Path) -> None:
    """A worker node removed after the first finished task: Ray retries its tasks elsewhere and the build publishes
    a complete version with the same bytes as an in-process build (never a partial one)."""
    import ray

    store = _cluster_source(tmp_path)
    spec = {
        "input": "src",
        "output": "local",
        "seed": 8,
        "stages": [{"op": [{"op": "rotate", "limit": 30}], "copies": 3}],
    }
    local = build(load_recipe(spec), store, workers=0)
    extra = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    killed = []

    def kill_after_first(done: int, _total) -> None:
        if done == 1 and not killed:
            cluster.remove_node(extra, allow_graceful=False)
            killed.append(done)

    rep = build(load_recipe(spec | {"output": "survived"}), store, workers=3, address=cluster.address,
                progress=kill_after_first)  # fmt: skip
    assert killed and rep.version == local.version
    assert _shard_hashes(store, "survived", rep.version) == _shard_hashes(store, "local", local.version)
    assert store.verify("survived", rep.version) == []


def _augsvc_command() -> list[str]:
    exe = Path(sys.executable).with_name("augsvc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "augsvc.cli"]


def _wait_for_job_server(url: str, timeout_s: float = 60.0) -> None:
    t_end = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < t_end, f"Ray's job server at {url} did not answer within {timeout_s:.0f} s"
        time.sleep(0.5)


@pytest.mark.skipif(DASHBOARD_PORT is None, reason="ray job submit needs ray[default] (pip install '.[cluster]')")
def test_ray_job_submit_build_matches_local(cluster, tmp_path: Path) -> None:
    """`ray job submit -- augsvc build recipe.yaml`: the job's driver runs on the head node, attaches to the cluster
    through RAY_ADDRESS (workers default to the cluster's CPUs) and publishes the same version id and shard hashes
    as an in-process build of the same recipe."""
    import yaml

    store = _cluster_source(tmp_path)
    spec = {
        "input": "src",
        "output": "viajob",
        "seed": 6,
        "stages": [{"op": [{"op": "hflip"}, {"op": "rotate", "limit": 25}], "copies": 2}],
    }
    local = build(load_recipe(spec | {"output": "local"}), store, workers=0)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    url = f"http://127.0.0.1:{DASHBOARD_PORT}"
    _wait_for_job_server(url)
    ray_cli = Path(sys.executable).with_name("ray")
    cmd = [str(ray_cli) if ray_cli.exists() else "ray", "job", "submit", "--address", url, "--",
           *_augsvc_command(), "build", str(recipe), "--store", str(tmp_path / "store"), "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout, out.stdout[-3000:]
    assert local.version in out.stdout, out.stdout[-3000:]  # the job log carries the build's report
    assert "Connected to Ray cluster" in out.stdout, out.stdout[-3000:]  # on the cluster, not in-process
    assert _shard_hashes(store, "viajob", local.version) == _shard_hashes(store, "local", local.version)
    assert store.verify("viajob", local.version) == []
