"""Remote stores: an S3 store (a local moto server speaking the S3 protocol) and an fsspec ``memory://`` store.

The same ingest and build give the same version ids and byte-identical shards in a local and in a remote store;
publish is "shards first, manifest last"; verify, tags, streaming and the CLI work against the remote store.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from augsvc.cli import app
from augsvc.stream import Stream
from pipelines import storefs
from pipelines.ingest import IngestOptions, ingest
from pipelines.recipes import load_recipe
from pipelines.runner import build
from pipelines.store import Store
from schemas.errors import AugsvcError

moto_server = pytest.importorskip("moto.server", reason="moto[server] (a dev extra) runs the local S3 endpoint")

RECIPE = {
    "input": "src",
    "output": "aug",
    "seed": 3,
    "stages": [{"op": [{"op": "hflip", "p": 0.5}, {"op": "rotate", "limit": 20}], "copies": 2}],
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on a free port, with dummy credentials in the environment (before Ray starts, so its
    workers inherit them)."""
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    fs, _ = pafs.FileSystem.from_uri(f"s3://augsvc-test?{query}&allow_bucket_creation=true")
    fs.create_dir("augsvc-test")
    os.environ["AUGSVC_STAGING"] = str(tmp_path_factory.mktemp("staging"))
    yield query
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_uri(s3_endpoint: str, request) -> str:
    return f"s3://augsvc-test/{request.node.name}?{s3_endpoint}"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from tests.conftest import write_image

    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("imgs")
    for c, n in {"cat": 5, "dog": 4}.items():
        for i in range(n):
            write_image(root / c / f"{c}{i}.png", rng, size=16)
    return root


def _all_bytes(store: Store, ref: str) -> tuple[str, list[bytes]]:
    ds, v = store.resolve(ref)
    return v, [storefs.read_bytes(store.shard_ref(ds, v, s.path)) for s in store.manifest(ds, v).shards]


def test_join_keeps_query_at_end() -> None:
    assert storefs.join("s3://b/root?x=1&y=2", "ds", "v1/") == "s3://b/root/ds/v1?x=1&y=2"
    assert storefs.join("/tmp/root/", "ds") == "/tmp/root/ds"
    assert storefs.basename("s3://b/a/part-00001.parquet?x=1") == "part-00001.parquet"


def test_ingest_and_build_match_local_store_byte_for_byte(s3_uri: str, images: Path, tmp_path: Path) -> None:
    local, remote = Store(tmp_path / "store"), Store(s3_uri)
    opts = IngestOptions(shard_rows=4)
    for st in (local, remote):
        ingest(images, name="src", store=st, options=opts, workers=0)
        build(load_recipe(RECIPE), st, workers=0)
    assert _all_bytes(local, "src") == _all_bytes(remote, "src")
    assert _all_bytes(local, "aug") == _all_bytes(remote, "aug")
    # nothing of the remote store landed in a local store folder; every listed shard reads with pyarrow alone
    assert remote.datasets() == ["aug", "src"] and not Path("augsvc-store").exists()
    fs, root = remote.filesystem()
    ds, v = remote.resolve("aug")
    manifest = json.loads(fs.open_input_stream(f"{root}/aug/{v}/manifest.json").read())
    assert sum(pq.read_table(f"{root}/aug/{v}/{s['path']}", filesystem=fs).num_rows for s in manifest["shards"]) == 27
    assert remote.verify(ds, v) == []
    # rebuilding is a no-op that reports up to date
    assert build(load_recipe(RECIPE), remote, workers=0).up_to_date


