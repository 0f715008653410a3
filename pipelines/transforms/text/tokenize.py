"""Lossless tokenisation for text ops: words and the separators between them.

A text is held as ``seps[0] words[0] seps[1] words[1] ... words[n-1] seps[n]``: ``n`` word spans (runs of
Unicode word characters and combining marks, so Devanagari vowel signs, Arabic harakat, Thai vowels and decomposed
accents stay in their word; inner apostrophes are kept so that "don't" is one word) and ``n + 1`` separator spans
(whitespace and punctuation, possibly empty). Joining them gives back the input byte for byte, so text that an op
does not touch is unchanged and edited text keeps its original spacing and punctuation. Works on any ``str``,
including latin-1-decoded bytes (mojibake, NBSP, C1 controls are separators or word characters, never lost).

>>> t = Tokens.from_text("Hello,  wörld! It's me.")
>>> t.words
['Hello', 'wörld', "It's", 'me']
>>> t.seps
['', ',  ', '! ', ' ', '.']
>>> t.text() == "Hello,  wörld! It's me."
True

``split_words``/``join_words`` are the list-level forms that the ops use (no ``Tokens`` object per call).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def _mark_ranges(lo: int, hi: int) -> str:
    """A regex class body of the combining marks (Unicode categories Mn, Mc, Me) in ``[lo, hi)``."""
    out, start = [], None
    for i in range(lo, hi):
        mark = unicodedata.category(chr(i))[0] == "M"
        if mark and start is None:
            start = i
        elif not mark and start is not None:
            out.append(f"\\U{start:08x}-\\U{i - 1:08x}")
            start = None
    if start is not None:
        out.append(f"\\U{start:08x}-\\U{hi - 1:08x}")
    return "".join(out)


# Python's ``\w`` does not match combining marks, so a word such as Hindi "मुझे" (vowel signs), Arabic with
# harakat, Thai or a decomposed "crème" would split at each mark. A mark: one of the BMP marks (one class, which
# ``re`` compiles to a constant-time bitmap) or, behind a cheap astral-plane test, one of the others (~40 ms at
# import for the tables).
_MARKS_BMP = _mark_ranges(0x300, 0x10000)
_MARKS_ASTRAL = rf"(?=[\U00010000-\U0010ffff])[{_mark_ranges(0x10000, 0x20000)}{_mark_ranges(0xE0100, 0xE01F0)}]"
_MARK = rf"[{_MARKS_BMP}]|{_MARKS_ASTRAL}"
_WORD_CHAR = rf"(?:[\w{_MARKS_BMP}]|{_MARKS_ASTRAL})"
HAS_MARK = re.compile(_MARK)
# A word: word characters and combining marks, with inner apostrophes ("don't" is one word).
_WORD_SPLIT = re.compile(rf"({_WORD_CHAR}+(?:['\u2019]{_WORD_CHAR}+)*)", re.UNICODE)
_PLAIN_SPLIT = re.compile(r"(\w+(?:['\u2019]\w+)*)", re.UNICODE)  # the same split for texts without marks
# One character unit for character-level edits: a character with the combining marks that follow it.
CHAR_UNIT = re.compile(rf".(?:{_MARK})*", re.DOTALL)


def _split(text: str) -> list[str]:
    """``_WORD_SPLIT.split(text)``, by the faster mark-less pattern when ``text`` has no combining mark (a mark is
    never ``\\w``, so with that pattern every mark lands in a separator: a separator without one means none)."""
    parts = _PLAIN_SPLIT.split(text)
    for sep in parts[0::2]:
        if not sep.isascii() and HAS_MARK.search(sep):
            return _WORD_SPLIT.split(text)
    return parts


_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]]*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\u2026])([\"'\u2019\u201d)\]]*)(\s+)", re.UNICODE)
_PARAGRAPH_SPLIT = re.compile(r"(\s*\n[^\S\n]*\n\s*)", re.UNICODE)

# The fast path works on texts whose characters are all below U+0100 (ASCII, or latin-1 encodable; characters
# above that count as well when they are all separators: curly quotes, dashes, emoji), with C-level byte
# operations instead of a regex. A byte is a word byte when ``\w`` matches its character. ``_W_MAP`` turns
# every other byte except ``'`` into a space; once the apostrophes that do not join two word characters are
# blanked too, that is the *blanked* text: latin-1 bytes as long as the text, a space for every separator
# character, the words in place. Its ``split()`` gives the words, and ``split(None, k)`` finds word ``k``'s offset,
# so an op can splice a few edits into the text without building the separator list. ``_S_MAP`` blanks word bytes
# and parks the six ASCII whitespace bytes on placeholders (U+0080-U+0085) so that ``bytes.split()`` cuts the
# separators out (an inner apostrophe comes out as a separator of its own, dropped after); ``_S_REV`` puts the
# whitespace back. Latin-1 texts holding a placeholder or the joiner (U+0086) get their separators from the regex.
_IS_WORD = bytes(1 if re.match(r"\w", chr(i)) else 0 for i in range(256))
_WHITESPACE, _PLACEHOLDERS, _JOINER = b" \t\n\r\x0b\x0c", bytes(range(0x80, 0x86)), b"\x86"
_RESERVED = _PLACEHOLDERS + _JOINER
_W_MAP = bytes(i if _IS_WORD[i] or i == 0x27 else 0x20 for i in range(256))
_S_MAP = bytes(
    0x20 if _IS_WORD[i] else _PLACEHOLDERS[_WHITESPACE.index(i)] if i in _WHITESPACE else i for i in range(256)
)
_S_REV = bytes.maketrans(_PLACEHOLDERS, _WHITESPACE)
_SPACE = 0x20
# characters the fast path cannot classify: word characters and marks above latin-1 (there are none below), U+2019
_WORDISH_ABOVE_LATIN1 = re.compile(rf"[^\W\x00-\xff]|\u2019|{_MARK}")


def split_words_regex(text: str) -> tuple[list[str], list[str]]:
    """The reference tokeniser: ``(words, seps)`` by one regex split (any ``str``)."""
    parts = _split(text)
    return parts[1::2], parts[0::2]


def blank(text: str) -> bytes | None:
    """The blanked text (see above): ``text`` as latin-1 bytes with a space for every separator character (and
    for every character above U+00FF when all of those are separators, such as curly quotes and dashes), or None
    when ``text`` has a word character or a U+2019 apostrophe above U+00FF.

    >>> blank("Don't, 'Zoë'!")
    b"Don't   Zo\xeb  "
    """
    if text.isascii():
        blanked = text.encode().translate(_W_MAP)
    else:
        try:
            blanked = text.encode("latin-1").translate(_W_MAP)
        except UnicodeEncodeError:
            if _WORDISH_ABOVE_LATIN1.search(text):
                return None
            blanked = text.encode("latin-1", "replace").translate(_W_MAP)  # one "?" (a separator) per character
    if b"'" in blanked:  # blank the apostrophes that do not sit between two word characters:
        blanked = blanked.replace(b"''", b"  ")  # pairs (a run of three leaves one, next to a space now),
        if blanked[:1] == b"'":  # one at either end,
            blanked = b" " + blanked[1:]
        if blanked[-1:] == b"'":
            blanked = blanked[:-1] + b" "
        blanked = blanked.replace(b" '", b"  ").replace(b"' ", b"  ")  # and one next to a separator
    return blanked


def scan_words(text: str) -> tuple[list[str], bytes | None]:
    """``(words, blanked)``: the words of ``text`` and its blanked text (None: words by regex; see ``blank``).

    >>> scan_words("Don't, 'Zoë'!")[0]
    ["Don't", 'Zoë']
    """
    blanked = blank(text)
    if blanked is None:
        return _split(text)[1::2], None
    return blanked.decode("latin-1").split(), blanked


def seps_of(text: str, n_words: int, blanked: bytes | None) -> list[str]:
    """The ``n_words + 1`` separators of ``text`` (``n_words`` and ``blanked`` as from ``scan_words``)."""
    if not n_words:
        return [text]
    if blanked is None:
        return _split(text)[0::2]
    if text.isascii():
        b = text.encode()
    else:
        try:
            b = text.encode("latin-1")
        except UnicodeEncodeError:
            return _split(text)[0::2]
        if len(b.translate(None, _RESERVED)) != len(b):
            return _split(text)[0::2]
    runs = b.translate(_S_MAP).split()
    seps = _JOINER.join(runs).translate(_S_REV).decode("latin-1").split("\x86") if runs else []
    if _IS_WORD[b[0]]:
        seps.insert(0, "")
    if _IS_WORD[b[-1]]:
        seps.append("")
    if len(seps) != n_words + 1:  # inner apostrophes ("don't") came out as separators of their own
        seps = [seps[0], *[s for s in seps[1:-1] if s != "'"], seps[-1]]
    return seps


def split_words(text: str) -> tuple[list[str], list[str]]:
    """``(words, seps)`` of ``text`` with ``len(seps) == len(words) + 1``; same result as ``split_words_regex``,
    2-4x faster on latin-1 texts (C-level byte operations, no regex)."""
    words, blanked = scan_words(text)
    return words, seps_of(text, len(words), blanked)


def join_words(words: list[str], seps: list[str]) -> str:
    """Inverse of ``split_words``: ``seps[0] words[0] seps[1] ... words[-1] seps[-1]``."""
    out = [""] * (2 * len(words) + 1)
    out[0::2] = seps
    out[1::2] = words
    return "".join(out)


# Editing a latin-1 text without a split and a join: the few words an op touches are found in the blanked text
# and spliced in at their offsets. Each helper gives exactly what the list operations give on ``split_words``.
# ``words`` is the text's words, as ``str`` (``scan_words``) or as the blanked text's ``split()`` pieces: only
# their number and lengths are read (a latin-1 character is one byte).
Words = Sequence[str] | Sequence[bytes]


def word_span(blanked: bytes, words: Words, k: int) -> tuple[int, int]:
    """``(start, end)`` offsets of word ``k``, from one C-level ``split``/``rsplit``."""
    n = len(words)
    if 2 * k < n:
        start = len(blanked) - len(blanked.split(None, k)[-1])
        return start, start + len(words[k])
    end = len(blanked.rsplit(None, n - 1 - k)[0])
    return end - len(words[k]), end


def word_starts(blanked: bytes, ks: list[int]) -> list[int]:
    """Start offsets of words ``ks`` (increasing), in one left-to-right pass: each ``split`` goes on from the last
    word found, so finding several words costs about as much as finding the last one."""
    size, rest, prev, out = len(blanked), blanked, 0, []
    for k in ks:
        rest = rest.split(None, k - prev)[-1]
        out.append(size - len(rest))
        prev = k
    return out


SPLICE_MAX = 6  # edits spliced in at their offsets; more go through split + join


def replace_words(text: str, blanked: bytes | None, words: list[str], changes: list[list[Any]]) -> str:
    """``text`` with word ``i`` replaced by ``new`` for each ``[i, new]`` of ``changes`` (indices increasing).

    A few changes are spliced in at their offsets; many (or a non-latin-1 text) go through split + join.
    """
    if not changes:
        return text
    if blanked is None or len(changes) > SPLICE_MAX:
        seps = seps_of(text, len(words), blanked)
        for i, new in changes:
            words[i] = new
        return join_words(words, seps)
    if len(changes) == 1:
        ((i, new),) = changes
        start, end = word_span(blanked, words, i)
        return f"{text[:start]}{new}{text[end:]}"
    out, pos = [], 0
    for (i, new), start in zip(changes, word_starts(blanked, [i for i, _ in changes]), strict=True):
        out.append(text[pos:start])
        out.append(new)
        pos = start + len(words[i])
    out.append(text[pos:])
    return "".join(out)


def opens_sentence(text: str, blanked: bytes, start: int) -> bool:
    """``Tokens.is_sentence_start`` for the word starting at offset ``start``."""
    if start > 1 and blanked[start - 2] != _SPACE:  # a one-character separator
        return text[start - 1] in ".!?\u2026\n"
    prev_end = len(blanked[:start].rstrip())
    return prev_end == 0 or starts_sentence(text[prev_end:start])


def cut_words(
    text: str, blanked: bytes, words: Words, start: int, stop: int, fix_case: bool, first: int = -1
) -> tuple[int, str, str, int]:
    """What ``delete_span(start, stop)`` does to ``text``: ``text[cut:resume]`` becomes ``merged + capital``
    (``capital``: the next word capitalised, or ""). Returns ``(cut, merged, capital, resume)``; ``first`` is word
    ``start``'s offset if the caller knows it. ``start`` and ``stop`` are not checked (``delete_in_text`` does)."""
    n, size = len(words), len(blanked)
    if first >= 0:
        pass
    elif 2 * start < n:  # word_span, inlined: this is the hot path of random_delete
        first = size - len(blanked.split(None, start)[-1])
    else:
        first = len(blanked.rsplit(None, n - 1 - start)[0]) - len(words[start])
    last = word_span(blanked, words, stop - 1)[1] if stop - start > 1 else first + len(words[start])
    # the separators on either side: one character (the common case), or a run of them
    cut = first - 1 if first > 1 and blanked[first - 2] != 32 else len(blanked[:first].rstrip())  # 32: space
    resume = last + 1 if last + 1 < size and blanked[last + 1] != 32 else size - len(blanked[last:].lstrip())
    left, right = text[cut:first], text[last:resume]
    if not start:  # merge_separators, inlined: at the start, the leading separator stays, punctuation goes
        merged = left + right.lstrip(" \t\n\r,;:.!?\u2026")
    elif left.isspace():  # whitespace on the left gives way to the right side
        merged = right
    else:
        merged = merge_separators(left, right, at_start=False, at_end=stop == n)
    if fix_case and stop < n and text[first].isupper():
        gone = text[first : first + len(words[start])]
        if not (len(gone) > 1 and gone.isupper()) and (
            start == 0 or (left != " " and starts_sentence(left) and starts_sentence(merged))
        ):
            after = resume + len(words[stop])
            return cut, merged, capitalise(text[resume:after]), after
    return cut, merged, "", resume


