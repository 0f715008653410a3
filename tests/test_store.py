import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.store import Store
from schemas.errors import AugsvcError


def _publish(store: Store, values: list[int]):
    st = store.staging("ds")
    labels = pa.array([0] * len(values), pa.int32())  # every row is class "a"
    st.write_shard(pa.table({"sample_id": [str(v) for v in values], "label": labels}))
    return store.publish(
        st,
        dataset="ds",
        definition={"kind": "test", "values": values},
        modality="tabular",
        class_names=["a"],
        rows_per_class={"a": len(values)},
    )


def test_publish_is_content_addressed_and_idempotent(tmp_path):
    store = Store(tmp_path)
    r1 = _publish(store, [1, 2, 3])
    r2 = _publish(store, [1, 2, 3])
    assert not r1.up_to_date and r2.up_to_date
    assert r1.manifest.version == r2.manifest.version
    r3 = _publish(store, [1, 2, 4])
    assert r3.manifest.version != r1.manifest.version
    assert store.versions("ds") == sorted([r1.manifest.version, r3.manifest.version])
    assert store.resolve("ds") == ("ds", r3.manifest.version)
    assert not list((tmp_path / "ds" / ".staging").iterdir())


def test_pyarrow_alone_reads_every_shard(tmp_path):
    store = Store(tmp_path)
    m = _publish(store, [5, 6]).manifest
    d = tmp_path / "ds" / m.version
    manifest = json.loads((d / "manifest.json").read_text())
    rows = sum(pq.read_table(d / s["path"]).num_rows for s in manifest["shards"])
    assert rows == 2


def test_tampered_shard_fails_verify_and_names_it(tmp_path):
    store = Store(tmp_path)
    m = _publish(store, [1, 2]).manifest
    assert store.verify("ds", m.version) == []
    shard = tmp_path / "ds" / m.version / "shards" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from augsvc.cli import main; main()",
            "verify",
            "ds",
            "--store",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "part-00000.parquet" in out.stdout


def test_unpublished_staging_is_invisible(tmp_path):
    store = Store(tmp_path)
    st = store.staging("ds")
    st.write_shard(pa.table({"x": [1]}))
    # a crash here (before publish) leaves no visible version
    assert store.versions("ds") == []
    with pytest.raises(AugsvcError, match="no dataset .ds."):
        store.resolve("ds")


def test_bad_names_and_refs_are_clear(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(AugsvcError, match="not valid"):
        store.staging("../evil")
    with pytest.raises(AugsvcError, match="ds@nope: no dataset 'ds'"):
        store.resolve("ds@nope")
