"""The service as a public API is probed (issue 30, items 1-9): a token-less service on a live loopback server
against cross-site and rebinding requests, links out of the store through every route, cache headers per URL form,
removed versions, bad bodies, two services on one database, and the API description."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from augsvc.service import ServiceConfig, create_app  # noqa: E402
from pipelines.store import Store  # noqa: E402
from schemas.errors import AugsvcError  # noqa: E402
from tests.test_service import RECIPE, B, R, app_for, make_store, wait_done  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return make_store(tmp_path_factory.mktemp("svcsec"))


@pytest.fixture(scope="module")
def live(store: Store, tmp_path_factory):
    """A token-less service (``--no-auth``) on a free loopback port, in a thread: its base URL."""
    import uvicorn

    db = tmp_path_factory.mktemp("live") / "db.sqlite3"
    app = create_app(ServiceConfig(store=store, db=db, workers=0, start_worker=False, allowed_hosts=["127.0.0.1"]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    t_end = time.monotonic() + 30
    while not server.started and time.monotonic() < t_end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(10)


# -- 1: cross-site and Host --------------------------------------------------------------------------------------
def test_no_auth_refuses_foreign_hosts_on_a_live_server(live: str) -> None:
    port = live.rsplit(":", 1)[1]
    assert httpx.get(f"{live}/api/health").status_code == 200
    assert httpx.get(f"{live}/api/datasets", headers={"Host": f"localhost:{port}"}).status_code == 200
    r = httpx.get(f"{live}/api/datasets", headers={"Host": f"rebound.example:{port}"})
    assert r.status_code == 421 and "rebinding" in r.json()["detail"]
    assert httpx.get(f"{live}/", headers={"Host": "rebound.example"}).status_code == 421


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},
        {"Content-Type": "application/yaml", "Origin": "https://attacker.example"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_no_auth_refuses_cross_site_writes_on_a_live_server(live: str, headers: dict) -> None:
    for path in ("/api/builds", "/api/preview", "/api/builds/0123456789abcdef/cancel"):
        r = httpx.post(f"{live}{path}", content=RECIPE, headers=headers)
        assert r.status_code in (403, 415), (path, headers, r.status_code, r.text)


def test_no_auth_accepts_its_own_page_and_api_clients(live: str) -> None:
    yaml = {"Content-Type": "application/yaml", "Origin": live}
    r = httpx.post(f"{live}/api/builds", content=RECIPE.replace("seed: 3", "seed: 61"), headers=yaml)
    assert r.status_code == 202, r.text
    r = httpx.post(f"{live}/api/builds/{r.json()['id']}/cancel", headers={"X-Augsvc-Client": "1"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"


# -- 2: links out of the store through the service ----------------------------------------------------------------
def test_service_never_serves_a_link_out_of_the_store(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:do not show\n")
    ds = store.root / "src"
    os.symlink(secret, ds / "tags" / "evil")
    v = store.resolve("src")[1]
    shard = ds / v / "shards" / "part-00000.parquet"
    (tmp_path / "copy.parquet").write_bytes(shard.read_bytes())
    shard.unlink()
    os.symlink(tmp_path / "copy.parquet", shard)
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        for path in ("/api/datasets", "/api/datasets/src", "/api/datasets/src/tags"):
            r = c.get(path, headers=R)
            assert r.status_code == 200 and "evil" not in r.text and "do not show" not in r.text
        r = c.get("/api/datasets/src/versions/evil/manifest", headers=R)
        assert r.status_code == 404 and "do not show" not in r.text
        for extra in ({}, {"Range": "bytes=0-3"}):
            r = c.get(f"/api/datasets/src/versions/{v}/shards/part-00000.parquet", headers=R | extra)
            assert r.status_code == 400 and "outside the store" in r.json()["detail"]
        r = c.get(f"/api/datasets/src/versions/{v}/verify", headers=R)
        assert r.json()["ok"] is False and any("outside the store" in p for p in r.json()["problems"])


# -- 3 and 8: caching, HEAD, 304 ------------------------------------------------------------------------------------
def test_cache_headers_by_url_form(store: Store, tmp_path: Path) -> None:
    v = store.resolve("src")[1]
    shard = "shards/part-00000.parquet"
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        by_id = c.get(f"/api/datasets/src/versions/{v}/{shard}", headers=R)
        assert by_id.headers["cache-control"] == "private, max-age=31536000, immutable"
        for form in ("latest", v[:6]):  # a tag and an id prefix can name other bytes tomorrow
            r = c.get(f"/api/datasets/src/versions/{form}/{shard}", headers=R)
            assert r.status_code == 200 and r.headers["cache-control"] == "private, no-cache", form
            m = c.get(f"/api/datasets/src/versions/{form}/manifest", headers=R)
            assert "immutable" not in m.headers["cache-control"]
        m = c.get(f"/api/datasets/src/versions/{v}/manifest", headers=R)
        assert m.headers["cache-control"] == "private, max-age=31536000, immutable"
        for path in ("/api/datasets", "/api/datasets/src/tags", "/api/builds", "/api/catalogue"):
            assert c.get(path, headers=R).headers["cache-control"] == "no-store", path
        etag = by_id.headers["etag"]
        r = c.get(f"/api/datasets/src/versions/latest/{shard}", headers=R | {"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        h = c.head(f"/api/datasets/src/versions/{v}/{shard}", headers=R)
        assert h.status_code == 200 and h.content == b"" and h.headers["content-length"] == str(len(by_id.content))
        assert h.headers["x-content-sha256"] == by_id.headers["x-content-sha256"]
    with TestClient(app_for(store, tmp_path / "db2.sqlite3", start_worker=False, tokens=[]),
                    base_url="http://127.0.0.1") as c:  # fmt: skip
        r = c.get(f"/api/datasets/src/versions/{v}/{shard}")
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert c.get(f"/api/datasets/src/versions/latest/{shard}").headers["cache-control"] == "no-cache"


# -- 4: a removed version is rebuilt ------------------------------------------------------------------------------
def test_a_removed_version_is_built_again(store: Store, tmp_path: Path) -> None:
    recipe = RECIPE.replace("seed: 3", "seed: 71")
    with TestClient(app_for(store, tmp_path / "db.sqlite3")) as c:
        b = c.post("/api/builds", content=recipe, headers=B).json()
        assert wait_done(c, b["id"])["state"] == "succeeded"
        store.remove_version("aug", b["version"], force=True)
        again = c.post("/api/builds", content=recipe, headers=B)
        assert again.status_code == 202 and again.json()["duplicate"] is False
        assert wait_done(c, b["id"])["state"] == "succeeded" and store.exists("aug", b["version"])
        assert "no longer in the store" in c.get(f"/api/builds/{b['id']}/log", headers=R).text


# -- 5: 400s, not 500s; no file contents in errors --------------------------------------------------------------
def test_bad_bodies_are_400_with_one_line(store: Store, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:do not show:/root:/bin/bash\n")
    teacher = RECIPE.replace("    op: [{op: hflip, p: 0.5}, {op: rotate, limit: 20}]\n    copies: 2\n",
                             f"    teacher: {{checkpoint: {secret}}}\n")  # fmt: skip
    bodies = [
        ("application/json", "[" * 100_000 + "]" * 100_000),
        ("application/yaml", "a: " * 3000 + "1"),
        ("application/yaml", "[" * 5000 + "]" * 5000),
        ("application/json", '{"input": "src", "output": "x", "stages": ' + "[" * 200 + "]" * 200 + "}"),
        ("application/yaml", teacher),
    ]
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        for ctype, body in bodies:
            for path in ("/api/builds", "/api/preview"):
                r = c.post(path, content=body, headers=B | {"Content-Type": ctype})
                assert r.status_code == 400, (path, body[:60], r.status_code, r.text[:300])
                assert "\n" not in r.json()["detail"] and "do not show" not in r.text


# -- 7: one live service per database -----------------------------------------------------------------------------
def test_a_second_service_on_one_database_is_refused(store: Store, tmp_path: Path) -> None:
    first = app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    with pytest.raises(AugsvcError, match="in use by another 'augsvc serve'"):
        app_for(store, tmp_path / "db.sqlite3", start_worker=False)
    first.state.service.db.close()
    app_for(store, tmp_path / "db.sqlite3", start_worker=False).state.service.db.close()


# -- 8: the API description, offline docs, bounded verifies, no tokens in the access log ---------------------------
def test_openapi_documents_bodies_and_the_bearer_scheme(store: Store, tmp_path: Path) -> None:
    with TestClient(app_for(store, tmp_path / "db.sqlite3", start_worker=False)) as c:
        spec = c.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        for path in ("/api/builds", "/api/preview"):
            body = spec["paths"][path]["post"]["requestBody"]["content"]
            assert body["application/yaml"]["schema"]["$ref"] == "#/components/schemas/Recipe"
        assert "stages" in spec["components"]["schemas"]["Recipe"]["properties"]
        assert spec["paths"]["/api/builds/{bid}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"get", "head"} <= set(spec["paths"]["/api/datasets/{name}/versions/{version}/shards/{shard}"])
        page = c.get("/docs").text
        assert "cdn" not in page.lower() and "/docs-assets/swagger-ui-bundle.js" in page
        assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_verifies_are_bounded(store: Store, tmp_path: Path) -> None:
    app = app_for(store, tmp_path / "db.sqlite3", start_worker=False, verify_slots=1)
    v = store.resolve("src")[1]
    with TestClient(app) as c:
        assert c.get(f"/api/datasets/src/versions/{v}/verify", headers=R).status_code == 200
        app.state.service.verify_slots.acquire()  # one verify running
        r = c.get(f"/api/datasets/src/versions/{v}/verify", headers=R)
        assert r.status_code == 429 and r.headers["retry-after"]
        app.state.service.verify_slots.release()


def test_a_token_in_the_query_string_is_masked_in_the_access_log() -> None:
    import logging

    from augsvc.service.guard import RedactQuery

    rec = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                            ("1.2.3.4", "GET", "/api/builds?token=sekrit&limit=3", "1.1", 401), None)  # fmt: skip
    RedactQuery().filter(rec)
    assert "sekrit" not in rec.getMessage() and "limit=3" in rec.getMessage()


def test_file_readers_never_quote_the_file(tmp_path: Path) -> None:
    """A thesaurus or tag file that is something else (a password file) is refused without its contents."""
    from pipelines.transforms.text.synonyms import read_thesaurus

    secret = tmp_path / "shadow"
    secret.write_text("root:$6$do-not-show:19000:0:99999:7:::\n")
    with pytest.raises(AugsvcError) as e:
        read_thesaurus(secret)
    assert "do-not-show" not in str(e.value) and "line 1" in str(e.value)
    store = Store(tmp_path / "s")
    from tests.test_store_races import _publish

    _publish(store, [1])
    (tmp_path / "s" / "ds" / "tags" / "t").write_text(secret.read_text())
    with pytest.raises(AugsvcError) as e:
        store.resolve("ds@t")
    assert "do-not-show" not in str(e.value)


# -- 6: the listing's cache follows the store, also when another process changes it ---------------------------------
def test_listing_cache_follows_publish_rm_and_tags_from_elsewhere(tmp_path: Path) -> None:
    from augsvc.service.listing import Listing
    from tests.test_store_races import _publish

    store = Store(tmp_path / "s")
    a = _publish(store, [1])
    listing = Listing(Store(tmp_path / "s"), ttl_s=3600)  # only the fingerprint can notice changes

    def seen() -> tuple[list[str], dict]:
        import json

        (d,) = json.loads(listing.datasets_json())
        return sorted(v["version"] for v in d["versions"]), d["tags"]

    assert seen() == ([a], {"latest": a})
    other = Store(tmp_path / "s")  # another process's view of the same folder
    b = _publish(other, [2])
    assert seen() == (sorted([a, b]), {"latest": b})
    other.set_tag("ds", "gold", a)
    assert seen()[1] == {"gold": a, "latest": b}
    other.remove_version("ds", b)
    assert seen() == ([a], {"gold": a, "latest": a})


def test_listing_is_read_once_for_many_waiting_requests_and_refreshed_in_the_background(tmp_path: Path) -> None:
    """Requests that all find the listing unread wait for one read (not one each: 32 concurrent full reads every
    ttl_s made p99 1.5 s in bench/service.py --listing); past ttl_s the kept bytes are answered while one background
    thread reads the listing again."""
    import threading
    import time

    from augsvc.service.listing import Listing
    from tests.test_store_races import _publish

    store = Store(tmp_path / "s")
    _publish(store, [1])
    listing = Listing(store, ttl_s=3600)
    reads = []
    real = listing.datasets

    def counted() -> list[dict]:
        reads.append(1)
        time.sleep(0.05)
        return real()

    listing.datasets = counted  # type: ignore[method-assign]
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(listing.datasets_json())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1 and len(set(bodies)) == 1 and len(bodies) == 16
    listing.ttl_s = 0.0  # expired: the kept bytes at once, one refresh behind them
    assert listing.cached_json() == bodies[0]
    deadline = time.monotonic() + 10
    while len(reads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(reads) == 2