def delete_words_in_text(text: str, blanked: bytes, words: Words, indices: list[int], fix_case: bool = True) -> str:
    """``delete_in_text`` for single words at ``indices`` (increasing, in range; the hot path of random_delete)."""
    prev = -2
    for i in indices:
        if i - prev < 2:  # two neighbours: their deletions interact
            return delete_in_text(text, blanked, words, [(i, i + 1) for i in indices], fix_case=fix_case)
        prev = i
    out, pos = [], 0  # the loop of delete_in_text, specialised for single words: kept apart, it is the hot path
    for i, first in zip(indices, word_starts(blanked, indices), strict=True):
        cut, merged, capital, resume = cut_words(text, blanked, words, i, i + 1, fix_case, first)
        out.append(text[pos:cut])
        out.append(merged)
        out.append(capital)
        pos = resume
    out.append(text[pos:])
    return "".join(out)


def delete_in_text(
    text: str, blanked: bytes, words: Words, spans: list[tuple[int, int]], *, fix_case: bool = True
) -> str:
    """``text`` without the words of each ``(start, stop)`` span (ascending), exactly as ``delete_span`` on its
    split for each span from the last to the first, without the split or the join (``words`` is not changed).

    Spans with at least one word between them do not interact, so they are cut from ``text`` in one pass; touching
    spans are cut one after the other.
    """
    for start, stop in spans:
        if not 0 <= start < stop <= len(words):
            raise IndexError(f"word span {start}:{stop} out of range for {len(words)} words")
    if len(spans) == 1:
        cut, merged, capital, resume = cut_words(text, blanked, words, *spans[0], fix_case)
        return f"{text[:cut]}{merged}{capital}{text[resume:]}"
    for k in range(1, len(spans)):
        if spans[k - 1][1] >= spans[k][0]:
            break
    else:
        out, pos = [], 0
        for (start, stop), first in zip(spans, word_starts(blanked, [a for a, _ in spans]), strict=True):
            cut, merged, capital, resume = cut_words(text, blanked, words, start, stop, fix_case, first)
            out.append(text[pos:cut])
            out.append(merged)
            out.append(capital)
            pos = resume
        out.append(text[pos:])
        return "".join(out)
    now: list[str | bytes] = list(words)
    for k, (start, stop) in enumerate(reversed(spans)):
        cut, merged, capital, resume = cut_words(text, blanked, now, start, stop, fix_case)
        text = f"{text[:cut]}{merged}{capital}{text[resume:]}"
        del now[start:stop]
        if capital:
            now[start] = capital
        if k + 1 < len(spans):  # the next span needs the offsets of this result
            blanked = blanked[:cut] + b" " * len(merged) + b"a" * len(capital) + blanked[resume:]
    return text


