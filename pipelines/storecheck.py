"""Consistency checks of a parsed manifest that need no shard reads (identity, shard paths, totals, counts)."""

from __future__ import annotations

import re

from schemas.hashing import version_id
from schemas.manifest import Manifest

SHARD_RE = re.compile(r"shards/[A-Za-z0-9_-][A-Za-z0-9._-]*\.parquet")  # a shard path inside its version


def manifest_problems(m: Manifest, dataset: str, version: str) -> list[str]:
    """Inconsistencies of a parsed manifest that need no shard reads: identity, shard paths, totals, counts."""
    problems = []
    if m.dataset != dataset or m.version != version:
        problems.append(f"manifest.json describes {m.dataset}@{m.version}, not {dataset}@{version}")
    if version_id(m.definition) != version:
        problems.append("manifest.json's definition does not hash to its version id (edited)")
    seen: set[str] = set()
    for i, s in enumerate(m.shards):
        if not SHARD_RE.fullmatch(s.path):
            problems.append(f"shards[{i}].path {s.path!r} is not a file inside the version's shards/ folder")
        elif s.path in seen:
            problems.append(f"shards[{i}].path {s.path!r} is listed twice")
        seen.add(s.path)
    total = sum(s.rows for s in m.shards)
    if total != m.rows:
        problems.append(f"rows is {m.rows}, but its shards list {total} rows")
    if m.shards and all(s.split is not None for s in m.shards) and m.rows_per_split:
        per_split: dict[str, int] = {}
        for s in m.shards:
            per_split[s.split] = per_split.get(s.split, 0) + s.rows  # type: ignore[index]
        if {k: v for k, v in per_split.items() if v} != {k: v for k, v in m.rows_per_split.items() if v}:
            problems.append("rows_per_split differs from the rows its shards list per split")
    if m.monolingual is not None and m.modality != "translation":
        problems.append(f"monolingual counts are for translation versions, not {m.modality}")
    if m.class_names:
        names = set(m.class_names)
        if len(names) != len(m.class_names):
            problems.append("class_names holds a name twice")
        unknown = sorted((set(m.rows_per_class) | {c for per in m.splits.values() for c in per}) - names)
        if unknown:
            problems.append(f"classes {unknown} are counted but not in class_names")
        elif m.rows_per_class and sum(m.rows_per_class.values()) > m.rows:  # less: rows without a label
            problems.append(f"rows_per_class sums to {sum(m.rows_per_class.values())}, more than rows ({m.rows})")
        for sp, per in m.splits.items():
            if sp in m.rows_per_split and sum(per.values()) > m.rows_per_split[sp]:
                want = m.rows_per_split[sp]
                problems.append(f"splits[{sp!r}] sums to {sum(per.values())}, more than rows_per_split ({want})")
    return problems
