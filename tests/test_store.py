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


def _rows(split: str, labels: list, src: list | None = None) -> pa.Table:
    cols = {"sample_id": [f"{split}{i}" for i in range(len(labels))], "label": pa.array(labels, pa.int32()),
            "split": [split] * len(labels)}  # fmt: skip
    table = pa.table(cols)
    if src is not None:  # a translation shard whose src may be null (monolingual rows)
        table = table.append_column(pa.field("src", pa.string(), nullable=True), pa.array(src, pa.string()))
        table = table.append_column(pa.field("tgt", pa.string(), nullable=False), pa.array(["t"] * len(src)))
    return table


def test_publish_counts_the_staged_shards_and_verify_recounts_them(tmp_path):
    """The job hands over shards only: rows per split, per split and class, unlabelled rows and monolingual rows
    are the staging folder's tally, and verify's tally of the published shards agrees."""
    store = Store(tmp_path)
    st = store.staging("ds")
    st.write_shard(_rows("train", [0, 1, 1, None]), "train")
    st.write_shard(_rows("val", [None, None]), "val")  # a split with rows but no label
    pq.write_table(_rows("train", [2]), tmp_path / "one.parquet")  # a file made elsewhere, copied in (a build's)
    st.add_file(str(tmp_path / "one.parquet"))
    m = store.publish(st, dataset="ds", definition={"k": 1}, modality="text", class_names=["a", "b", "c"]).manifest
    assert m.rows == 7 and m.rows_per_split == {"train": 5, "val": 2}
    assert m.splits == {"train": {"a": 1, "b": 2, "c": 1}, "val": {}}
    assert m.rows_per_class == {"a": 1, "b": 2, "c": 1} and m.monolingual is None
    assert [s.split for s in m.shards] == ["train", "val", "train"]  # add_file: the one split of its rows
    assert store.verify("ds", m.version) == []

    st = store.staging("tr")
    st.write_shard(_rows("train", [None] * 3, src=["x", None, None]), "train")
    st.write_shard(_rows("test", [None], src=["y"]), "test")
    m = store.publish(st, dataset="tr", definition={"k": 2}, modality="translation", class_names=[]).manifest
    assert m.monolingual == {"test": 0, "train": 2} and m.rows_per_split == {"test": 1, "train": 3}
    assert store.verify("tr", m.version) == []
    path = store.version_dir("tr", m.version) / "manifest.json"
    path.write_text(path.read_text().replace('"train": 2', '"train": 1'))
    assert store.verify("tr", m.version) == [
        "monolingual (rows with no source, per split) differs from the rows in the shards"
    ]
    st = store.staging("ds")  # a shard its writer gave no split: its rows count by class, not in rows_per_split
    st.write_shard(_rows("train", [0, 0]))
    m = store.publish(st, dataset="ds", definition={"k": 3}, modality="text", class_names=["a"]).manifest
    assert m.shards[0].split is None and m.rows_per_split == {} and m.splits == {"train": {"a": 2}}
    assert store.verify("ds", m.version) == []


def test_publish_takes_no_counts_and_staging_checks_its_writers(tmp_path):
    store = Store(tmp_path)
    st = store.staging("ds")
    st.write_shard(_rows("train", [0]))
    with pytest.raises(ValueError, match="rows_per_class, splits are counted from the staged shards"):
        store.publish(st, dataset="ds", definition={"k": 1}, modality="text", class_names=["a"],
                      extra={"splits": {}, "rows_per_class": {}})  # fmt: skip
    with pytest.raises(AugsvcError, match=r"holds 1 rows, its writer said 2"):
        st.add_shard_bytes(pq_bytes(_rows("train", [0])), 2)
    with pytest.raises(AugsvcError, match=r"holds rows of another split than 'val'"):
        st.write_shard(_rows("train", [0]), "val")
    st = store.staging("ds")
    st.write_shard(_rows("train", [5]))
    with pytest.raises(AugsvcError, match=r"labels \[5\] have no entry in class_names \(1 classes\)"):
        store.publish(st, dataset="ds", definition={"k": 3}, modality="text", class_names=["a"])


def pq_bytes(table: pa.Table) -> bytes:
    from pipelines.storeshards import write_parquet

    return write_parquet(table)


def test_open_shard_checks_size_sha256_and_footer_rows(tmp_path):
    store = Store(tmp_path)
    m = _publish(store, [1, 2, 3]).manifest
    info = m.shards[0]
    assert store.read_verified_shard("ds", m.version, info, ["label", "nope"]).column_names == ["label"]
    assert store.open_shard("ds", m.version, info).metadata.num_rows == 3
    with pytest.raises(AugsvcError, match=r"holds 3 rows, the manifest says 2; run 'augsvc verify'"):
        store.open_shard("ds", m.version, info.model_copy(update={"rows": 2}))
    shard = store.version_dir("ds", m.version) / info.path
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(AugsvcError, match=r"ds@\w+: shard shards/part-00000.parquet does not match its sha256") as e:
        store.open_shard("ds", m.version, info)
    assert "\n" not in str(e.value)
    shard.unlink()
    with pytest.raises(AugsvcError, match="is missing or unreadable"):
        store.open_shard("ds", m.version, info)