@dataclass(slots=True)
class Tokens:
    """Words and separators of one text; ``len(seps) == len(words) + 1``."""

    words: list[str]
    seps: list[str]

    @classmethod
    def from_text(cls, text: str) -> Tokens:
        return cls(*split_words(text))

    def text(self) -> str:
        return join_words(self.words, self.seps)

    def copy(self) -> Tokens:
        return Tokens(list(self.words), list(self.seps))

    def is_sentence_start(self, i: int) -> bool:
        """Whether word ``i`` opens a sentence (first word, or after ``.!?`` or a line break)."""
        return i == 0 or starts_sentence(self.seps[i])

    def delete_span(self, start: int, stop: int, *, fix_case: bool = True) -> None:
        """Remove words ``start:stop`` and merge the separators on either side into one readable separator."""
        delete_span(self.words, self.seps, start, stop, fix_case=fix_case)

    def insert_after(self, pos: int, word: str) -> None:
        """Insert ``word`` as the new word ``pos`` (1 <= pos <= n), right after the word before it."""
        if not 1 <= pos <= len(self.words):
            raise IndexError(f"insert position {pos} out of range 1..{len(self.words)}")
        self.words.insert(pos, word)
        self.seps.insert(pos, " ")


@functools.lru_cache(maxsize=4096)
def starts_sentence(sep: str) -> bool:
    """Whether a word after separator ``sep`` (not the text's first word) opens a sentence."""
    return bool(_SENTENCE_END.search(sep.rstrip(" \t\"'(\u201c\u2018["))) or "\n" in sep


