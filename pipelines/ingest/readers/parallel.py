"""Parallel text for translation: line-aligned ``<stem>.<src>[.gz]`` / ``<stem>.<tgt>[.gz]`` file pairs.

Each stem is a split (``train``, ``val``, ``test_2016_flickr`` -> test). Languages come from the file suffixes,
or ``--src-lang``/``--tgt-lang`` when a folder holds more than two.

Monolingual text (``--monolingual``, with ``--tgt-lang``): target-language sentences without a source, the input of
back-translation. Two ways in: a ``<stem>.<tgt>`` file with no ``<stem>.<src>`` beside it (``train.mono.de`` goes
to the train split: the stem's split is found by name as for pairs), and lines of a pair whose source side is empty.
Each becomes a row with a null ``src`` (the schema's ``src`` is nullable in such versions). Without the option a
target-only file is refused and an empty source line is quarantined, as before; source-only text is always refused.
"""

from __future__ import annotations

import gzip
import tempfile
import zlib
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

from pipelines.ingest.options import IngestOptions
from pipelines.ingest.readers import Source, files_of
from pipelines.ingest.readers.text import decoded_lines
from pipelines.ingest.records import Bad, Record, split_from_name
from schemas.errors import AugsvcError


def _lang_and_stem(p: Path) -> tuple[str, str]:
    name = p.name[:-3] if p.name.endswith(".gz") else p.name
    stem, _, lang = name.rpartition(".")
    return stem, lang


def _plain(path: Path) -> Path:
    """gzip files are decompressed to a temporary file so lines can be decoded one by one.

    Raises ``_Unreadable`` (with the reason) for a truncated or corrupt gzip file, and removes the partial copy.
    """
    if not path.name.endswith(".gz"):
        return path
    tmp = tempfile.NamedTemporaryFile(prefix="augsvc-", suffix=".txt", delete=False)
    try:
        with gzip.open(path, "rb") as src, tmp:
            for block in iter(lambda: src.read(1 << 20), b""):
                tmp.write(block)
    except (EOFError, OSError, zlib.error) as e:
        Path(tmp.name).unlink(missing_ok=True)
        raise _Unreadable(f"truncated or corrupt gzip file ({e}); none of its lines were read") from None
    return Path(tmp.name)


class _Unreadable(Exception):
    pass


def source(root: Path, opts: IngestOptions) -> Source:
    if not root.is_dir():
        raise AugsvcError(f"{root}: a parallel-text source is a folder of <split>.<lang>[.gz] file pairs")
    by_stem: dict[str, dict[str, Path]] = {}
    for f in files_of(root):
        stem, lang = _lang_and_stem(f)
        if stem and lang:
            by_stem.setdefault(stem, {})[lang] = f
    langs = sorted({lang for d in by_stem.values() for lang in d})
    src, tgt = opts.src_lang, opts.tgt_lang
    if opts.monolingual and tgt is None:
        raise AugsvcError(f"{root}: with --monolingual pass --tgt-lang (the language of the target-only text)")
    if src is None or tgt is None:
        if len(langs) != 2:
            raise AugsvcError(f"{root}: languages {langs}; pass --src-lang and --tgt-lang")
        src = src or (langs[0] if tgt != langs[0] else langs[1])
        tgt = tgt or next(lang for lang in langs if lang != src)
    pairs: list[tuple[str, Path | None, Path]] = []
    for stem, d in sorted(by_stem.items()):
        if src in d and tgt in d:
            pairs.append((stem, d[src], d[tgt]))
        elif opts.monolingual and tgt in d:
            pairs.append((stem, None, d[tgt]))  # target-only text: every line a monolingual row
        else:
            hint = ""
            if tgt in d and src not in d:
                hint = f"; pass --monolingual to ingest its {tgt} text as monolingual (target-only) rows"
            elif src in d and opts.monolingual:
                hint = f"; monolingual rows must be target-language ({tgt}) text"
            raise AugsvcError(f"{root}: split {stem!r} has {sorted(d)} but needs both {src} and {tgt}{hint}")

    def target_only(stem: str, ft: Path) -> Iterator[Record | Bad]:
        split = split_from_name(stem)
        try:
            pt = _plain(ft)
        except _Unreadable as e:
            yield Bad(ft.name, None, str(e))
            return
        try:
            for n, t in decoded_lines(pt, opts.encoding, ft.name):
                if isinstance(t, Bad):
                    yield t
                elif not t.strip():
                    yield Bad(ft.name, n, "empty target sentence")
                else:
                    yield Record(f"{stem}:{n}", split, None, (None, t), n)
        finally:
            if pt != ft:
                pt.unlink(missing_ok=True)

    def items() -> Iterator[Record | Bad]:
        for stem, fs, ft in pairs:
            if fs is None:
                yield from target_only(stem, ft)
                continue
            split = split_from_name(stem)
            try:
                ps = _plain(fs)
            except _Unreadable as e:
                yield Bad(fs.name, None, str(e))
                continue
            try:
                pt = _plain(ft)
            except _Unreadable as e:
                if ps != fs:
                    ps.unlink(missing_ok=True)
                yield Bad(ft.name, None, str(e))
                continue
            try:
                a = decoded_lines(ps, opts.encoding, fs.name)
                b = decoded_lines(pt, opts.encoding, ft.name)
                for (n, s), (_, t) in zip_longest(a, b, fillvalue=(None, None)):
                    if n is None or s is None or t is None:
                        yield Bad(f"{fs.name}|{ft.name}", None, f"files have different line counts ({stem})")
                        break
                    if isinstance(s, Bad) or isinstance(t, Bad):
                        yield s if isinstance(s, Bad) else t
                        continue
                    if opts.monolingual and not s.strip() and t.strip():
                        yield Record(f"{stem}:{n}", split, None, (None, t), n)  # target-only line
                        continue
                    if not s.strip() or not t.strip():
                        yield Bad(f"{fs.name}|{ft.name}", n, "empty source or target sentence")
                        continue
                    yield Record(f"{stem}:{n}", split, None, (s, t), n)
            finally:
                for p, orig in ((ps, fs), (pt, ft)):
                    if p != orig:
                        p.unlink(missing_ok=True)

    return Source("translation", items)
