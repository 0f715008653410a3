"""The web page in a real headless Chromium (Debian's ``chromium``; `.ci/run` installs it): the page loads, lists
a dataset, shows a recipe's preview image and a finished build. Skipped, with the reason, when chromium is absent."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.test_service import BUILD_TOKEN, RECIPE, app_for, make_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium; .ci/run installs it)"
)


def chromium(args: list[str], profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def server(tmp_path: Path):
    store = make_store(tmp_path)
    app = app_for(store, tmp_path / "db.sqlite3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    t_end = time.monotonic() + 30
    while not srv.started and time.monotonic() < t_end:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


def test_page_lists_dataset_preview_and_finished_build(server: str, tmp_path: Path) -> None:
    # a build submitted over HTTP by another client, finished before the page opens
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {BUILD_TOKEN}"}) as c:
        b = c.post("/api/builds", content=RECIPE).json()
        t_end = time.monotonic() + 60
        while c.get(f"/api/builds/{b['id']}").json()["state"] in ("queued", "running") and time.monotonic() < t_end:
            time.sleep(0.1)
        assert c.get(f"/api/builds/{b['id']}").json()["state"] == "succeeded"
    fragment = urllib.parse.urlencode({"token": BUILD_TOKEN, "recipe": RECIPE, "preview": "1"})
    url = f"{server}/#{fragment}"
    r = chromium(["--virtual-time-budget=20000", "--dump-dom", url], tmp_path / "profile")
    dom = r.stdout
    assert "<html" in dom, r.stderr[-2000:]
    assert 'class="version" data-dataset="src"' in dom  # the dataset table lists the ingested version
    assert 'class="version" data-dataset="aug"' in dom
    assert 'class="build" data-state="succeeded"' in dom and b["id"] in dom  # the finished build
    # the link's recipe fills the box, but nothing runs until the user asks (a link is not a request)
    assert 'id="recipe-msg">recipe from the link' in dom and 'src="blob:' not in dom
    shot = tmp_path / "page.png"
    chromium(["--virtual-time-budget=20000", "--window-size=1200,1400", f"--screenshot={shot}", url],
             tmp_path / "profile2")  # fmt: skip
    assert shot.is_file() and shot.read_bytes()[:4] == b"\x89PNG"


def test_page_without_a_token_says_so_and_keeps_polling(server: str, tmp_path: Path) -> None:
    r = chromium(["--virtual-time-budget=12000", "--dump-dom", f"{server}/"], tmp_path / "profile")
    dom = r.stdout
    assert "<html" in dom, r.stderr[-2000:]
    assert 'class="muted">loading...' not in dom
    assert 'id="datasets" class="muted">enter a token above' in dom and 'id="builds" class="muted">enter a token' in dom