def delete_span(words: list[str], seps: list[str], start: int, stop: int, *, fix_case: bool = True) -> None:
    """``Tokens.delete_span`` on the two lists (in place)."""
    n = len(words)
    if not 0 <= start < stop <= n:
        raise IndexError(f"word span {start}:{stop} out of range for {n} words")
    was_title = fix_case and (start == 0 or starts_sentence(seps[start])) and _is_title(words[start])
    left, right = seps[start], seps[stop]
    if left == right == " " and start:  # the common case: a word between two single spaces
        merged = " "
    else:
        merged = merge_separators(left, right, at_start=start == 0, at_end=stop == n)
    del words[start:stop]
    seps[start : stop + 1] = [merged]
    if was_title and start < len(words) and (start == 0 or starts_sentence(merged)):
        words[start] = capitalise(words[start])


def merge_separators(left: str, right: str, *, at_start: bool, at_end: bool) -> str:
    """The separator left when the words between ``left`` and ``right`` are removed.

    Whitespace-only sides give way to the side with punctuation ("lazy dog." minus "dog" is "lazy."), the
    start of the text drops leading spaces, the end of the text drops a dangling separator's trailing spaces.
    """
    if at_start:
        return left + right.lstrip(" \t\n\r,;:.!?\u2026")
    if not left.strip():
        return right
    if not right.strip():
        return left.rstrip() if at_end else left
    return left.rstrip() + right


