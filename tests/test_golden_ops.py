"""Op outputs are part of the version id: a change to them must come with a new ``BUILD_FORMAT_VERSION``.

Builds are content-addressed: the version id of a build covers the recipe, the seed, the parents and the code's
``BUILD_FORMAT_VERSION``. If an op's bytes change for the same recipe and seed while that number stays, a store
built by older code reports "up to date" for bytes the new code would not produce. This test pins a hash of the
outputs and records of every text op and of the image ops whose arithmetic is exact on every CPU (tables, flips,
cutout, Gaussian noise, colour jitter; OpenCV's warps and colour conversions are left out because their SIMD paths may
round differently). The policy ops (RandAugment, TrivialAugment, AugMix) warp, so only their records (the ops and
strengths drawn) are pinned.

When it fails after a deliberate change: bump ``BUILD_FORMAT_VERSION`` in ``pipelines/runner.py`` and run
``python tests/test_golden_ops.py --update``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.rng import rng_for  # noqa: E402
from pipelines.runner import BUILD_FORMAT_VERSION  # noqa: E402
from pipelines.transforms.compose import build_op  # noqa: E402

GOLDEN = Path(__file__).with_name("golden_ops.json")
TEXTS = [
    "",
    "Word",
    "The quick brown fox jumps over the lazy dog, twice.",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121 to receive entry!",
    "Ça va? Très bien, merci. Und Ihnen — gut! Любовь и голуби.",
    "First sentence here. Second one follows! Third? Fourth, at last.",
]
SYNONYMS = {"quick": ["fast", "speedy"], "dog": ["hound"], "free": ["gratis"], "final": ["last"], "bien": ["bon"]}
TEXT_OPS = [
    {"op": "synonym_replace", "aug_p": 0.3, "synonyms": SYNONYMS},
    {"op": "synonym_insert", "aug_p": 0.3, "synonyms": SYNONYMS},
    {"op": "random_delete", "aug_p": 0.3},
    {"op": "random_swap", "aug_p": 0.3},
    {"op": "random_crop", "aug_p": 0.3},
    {"op": "sentence_shuffle"},
    {"op": "keyboard_typo", "aug_p": 0.3},
    {"op": "char_insert", "aug_p": 0.3},
    {"op": "char_delete", "aug_p": 0.3},
    {"op": "char_swap", "aug_p": 0.3},
    {"op": "ocr_noise", "aug_p": 0.3},
]
IMAGE_OPS = [
    {"op": "hflip"},
    {"op": "vflip"},
    {"op": "brightness"},
    {"op": "contrast"},
    {"op": "channel_shift"},
    {"op": "gamma"},
    {"op": "cutout"},
    {"op": "sequence", "ops": [{"op": "brightness"}, {"op": "channel_shift"}, {"op": "gamma"}]},
    {"op": "gaussian_noise"},  # integer generator, float32 table and arithmetic: exact everywhere (build format 6)
    {"op": "gaussian_noise", "per_channel": False},
    {"op": "color_jitter"},  # one float32 colour twist (build format 6)
]

RECORD_OPS = [{"op": "rand_augment"}, {"op": "trivial_augment"}, {"op": "augmix"}]  # records only (they warp)


def digests() -> dict[str, str]:
    rng = np.random.default_rng(123)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((17, 23, 3), (32, 32, 1), (64, 48, 3))]
    out = {}
    for k, (spec, inputs) in enumerate([(s, TEXTS) for s in TEXT_OPS] + [(s, images) for s in IMAGE_OPS]):
        op, h = build_op(spec), hashlib.sha256()
        for i, x in enumerate(inputs):
            for copy in range(3):
                y, record = op(x, rng_for(7, 0, copy, f"sample-{i}"))
                h.update(y.encode() if isinstance(y, str) else np.ascontiguousarray(y).tobytes())
                h.update(json.dumps(record, sort_keys=True, default=float).encode())
        out[f"{k:02d} {spec['op']}"] = h.hexdigest()[:16]
    for spec in RECORD_OPS:
        op, h = build_op(spec), hashlib.sha256()
        for i, x in enumerate(images):
            for copy in range(3):
                _, record = op(x, rng_for(7, 0, copy, f"sample-{i}"))
                h.update(json.dumps(record, sort_keys=True).encode())
        out[f"records {spec['op']}"] = h.hexdigest()[:16]
    return out


def test_op_outputs_match_the_build_format_version() -> None:
    golden = json.loads(GOLDEN.read_text())
    if golden["build_format"] != BUILD_FORMAT_VERSION:
        raise AssertionError(
            f"BUILD_FORMAT_VERSION is {BUILD_FORMAT_VERSION} but {GOLDEN.name} was made for {golden['build_format']}: "
            "run `python tests/test_golden_ops.py --update`"
        )
    changed = [spec for spec, d in digests().items() if golden["ops"].get(spec) != d]
    assert not changed, (
        f"op output changed for {changed}: bump BUILD_FORMAT_VERSION in pipelines/runner.py (builds are "
        "content-addressed) and run `python tests/test_golden_ops.py --update`"
    )


if __name__ == "__main__" and "--update" in sys.argv:
    GOLDEN.write_text(json.dumps({"build_format": BUILD_FORMAT_VERSION, "ops": digests()}, indent=2) + "\n")
    print(f"wrote {GOLDEN}")
