"""A build on a 2-node local Ray cluster gives the same bytes as an in-process build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from tests.conftest import write_image


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
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