def _is_title(word: str) -> bool:
    return word[:1].isupper() and not (len(word) > 1 and word.isupper())


def capitalise(word: str) -> str:
    """Upper-case the first character, leave the rest as is."""
    return word[:1].upper() + word[1:]


def decapitalise(word: str) -> str:
    """Lower-case a Titlecase word ("The" -> "the"); leave "I", acronyms and mixed case alone."""
    rest = word[1:]  # "I" and one-letter words have no lower-case rest, so they stay
    if rest.islower() and word[:1].isupper():
        return word[:1].lower() + rest
    return word


def match_case(new: str, template: str) -> str:
    """Give ``new`` the case pattern of ``template``: ALL CAPS, Capitalised, or ``new`` unchanged."""
    if len(template) > 1 and template.isupper():
        return new.upper()
    if template[:1].isupper():
        return capitalise(new)
    return new


def split_units(text: str, unit: str = "sentence") -> tuple[str, list[str], list[str], str]:
    """Split ``text`` into ``(prefix, units, separators, suffix)`` with ``len(separators) == len(units) - 1``.

    ``unit`` is ``"sentence"`` (after ``.!?…`` and closing quotes, before whitespace) or ``"paragraph"`` (at
    blank lines). ``prefix + units[0] + separators[0] + ... + units[-1] + suffix == text``.

    >>> split_units(" Hi there. How are you?  Fine. ")
    (' ', ['Hi there.', 'How are you?', 'Fine.'], [' ', '  '], ' ')
    """
    core = text.strip()
    if not core:
        return text, [], [], ""
    start = text.index(core[0])
    prefix, suffix = text[:start], text[start + len(core) :]
    if unit == "sentence":
        parts = _SENTENCE_SPLIT.split(core)
        units, seps = [parts[0]], []
        for i in range(1, len(parts), 3):
            units[-1] += parts[i]
            seps.append(parts[i + 1])
            units.append(parts[i + 2])
    elif unit == "paragraph":
        parts = _PARAGRAPH_SPLIT.split(core)
        units, seps = parts[0::2], parts[1::2]
    else:
        raise ValueError(f"unit must be 'sentence' or 'paragraph', got {unit!r}")
    return prefix, units, seps, suffix


def join_units(prefix: str, units: list[str], seps: list[str], suffix: str) -> str:
    out = [prefix]
    for i, u in enumerate(units):
        if i:
            out.append(seps[i - 1])
        out.append(u)
    out.append(suffix)
    return "".join(out)
