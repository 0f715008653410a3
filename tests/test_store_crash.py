"""Crash and race safety of publishing, checked from fresh processes."""

import subprocess
import sys
import textwrap

from pipelines.store import Store

PUBLISH = textwrap.dedent(
    """
    import os, sys
    import pyarrow as pa
    from pipelines.store import Store
    store = Store(sys.argv[1])
    st = store.staging("ds")
    st.write_shard(pa.table({"x": list(range(1000))}))
    if sys.argv[2] == "crash":
        os._exit(9)  # killed after writing shards, before the manifest and rename
    store.publish(st, dataset="ds", definition={"k": 1}, modality="tabular",
                  class_names=[])
    """
)


def _run(root, mode):
    return subprocess.Popen([sys.executable, "-c", PUBLISH, str(root), mode])


def test_killed_publish_leaves_no_visible_version(tmp_path):
    assert _run(tmp_path, "crash").wait() == 9
    assert Store(tmp_path).versions("ds") == []


def test_concurrent_publish_of_same_version_is_safe(tmp_path):
    procs = [_run(tmp_path, "ok") for _ in range(4)]
    assert [p.wait() for p in procs] == [0, 0, 0, 0]
    store = Store(tmp_path)
    (version,) = store.versions("ds")
    assert store.verify("ds", version) == []
    assert store.resolve("ds") == ("ds", version)
