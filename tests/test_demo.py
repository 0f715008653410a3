"""`augsvc demo` runs the whole flow on the bundled data (the README's first command)."""

from __future__ import annotations

from pathlib import Path

from augsvc.demo import run_demo
from pipelines.store import Store


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    import ray

    lines: list[str] = []
    try:
        run_demo(tmp_path / "demo", workers=2, echo=lines.append)
    finally:
        ray.shutdown()
    out = "\n".join(lines)
    assert "quarantined 3/3_corrupt.png: not a decodable image" in out
    assert "quarantined reviews.tsv:122: cannot decode as utf-8" in out
    assert "verify every version: ok" in out
    store = Store(tmp_path / "demo" / "store")
    assert store.datasets() == ["digits", "digits_aug", "iris", "reviews", "reviews_aug"]
    m = store.manifest(*store.resolve("digits_aug"))
    assert m.rows == 930 and m.splits["train"]["0"] == 21 * 4
    assert (tmp_path / "demo" / "digits_preview.png").stat().st_size > 1000
    assert (tmp_path / "demo" / "compare.png").stat().st_size > 1000
    assert "baseline  best val acc" in out and "augmented best val acc" in out
    assert "equal optimizer steps" in out and "95% interval" in out and "the uncertainty of" in out
