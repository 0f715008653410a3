"""Text ops: lossless tokenisation, edit limits, protection, synonym sources, replay, and the mutation budget."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import random

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.rng import rng_for
from pipelines.transforms.base import registry
from pipelines.transforms.text.budget import apply_text_ops, count_changed_words, text_budget
from pipelines.transforms.text.char import QWERTY_NEIGHBOURS, CharSwap, KeyboardTypo, OcrNoise
from pipelines.transforms.text.synonyms import (
    DictSynonyms,
    EmbeddingNeighbours,
    Protection,
    SynonymSpec,
    build_source,
    read_embeddings,
    read_thesaurus,
)
from pipelines.transforms.text.tokenize import Tokens, match_case, split_units
from pipelines.transforms.text.word import (
    RandomCrop,
    RandomDelete,
    RandomSwap,
    SentenceShuffle,
    SynonymInsert,
    SynonymReplace,
)
from schemas.errors import AugsvcError

TEXT = "The quick brown fox jumps over the lazy dog. It was not amused!"
SYN = {
    "quick": ["fast", "speedy"],
    "brown": ["chestnut"],
    "fox": ["vixen"],
    "jumps": ["leaps", "hops"],
    "lazy": ["idle", "sluggish"],
    "dog": ["hound"],
    "amused": ["entertained"],
}
# contextual_* ops need a masked LM folder; tests/test_text_contextual.py runs them with a tiny local model
TEXT_OPS = sorted(n for n, cls in registry().items() if cls.modality == "text" and not n.startswith("contextual_"))
EDIT_OPS = [n for n in TEXT_OPS if n != "sentence_shuffle"]


def make(name: str, **kw):
    if name.startswith("synonym_"):
        kw.setdefault("synonyms", SYN)
    return registry()[name](**kw)


def words(text: str) -> list[str]:
    return Tokens.from_text(text).words


# --- tokenisation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "...!?",
        TEXT,
        "  two  spaces,\ttabs\nand newlines\r\n  ",
        "Ünïcödé wörds, 日本語のテキスト and Кириллица — with “quotes” … ok?",
        "naïve café résumé".encode().decode("latin-1"),  # mojibake: 'naÃ¯ve cafÃ©'
        bytes(range(32, 256)).decode("latin-1"),  # every printable latin-1 char, NBSP and C1 controls
        "don't stop — it's 5 o'clock, e-mail me@example.com!!",
    ],
)
def test_tokenise_round_trip_is_byte_identical(text):
    t = Tokens.from_text(text)
    assert len(t.seps) == len(t.words) + 1
    assert t.text() == text
    assert all(w for w in t.words)


def test_tokeniser_keeps_contractions_and_unicode_words():
    assert words("don't stop, it's Zoë's café") == ["don't", "stop", "it's", "Zoë's", "café"]
    assert words("日本語 и русский") == ["日本語", "и", "русский"]


def _random_texts(seed: int, n: int, max_len: int = 16) -> list[str]:
    """Short strings over an alphabet full of edge cases: apostrophes in every position, tabs and newlines,
    sentence ends, capitals, latin-1 (NBSP, NEL, the fast path's placeholders, "ß" and "ÿ" whose capitals are
    longer or above latin-1), curly quotes, dashes, CJK, emoji."""
    rnd = random.Random(seed)
    alphabet = "ab cZ  A''' \t\n.,!?é£ßÿ\xa0\x85\x80\x86_1日’‘–…😀"
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, max_len))) for _ in range(n)]


def test_fast_tokeniser_matches_the_regex_reference():
    from pipelines.transforms.text.tokenize import blank, join_words, scan_words, split_words, split_words_regex

    texts = [*_random_texts(0, 20000), TEXT, bytes(range(256)).decode("latin-1"), "rock'n'roll 'n' ''quotes''"]
    for text in texts:
        words, seps = split_words(text)
        assert (words, seps) == split_words_regex(text), text
        assert join_words(words, seps) == text
        blanked = blank(text)
        assert scan_words(text)[0] == words
        if blanked is not None:  # one byte per character, a space exactly where a separator is
            assert len(blanked) == len(text) and blanked.split() == [w.encode("latin-1") for w in words]


def test_delete_merges_separators_readably():
    cases = {
        0: "Quick brown fox, lazy dog.",
        2: "The quick fox, lazy dog.",
        3: "The quick brown, lazy dog.",
        5: "The quick brown fox, lazy.",
    }
    for i, expected in cases.items():
        t = Tokens.from_text("The quick brown fox, lazy dog.")
        t.delete_span(i, i + 1)
        assert t.text() == expected


def test_split_units_round_trip_sentences_and_paragraphs():
    text = '  Hi there. "How are you?"  Fine!\n\nNew para… yes \n \n last one  '
    for unit in ("sentence", "paragraph"):
        prefix, units, seps, suffix = split_units(text, unit)
        rebuilt = prefix + "".join(u + s for u, s in zip(units, [*seps, ""], strict=True)) + suffix
        assert rebuilt == text
    assert split_units(text, "sentence")[1][:3] == ["Hi there.", '"How are you?"', "Fine!"]
    assert split_units(text, "paragraph")[1] == ['Hi there. "How are you?"  Fine!', "New para… yes", "last one"]


def test_match_case():
    assert match_case("fast", "QUICK") == "FAST"
    assert match_case("fast", "Quick") == "Fast"
    assert match_case("fast", "quick") == "fast"
    assert match_case("New York", "city") == "New York"


# --- shared contract for every text op --------------------------------------------------------------------


@pytest.mark.parametrize("name", TEXT_OPS)
def test_same_seed_same_output_and_records_replay(name):
    op = make(name, aug_p=0.4)
    for seed in range(20):
        out, record = op(TEXT, np.random.default_rng(seed))
        again, record2 = op(TEXT, np.random.default_rng(seed))
        assert (out, record) == (again, record2)
        params = json.loads(json.dumps(record["params"]))
        assert op.apply(TEXT, params) == out
        assert type(op)(**op.model_dump()) == op


@pytest.mark.parametrize("name", TEXT_OPS)
def test_p_zero_is_identity_and_ops_change_text(name):
    assert make(name, p=0.0)(TEXT, np.random.default_rng(0)) == (TEXT, None)
    outs = {make(name, aug_p=0.3)(TEXT, np.random.default_rng(s))[0] for s in range(10)}
    assert outs - {TEXT}, f"{name} never changed the text"


@pytest.mark.parametrize("name", TEXT_OPS)
@pytest.mark.parametrize(
    "text",
    ["", "Hello", "   !!! ", "Привет, как дела? Всё хорошо.", "naïve café".encode().decode("latin-1"), TEXT * 300],
)
def test_edge_inputs_do_not_crash(name, text):
    op = make(name, aug_p=0.2)
    out, record = op(text, np.random.default_rng(1))
    assert isinstance(out, str)
    assert op.apply(text, record["params"]) == out
    if not words(text):
        assert out == text
    elif name in ("random_delete", "random_crop"):
        assert words(out)  # never removes every word


@pytest.mark.parametrize("name", TEXT_OPS)
def test_rejects_non_text(name):
    with pytest.raises(AugsvcError, match="works on text"):
        make(name)(np.zeros(3), np.random.default_rng(0))


@pytest.mark.parametrize("name", TEXT_OPS)
def test_spliced_edits_equal_split_and_join(name):
    """Ops splice a few edits into the text at their offsets; ``apply`` replays on the split word list and joins.
    Both must agree on every kind of text, for one edit and several (neighbours included)."""
    long_text = " ".join([TEXT, "Don't stop: it's 5 o'clock, Mr. Smith!", "Café au lait? Oui.\nNew line here."] * 4)
    texts = [*_random_texts(1, 150, 40), TEXT, long_text, "naïve café".encode().decode("latin-1"), "“Quoted” – dash…"]
    for aug_p in (0.1, 0.5):
        op = make(name, aug_p=aug_p, aug_max=None)
        for k, text in enumerate(texts):
            out, record = op(text, np.random.default_rng(k))
            assert op.apply(text, record["params"]) == out, (text, record)


def test_random_draws_are_the_same_stream_however_drawn():
    from pipelines.transforms.text.base import below, draw_u32, pick_sorted

    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert draw_u32(a, 12) == draw_u32(b, 2) + draw_u32(b, 4) + draw_u32(b, 6)  # scalar and array draws agree
    assert below(a, 10) == (((b.bit_generator.random_raw() >> 32) * 10) >> 32)
    counts: dict[tuple[int, ...], int] = {}
    rng = np.random.default_rng(0)
    for _ in range(20000):
        picked = tuple(pick_sorted(draw_u32(rng, 3), 5, 3))
        assert list(picked) == sorted(set(picked)) and all(0 <= i < 5 for i in picked)
        counts[picked] = counts.get(picked, 0) + 1
    assert len(counts) == 10 and all(abs(c - 2000) < 250 for c in counts.values())  # uniform over subsets


def test_cached_settings_follow_model_copy():
    op = RandomDelete(aug_p=0.1, protect_words=["fox"])
    op(TEXT, np.random.default_rng(0))  # fills the per-op caches
    other = op.model_copy(update={"aug_p": 1.0, "aug_max": None, "protect_words": []})
    _, record = other(TEXT, np.random.default_rng(0))
    assert len(record["params"]["indices"]) == len(words(TEXT)) - 1  # every word but one, "fox" included


# --- edit limits --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EDIT_OPS)
@pytest.mark.parametrize(("aug_p", "aug_max"), [(0.1, 10), (0.5, 2), (1.0, None), (0.3, 0)])
def test_edits_at_most_aug_p_and_aug_max(name, aug_p, aug_max):
    op = make(name, aug_p=aug_p, aug_max=aug_max, aug_min=1)
    n_words = len(words(TEXT))
    allowed = max(1, int(aug_p * n_words)) if aug_max is None else min(max(1, int(aug_p * n_words)), aug_max)
    for seed in range(25):
        out, record = op(TEXT, np.random.default_rng(seed))
        assert op.edit_count(record["params"]) <= allowed
        per_edit = 2 if name == "random_swap" else 1
        assert count_changed_words(TEXT, out) <= per_edit * allowed
        if aug_max == 0:
            assert out == TEXT


def test_random_swap_moves_words_without_losing_any():
    for seed in range(20):
        out, _ = RandomSwap(aug_p=0.5, fix_case=False)(TEXT, np.random.default_rng(seed))
        assert sorted(words(out)) == sorted(words(TEXT))
        assert out.endswith("!") and ". " in out


def test_random_crop_drops_one_contiguous_span():
    for seed in range(20):
        out, rec = RandomCrop(aug_p=0.3, fix_case=False)(TEXT, np.random.default_rng(seed))
        s, n = rec["params"]["start"], rec["params"]["length"]
        assert n == 3
        assert words(out) == words(TEXT)[:s] + words(TEXT)[s + n :]


def test_sentence_shuffle_keeps_sentences_and_spacing():
    text = "One. Two!  Three? Four.\nFive."
    outs = set()
    for seed in range(30):
        out, rec = SentenceShuffle()(text, np.random.default_rng(seed))
        outs.add(out)
        assert sorted(split_units(out)[1]) == sorted(split_units(text)[1])
        assert split_units(out)[2] == [" ", "  ", " ", "\n"]
    assert len(outs) > 5
    part, _ = SentenceShuffle(aug_p=0.0, aug_min=0)(text, np.random.default_rng(0))
    assert part == text
    with pytest.raises(ValueError, match="not a permutation"):
        SentenceShuffle().apply(text, {"order": [0, 1]})


# --- protection and case --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EDIT_OPS)
def test_protected_words_never_change(name):
    protect = {"protect_words": ["FOX", "dog"], "protect_pattern": r"\bIt\b|amused", "protect_stopwords": True}
    keep = {"fox", "dog", "It", "amused", "the", "The", "over", "was", "not"}
    op = make(name, aug_p=1.0, aug_max=None, **protect)
    for seed in range(25):
        out, _ = op(TEXT, np.random.default_rng(seed))
        ws = words(out)
        for w in keep:
            assert ws.count(w) == words(TEXT).count(w), (w, out)
        if name in ("random_swap", "synonym_replace") or name in ("keyboard_typo", "char_insert", "ocr_noise"):
            for i, w in enumerate(words(TEXT)):
                if w in keep:
                    assert ws[i] == w


def test_protection_mask_from_pattern_and_stopwords():
    t = Tokens.from_text("Alice met Bob in Paris on 3 May.")
    mask = Protection.of(True, (), r"[A-Z][a-z]+").mask(t)
    assert [w for w, m in zip(t.words, mask, strict=True) if not m] == ["met", "3"]
    with pytest.raises(ValidationError, match="protect_pattern"):
        RandomDelete(protect_pattern="([unclosed")


def test_synonym_replace_keeps_case():
    op = SynonymReplace(aug_p=1.0, aug_max=None, synonyms={"quick": ["fast"], "dog": ["hound"]})
    out, _ = op("QUICK! Quick dog, Dog quick.", np.random.default_rng(0))
    assert out == "FAST! Fast hound, Hound fast."


def test_swap_and_delete_keep_sentence_initial_capital():
    out, _ = RandomDelete(aug_max=1).__call__("Hello world. Bye now", np.random.default_rng(0))
    t = RandomDelete()
    assert t.apply("Hello world. Bye now", {"indices": [0]}) == "World. Bye now"
    assert t.apply("Hello world. Bye now", {"indices": [2]}) == "Hello world. Now"
    assert RandomSwap().apply("The cat sat.", {"swaps": [[0, 2]]}) == "Sat cat the."
    assert RandomSwap().apply("I saw Paris", {"swaps": [[0, 1]]}) == "Saw I Paris"
    assert RandomSwap(fix_case=False).apply("The cat sat.", {"swaps": [[0, 2]]}) == "sat cat The."
    assert words(out) and out != "Hello world. Bye now"


def test_synonym_ops_with_empty_source_change_nothing_and_record_it():
    for cls, key in ((SynonymReplace, "replacements"), (SynonymInsert, "insertions")):
        out, rec = cls()(TEXT, np.random.default_rng(0))
        assert out == TEXT and rec["params"] == {key: []}


# --- character ops --------------------------------------------------------------------------------------


def test_keyboard_map_and_typos_use_neighbours():
    assert set(QWERTY_NEIGHBOURS["g"]) == set("tyfhvb")
    assert set(QWERTY_NEIGHBOURS["q"]) == set("wa")
    assert all(c in QWERTY_NEIGHBOURS[d] for c, ns in QWERTY_NEIGHBOURS.items() for d in ns)  # symmetric
    for seed in range(20):
        out, rec = KeyboardTypo(aug_p=0.3)(TEXT, np.random.default_rng(seed))
        for i, new in rec["params"]["edits"]:
            old = words(TEXT)[i]
            diff = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
            assert len(diff) == 1 and diff[0][1].lower() in QWERTY_NEIGHBOURS[diff[0][0].lower()]
            assert diff[0][0].isupper() == diff[0][1].isupper()


def test_ocr_noise_uses_confusions_both_ways():
    seen = set()
    for seed in range(60):
        out, _ = OcrNoise(aug_p=1.0, aug_max=None)("modern 0 l1", np.random.default_rng(seed))
        seen.update(words(out))
    assert {"rnodern", "O", "ll"} <= seen or {"modem", "o", "11"} & seen
    assert "modem" in seen or "rnodern" in seen


def test_char_swap_changes_order_not_letters():
    for seed in range(10):
        _, rec = CharSwap(aug_p=1.0, aug_max=None)(TEXT, np.random.default_rng(seed))
        for i, new in rec["params"]["edits"]:
            assert sorted(new) == sorted(words(TEXT)[i]) and new != words(TEXT)[i]


# --- synonym sources ------------------------------------------------------------------------------------


def test_thesaurus_tsv_and_json(tmp_path):
    tsv = tmp_path / "syn.tsv"
    tsv.write_text("# comment\nquick\tfast, speedy,quick\n\nDog\thound\nquick\trapid\n", encoding="utf-8")
    js = tmp_path / "syn.json"
    js.write_text(json.dumps({"quick": ["fast", "speedy", "rapid"], "dog": ["hound"]}), encoding="utf-8")
    for path in (tsv, js):
        src = DictSynonyms(read_thesaurus(path))
        assert src.synonyms("Quick") == ["fast", "speedy", "rapid"]
        assert src.synonyms("dog") == ["hound"]
        assert src.synonyms("cat") == []
        op = SynonymReplace(aug_p=1.0, source="thesaurus", source_path=str(path))
        out, _ = op("A quick dog.", np.random.default_rng(0))
        assert words(out)[2] == "hound" and words(out)[1] in ("fast", "speedy", "rapid")


def test_thesaurus_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("quick\tfast\nno tab here\n", encoding="utf-8")
    with pytest.raises(AugsvcError, match=r"bad.tsv, line 2"):
        read_thesaurus(bad)
    with pytest.raises(AugsvcError, match="does not exist"):
        read_thesaurus(tmp_path / "missing.tsv")
    with pytest.raises(ValidationError, match="needs source_path"):
        SynonymReplace(source="thesaurus")


def _table():
    vocab = ["king", "queen", "man", "woman", "apple"]
    vectors = np.array([[1, 1, 0], [1, 0.9, 0.1], [0.9, 0.8, 0], [0, 1, 0.2], [0, 0, 1]], dtype=np.float32)
    return vocab, vectors


def test_embedding_neighbours_all_formats(tmp_path):
    vocab, vectors = _table()
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    np.savez(tmp_path / "v.npz", vectors=vectors, vocab=np.array(vocab))
    lines = [f"{w} " + " ".join(str(float(x)) for x in v) for w, v in zip(vocab, vectors, strict=True)]
    (tmp_path / "v.txt").write_text("5 3\n" + "\n".join(lines) + "\n", encoding="utf-8")
    sims = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (vectors[0] / np.linalg.norm(vectors[0]))
    expected = [vocab[i] for i in np.argsort(-sims) if i != 0][:2]
    for path, vocab_path in (("v.npy", "vocab.txt"), ("v.npz", None), ("v.txt", None)):
        v, m = read_embeddings(tmp_path / path, vocab_path and tmp_path / vocab_path)
        assert v == vocab and m.shape == (5, 3)
        spec = SynonymSpec(
            kind="embedding", path=str(tmp_path / path), top_k=2, vocab_path=vocab_path and str(tmp_path / vocab_path)
        )
        assert build_source(spec).synonyms("King") == expected
    assert EmbeddingNeighbours(vocab, vectors, top_k=3, min_similarity=0.999).synonyms("king") == []
    assert EmbeddingNeighbours(vocab, vectors).synonyms("unknown") == []
    with pytest.raises(AugsvcError, match="vocab_path"):
        read_embeddings(tmp_path / "v.npy")


# --- the mutation budget --------------------------------------------------------------------------------


def test_text_budget():
    assert text_budget(TEXT, 0.2) == 2  # 13 words
    assert text_budget(TEXT, 0.0) == 0
    assert text_budget("one", 0.2) == 1
    assert text_budget("", 0.2) == 0
    assert text_budget(TEXT, 1.0) == 13
    with pytest.raises(ValueError):
        text_budget(TEXT, 1.5)


@pytest.mark.parametrize("max_fraction", [0.1, 0.2, 0.5])
def test_chain_never_exceeds_mutation_cap(max_fraction):
    chain = [
        make("synonym_replace", aug_p=0.5),
        make("random_delete", aug_p=0.5),
        make("synonym_insert", aug_p=0.5),
        make("keyboard_typo", aug_p=0.5),
        make("char_insert", aug_p=0.5),
    ]
    long_text = TEXT + " The dog was lazy and the fox was quick, so the quick fox jumps again."
    for text in (TEXT, long_text):
        cap = text_budget(text, max_fraction)
        for seed in range(30):
            out, records = apply_text_ops(chain, text, np.random.default_rng(seed), max_fraction=max_fraction)
            spent = sum(registry()[r["op"]]().edit_count(r["params"]) for r in records)
            assert spent <= cap
            assert count_changed_words(text, out) <= cap
            replay = text
            for r, op in zip(records, chain, strict=True):
                replay = op.apply(replay, r["params"])
            assert replay == out


def test_chain_without_cap_equals_calling_ops_in_turn():
    chain = [make("random_swap", p=0.5), make("synonym_replace", aug_p=0.5), make("ocr_noise", p=0.7)]
    for seed in range(10):
        capped, _ = apply_text_ops(chain, TEXT, np.random.default_rng(seed), max_fraction=None)
        rng, text = np.random.default_rng(seed), TEXT
        for op in chain:
            text, _ = op(text, rng)
        assert capped == text


# --- reproducibility across workers -------------------------------------------------------------------


def _augment(sample_ids: list[str]) -> list[str]:
    ops = [make("synonym_replace", aug_p=0.3), make("random_swap"), make("keyboard_typo", p=0.5)]
    return [apply_text_ops(ops, f"{TEXT} ({sid})", rng_for(7, 0, 0, sid))[0] for sid in sample_ids]


def test_results_do_not_depend_on_workers_or_global_random_state():
    ids = [f"row-{i}" for i in range(24)]
    sequential = _augment(ids)
    random.seed(1)
    np.random.seed(1)
    state = (random.getstate(), np.random.get_state()[1].copy())
    assert _augment(list(reversed(ids))) == list(reversed(sequential))
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        chunks = list(pool.map(_augment, [ids[i::3] for i in range(3)]))
    parallel = {sid: out for i, chunk in enumerate(chunks) for sid, out in zip(ids[i::3], chunk, strict=True)}
    assert [parallel[sid] for sid in ids] == sequential


def test_docstring_examples():
    import doctest

    from pipelines.transforms.text import budget, tokenize

    for module in (tokenize, budget):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