def test_build_on_ray_workers_reads_and_writes_s3(s3_uri: str, images: Path, ray_module) -> None:
    remote = Store(s3_uri)
    # address= takes the cluster path: ingest shards come back as bytes, build steps keep their files in the store
    src = ingest(images, name="src", store=remote, options=IngestOptions(shard_rows=4), workers=2, address="auto")
    solo = ingest(images, name="s0", store=remote, options=IngestOptions(shard_rows=4), workers=0)
    assert src.manifest.shards == solo.manifest.shards
    one = build(load_recipe(RECIPE), remote, workers=0)
    two = build(load_recipe(RECIPE | {"output": "aug2"}), remote, workers=2, address="auto")
    assert one.manifest.shards == two.manifest.shards  # same bytes (sha256) whether tasks ran in-process or on Ray
    fs, root = remote.filesystem()
    left = fs.get_file_info(pafs.FileSelector(f"{root}/aug2/.staging", recursive=True, allow_not_found=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == []  # the step files were cleaned up
    batches = list(Stream("aug2", store=remote, batch_size=8, seed=0, columns=["label"]))
    assert sum(len(b["label"]) for b in batches) == 27


def test_publish_crash_leaves_no_version_and_retry_completes(
    s3_uri: str, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Store(s3_uri)
    real, puts = storefs.write_bytes, []

    def flaky(ref: str, data: bytes) -> None:
        puts.append(ref)
        if len(puts) == 2:
            raise OSError("connection reset (simulated)")
        real(ref, data)

    monkeypatch.setattr(storefs, "write_bytes", flaky)
    with pytest.raises(AugsvcError, match="simulated.*nothing was published"):
        ingest(images, name="src", store=remote, options=IngestOptions(shard_rows=4), workers=0)
    assert remote.versions("src") == [] and remote.datasets() == []  # shards uploaded, no manifest: invisible
    monkeypatch.setattr(storefs, "write_bytes", real)
    report = ingest(images, name="src", store=remote, options=IngestOptions(shard_rows=4), workers=0)
    assert not report.up_to_date and remote.verify("src", report.manifest.version) == []


def test_cli_verify_names_tampered_shard_and_tags_work(s3_uri: str, images: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(app, ["ingest", str(images), "--name", "src", "--store", s3_uri, "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    version = json.loads(res.output)["version"]
    assert cli.invoke(app, ["tag", f"src@{version}", "gold", "--store", s3_uri]).exit_code == 0
    res = cli.invoke(app, ["ls", "src", "--store", s3_uri, "--json"])
    assert json.loads(res.output) == [version]
    remote = Store(s3_uri)
    assert remote.resolve("src@gold") == ("src", version)
    assert cli.invoke(app, ["verify", "src", "--store", s3_uri]).exit_code == 0
    shard = remote.manifest("src", version).shards[0].path
    storefs.write_bytes(remote.shard_ref("src", version, shard), b"not parquet")
    res = cli.invoke(app, ["verify", "src@gold", "--store", s3_uri])
    assert res.exit_code != 0 and shard in res.output


def test_fsspec_memory_store_round_trip(images: Path) -> None:
    pytest.importorskip("fsspec")
    mem = Store("memory://augsvc-test-store")
    rep = ingest(images, name="src", store=mem, options=IngestOptions(shard_rows=4), workers=0)
    assert mem.versions("src") == [rep.manifest.version]
    assert mem.read_shard("src", rep.manifest.version, rep.manifest.shards[0].path).num_rows == 4
    assert mem.verify("src", rep.manifest.version) == []


def test_missing_bucket_and_missing_shard_are_clear_errors(s3_endpoint: str, s3_uri: str, images: Path) -> None:
    with pytest.raises(AugsvcError, match="cannot write there.*bucket"):
        ingest(images, name="src", store=Store(f"s3://no-such-bucket/x?{s3_endpoint}"), workers=0)
    remote = Store(s3_uri)
    rep = ingest(images, name="src", store=remote, options=IngestOptions(shard_rows=4), workers=0)
    fs, root = remote.filesystem()
    fs.delete_file(f"{root}/src/{rep.manifest.version}/{rep.manifest.shards[1].path}")
    with pytest.raises(AugsvcError, match=r"failed verification: shards/part-00001.parquet: missing.*augsvc verify"):
        build(load_recipe(RECIPE), remote, workers=0)
    shown = storefs.display("sftp://host/store?username=me&password=hunter2&key_filename=/k")
    assert shown == "sftp://host/store?username=me&password=***&key_filename=***"


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(AugsvcError, match="nosuchproto"):
        Store("nosuchproto://bucket/x").datasets()
