"""The HTTP service in-process (FastAPI TestClient): builds end to end, downloads with sha256 and ranges, tokens,
bad recipes, path traversal, restarts and duplicate submissions. Builds run with workers=0 (no Ray)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from augsvc.service import ServiceConfig, create_app  # noqa: E402
from augsvc.service.auth import load_tokens  # noqa: E402
from pipelines.ingest import IngestOptions, ingest  # noqa: E402
from pipelines.store import Store  # noqa: E402

BUILD_TOKEN = "b" * 32
READ_TOKEN = "r" * 32
B = {"Authorization": f"Bearer {BUILD_TOKEN}"}
R = {"Authorization": f"Bearer {READ_TOKEN}"}
RECIPE = """\
input: src
output: aug
seed: 3
stages:
  - name: flips
    op: [{op: hflip, p: 0.5}, {op: rotate, limit: 20}]
    copies: 2
"""


def make_store(root: Path) -> Store:
    """An image version ``src``: 3 classes x 4 images, 3 rows per shard, one quarantined file."""
    from tests.conftest import write_image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "eel"):
        for i in range(4):
            write_image(root / "imgs" / c / f"{c}{i}.png", rng, size=16)
    (root / "imgs" / "cat" / "broken.png").write_bytes(b"not an image")
    store = Store(root / "store")
    ingest(root / "imgs", name="src", store=store, options=IngestOptions(shard_rows=3, on_error="skip"), workers=0)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return make_store(tmp_path_factory.mktemp("svc"))


def app_for(store: Store, db: Path, **kw):
    tokens = [("build", BUILD_TOKEN.encode()), ("read", READ_TOKEN.encode())]
    cfg = ServiceConfig(store=store, db=db, tokens=tokens, workers=0, poll_s=0.05)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return create_app(cfg)


def wait_done(c: TestClient, bid: str, timeout: float = 60.0) -> dict:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        b = c.get(f"/api/builds/{bid}", headers=R).json()
        if b["state"] not in ("queued", "running"):
            return b
        time.sleep(0.05)
    raise AssertionError(f"build {bid} did not finish: {b}")


def test_submit_poll_manifest_shard_sha256_and_range(store: Store, tmp_path: Path) -> None:
    with TestClient(app_for(store, tmp_path / "db.sqlite3")) as c:
        assert c.get("/api/health").json()["ok"] is True
        r = c.post("/api/builds", content=RECIPE, headers=B | {"Content-Type": "application/yaml"})
        assert r.status_code == 202, r.text
        sub = r.json()
        assert sub["state"] in ("queued", "running") and sub["dataset"] == "aug" and not sub["duplicate"]
        done = wait_done(c, sub["id"])
        assert done["state"] == "succeeded", done
        assert done["version"] == sub["version"] and done["rows_out"] == 36  # 12 originals + 2 copies each
        assert "succeeded: aug@" in c.get(f"/api/builds/{sub['id']}/log", headers=R).text
        # the version is in the store under the id announced at submission
        ds = {d["name"]: d for d in c.get("/api/datasets", headers=R).json()}
        assert [v["version"] for v in ds["aug"]["versions"]] == [sub["version"]]
        assert ds["aug"]["tags"]["latest"] == sub["version"]
        assert ds["src"]["versions"][0]["quarantined"] == 1
        assert c.get("/api/datasets/aug/tags", headers=R).json() == {"latest": sub["version"]}
        m = c.get(f"/api/datasets/aug/versions/{sub['version']}/manifest", headers=R).json()
        assert m["rows"] == 36 and m["parents"][0].startswith("src@")
        assert c.get("/api/datasets/aug/versions/latest/manifest", headers=R).json()["version"] == sub["version"]
        shard = m["shards"][0]
        name = shard["path"].removeprefix("shards/")
        url = f"/api/datasets/aug/versions/{sub['version']}/shards/{name}"
        full = c.get(url, headers=R)
        assert full.status_code == 200
        assert full.headers["x-content-sha256"] == shard["sha256"] == hashlib.sha256(full.content).hexdigest()
        on_disk = (store.version_dir("aug", sub["version"]) / shard["path"]).read_bytes()
        assert full.content == on_disk
        # a resumed download: the first 100 bytes, then the rest
        head = c.get(url, headers=R | {"Range": "bytes=0-99"})
        tail = c.get(url, headers=R | {"Range": "bytes=100-"})
        assert head.status_code == tail.status_code == 206
        assert tail.headers["content-range"] == f"bytes 100-{len(on_disk) - 1}/{len(on_disk)}"
        assert head.content + tail.content == on_disk
        assert c.get(url, headers=R | {"Range": "bytes=-10"}).content == on_disk[-10:]
        assert c.get(url, headers=R | {"Range": f"bytes={len(on_disk)}-"}).status_code == 416
        assert c.get(url, headers=R | {"Range": "bytes=0-1,5-6"}).status_code == 416
        assert c.get(f"/api/datasets/aug/versions/{sub['version']}/verify", headers=R).json()["ok"] is True
        # preview, catalogue, OpenAPI spec, web page
        assert c.post("/api/preview", content=RECIPE, headers=R).status_code == 403  # recipes run: build tokens
        p = c.post("/api/preview?n=3&copies=2", content=RECIPE, headers=B)
        assert p.status_code == 200 and p.headers["content-type"] == "image/png" and p.content[:4] == b"\x89PNG"
        assert "op" in c.get("/api/catalogue", headers=R).json()
        spec = c.get("/openapi.json").json()
        assert (
            "/api/builds" in spec["paths"] and "/api/datasets/{name}/versions/{version}/shards/{shard}" in spec["paths"]
        )
        assert "recipe" in c.get("/").text
        assert c.get(f"/api/builds/{sub['id']}/recipe", headers=R).json()["seed"] == 3
        events = c.get(f"/api/builds/{sub['id']}/events", headers=R)
        assert events.headers["content-type"].startswith("text/event-stream")
        assert '"state": "succeeded"' in events.text


def test_duplicate_submissions_become_one_build(store: Store, tmp_path: Path) -> None:
    app = app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    svc = app.state.service
    recipe = RECIPE.replace("output: aug", "output: dup").replace("seed: 3", "seed: 11")
    with TestClient(app) as c:
        a = c.post("/api/builds", content=recipe, headers=B)
        # the same recipe as JSON, keys in another order: the same build
        import yaml

        as_json = dict(reversed(list(yaml.safe_load(recipe).items())))
        b = c.post("/api/builds", json=as_json, headers=B)
        assert (a.status_code, b.status_code) == (202, 200)
        assert a.json()["id"] == b.json()["id"] and b.json()["duplicate"] is True
        assert len(c.get("/api/builds", headers=R).json()) == 1
        assert svc.worker.run_one() and not svc.worker.run_one()  # one build ran, nothing else was queued
        assert c.get(f"/api/builds/{a.json()['id']}", headers=R).json()["state"] == "succeeded"
        again = c.post("/api/builds", content=recipe, headers=B)
        assert again.status_code == 200 and again.json()["state"] == "succeeded"


def test_cancel_queued(store: Store, tmp_path: Path) -> None:
    app = app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    with TestClient(app) as c:
        bid = c.post("/api/builds", content=RECIPE.replace("seed: 3", "seed: 5"), headers=B).json()["id"]
        assert c.post(f"/api/builds/{bid}/cancel", headers=R).status_code == 403
        assert c.post(f"/api/builds/{bid}/cancel", headers=B).json()["state"] == "cancelled"
        assert not app.state.service.worker.run_one()
        assert "cancel requested" in c.get(f"/api/builds/{bid}/log", headers=R).text


def test_auth_refusals(store: Store, tmp_path: Path) -> None:
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        assert c.get("/api/datasets").status_code == 401
        assert c.get("/api/datasets", headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
        assert c.get("/api/datasets", headers={"Authorization": BUILD_TOKEN}).status_code == 401  # no scheme
        assert c.get("/api/datasets", headers=R).status_code == 200
        r = c.post("/api/builds", content=RECIPE, headers=R)
        assert r.status_code == 403 and "build token" in r.json()["detail"]
        assert c.post("/api/builds", content=RECIPE).status_code == 401
        assert c.get("/api/builds", headers=R).json() == []
        # the token never comes back in any answer
        assert BUILD_TOKEN not in c.get("/api/health").text


def test_tokens_file_and_env(tmp_path: Path) -> None:
    from schemas.errors import AugsvcError

    f = tmp_path / "tokens"
    f.write_text(f"# team tokens\nread {READ_TOKEN}\nbuild {BUILD_TOKEN}\n")
    assert load_tokens(f, env={}) == [("read", READ_TOKEN.encode()), ("build", BUILD_TOKEN.encode())]
    assert load_tokens(None, env={"AUGSVC_TOKEN": BUILD_TOKEN}) == [("build", BUILD_TOKEN.encode())]
    f.write_text("admin s3cretvalue-s3cretvalue\n")
    with pytest.raises(AugsvcError, match=r"tokens:1: expected") as e:
        load_tokens(f, env={})
    assert "s3cret" not in str(e.value)
    with pytest.raises(AugsvcError, match="at least 16"):
        load_tokens(None, env={"AUGSVC_READ_TOKEN": "short"})


def test_malformed_recipes_name_the_problem(store: Store, tmp_path: Path) -> None:
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False, max_body=4096)) as c:
        r = c.post("/api/builds", content=RECIPE.replace("copies: 2", "copeis: 2"), headers=B)
        assert r.status_code == 400 and "copeis" in r.json()["detail"]
        r = c.post("/api/builds", content="input: [unclosed\n", headers=B)
        assert r.status_code == 400 and "not valid YAML" in r.json()["detail"]
        r = c.post("/api/builds", content="{bad json", headers=B | {"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
        r = c.post("/api/builds", content="- a\n- b\n", headers=B)
        assert r.status_code == 400 and "mapping" in r.json()["detail"]
        r = c.post("/api/builds", content=RECIPE.replace("input: src", "input: nosuch"), headers=B)
        assert r.status_code == 400 and "nosuch" in r.json()["detail"]
        r = c.post("/api/builds", content=RECIPE.replace("{op: hflip, p: 0.5}", "{op: hflip, p: 7}"), headers=B)
        assert r.status_code == 400 and "p" in r.json()["detail"]
        r = c.post("/api/builds", content=RECIPE + "#" * 5000, headers=B)
        assert r.status_code == 413
        assert c.get("/api/builds", headers=R).json() == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/datasets/..%2F..%2Fetc/tags",
        "/api/datasets/%2e%2e/tags",
        "/api/datasets/%2e%2e/versions/latest/manifest",
        "/api/datasets/src/versions/%2e%2e/manifest",
        "/api/datasets/src/versions/latest/shards/%2e%2e%2fmanifest.json",
        "/api/datasets/src/versions/latest/shards/..%2F..%2Fsrc%2Ftags%2Flatest",
        "/api/datasets/%2Fetc%2Fpasswd/tags",
        "/api/datasets/src/versions/latest/shards/%2Fetc%2Fpasswd",
        "/api/datasets/src%00/tags",
        "/api/datasets/src/versions/latest/shards/part-00000.parquet%00.txt",
        "/api/builds/..%2F..%2Fx",
    ],
)
def test_no_path_traversal(store: Store, tmp_path: Path, path: str) -> None:
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        r = c.get(path, headers=R)
        assert r.status_code in (400, 404), (path, r.status_code, r.text[:200])
        assert b"PAR1" not in r.content and b"root:" not in r.content


def test_path_traversal_dot_segments_unnormalised(store: Store, tmp_path: Path) -> None:
    """Literal ../ that a client sends without normalising (raw ASGI paths) is refused too."""
    import asyncio

    app = app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    for raw in ("/api/datasets/../../etc/tags", "/api/datasets/src/versions/latest/shards/../manifest.json",
                "/api/datasets//etc/tags"):  # fmt: skip
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg, sent=sent):
            sent.append(msg)

        scope = {"type": "http", "method": "GET", "path": raw, "raw_path": raw.encode(), "query_string": b"",
                 "headers": [(b"authorization", R["Authorization"].encode())], "http_version": "1.1",
                 "scheme": "http", "server": ("t", 80), "client": ("t", 1), "root_path": ""}  # fmt: skip
        asyncio.run(app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert status in (400, 404), (raw, status)
        assert b"PAR1" not in body and b"version" not in body.lower().replace(b"version or tag", b"")


def test_restart_runs_queued_and_resumes_in_flight(store: Store, tmp_path: Path) -> None:
    """A service stopped with one build queued and one half done: the next service runs both, and the interrupted
    one reuses the tasks it had finished."""
    from augsvc import api

    db = tmp_path / "db.sqlite3"
    first = app_for(store, db, start_worker=False)
    svc1 = first.state.service
    with TestClient(first) as c:
        queued = c.post("/api/builds", content=RECIPE.replace("seed: 3", "seed: 21"), headers=B).json()
        flight = c.post("/api/builds", content=RECIPE.replace("seed: 3", "seed: 22"), headers=B).json()
    # the in-flight build: claimed by a worker that died after its first task
    job = svc1.db.claim_next()
    assert job["id"] == queued["id"]  # oldest first; put it back and take the second
    svc1.db._exec("UPDATE builds SET state = 'queued', started = NULL WHERE id = ?", (queued["id"],))
    svc1.db._exec("UPDATE builds SET submitted = submitted - 100 WHERE id = ?", (flight["id"],))
    job = svc1.db.claim_next()
    assert job["id"] == flight["id"]

    class Died(Exception):
        pass

    def die_after_one(done: int, _total) -> None:
        if done >= 1:
            raise Died()

    with pytest.raises(Died):
        api.build(job["recipe"], store=store, workers=0, progress=die_after_one)
    svc1.db.close()
    assert svc1.db.path.exists()

    second = app_for(store, db)
    assert second.state.service.recovered == [flight["id"]]
    with TestClient(second) as c:
        a, b = wait_done(c, queued["id"]), wait_done(c, flight["id"])
        assert a["state"] == b["state"] == "succeeded", (a, b)
        assert b["reused_tasks"] >= 1 and b["attempts"] == 2
        assert "service restarted during the build" in c.get(f"/api/builds/{flight['id']}/log", headers=R).text
        for x in (a, b):
            assert c.get(f"/api/datasets/aug/versions/{x['version']}/verify", headers=R).json()["ok"] is True

    third = app_for(store, tmp_path / "db2.sqlite3", start_worker=False, resume=False)
    svc3 = third.state.service
    svc3.db.submit("aug", "0" * 16, "src", {"input": "src"})
    svc3.db.claim_next()
    svc3.db.close()
    fourth = app_for(store, tmp_path / "db2.sqlite3", start_worker=False, resume=False)
    b = fourth.state.service.db.list()[0]
    assert b["state"] == "failed" and "restarted" in b["error"]


def test_cancel_running_keeps_finished_tasks_for_a_resubmission(store: Store, tmp_path: Path) -> None:
    app = app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    svc = app.state.service
    recipe = RECIPE.replace("seed: 3", "seed: 31")
    with TestClient(app) as c:
        bid = c.post("/api/builds", content=recipe, headers=B).json()["id"]
        # the flag a cancel sets on a running build; the worker checks it after each finished task
        svc.db._exec("UPDATE builds SET cancel_requested = 1 WHERE id = ?", (bid,))
        assert svc.worker.run_one()
        b = c.get(f"/api/builds/{bid}", headers=R).json()
        assert b["state"] == "cancelled" and b["tasks_done"] == 1 and "kept" in b["error"]
        again = c.post("/api/builds", content=recipe, headers=B)
        assert again.status_code == 202 and again.json()["id"] == bid
        assert svc.worker.run_one()
        b = c.get(f"/api/builds/{bid}", headers=R).json()
        assert b["state"] == "succeeded" and b["reused_tasks"] == 1
