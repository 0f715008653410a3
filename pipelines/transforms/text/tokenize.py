"""Lossless tokenisation for text ops: words and the separators between them.

A text is held as ``seps[0] words[0] seps[1] words[1] ... words[n-1] seps[n]``: ``n`` word spans (runs of
Unicode word characters, with inner apostrophes kept so that "don't" is one word) and ``n + 1`` separator spans
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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD_SPLIT = re.compile(r"(\w+(?:['\u2019]\w+)*)", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]]*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\u2026])([\"'\u2019\u201d)\]]*)(\s+)", re.UNICODE)
_PARAGRAPH_SPLIT = re.compile(r"(\s*\n[^\S\n]*\n\s*)", re.UNICODE)


@dataclass
class Tokens:
    """Words and separators of one text; ``len(seps) == len(words) + 1``."""

    words: list[str]
    seps: list[str]

    @classmethod
    def from_text(cls, text: str) -> Tokens:
        parts = _WORD_SPLIT.split(text)
        return cls(words=parts[1::2], seps=parts[0::2])

    def text(self) -> str:
        out = [""] * (2 * len(self.words) + 1)
        out[0::2] = self.seps
        out[1::2] = self.words
        return "".join(out)

    def copy(self) -> Tokens:
        return Tokens(list(self.words), list(self.seps))

    def is_sentence_start(self, i: int) -> bool:
        """Whether word ``i`` opens a sentence (first word, or after ``.!?`` or a line break)."""
        if i == 0:
            return True
        sep = self.seps[i].rstrip(" \t\"'(\u201c\u2018[")
        return bool(_SENTENCE_END.search(sep)) or "\n" in self.seps[i]

    def delete_span(self, start: int, stop: int, *, fix_case: bool = True) -> None:
        """Remove words ``start:stop`` and merge the separators on either side into one readable separator."""
        if not 0 <= start < stop <= len(self.words):
            raise IndexError(f"word span {start}:{stop} out of range for {len(self.words)} words")
        was_title = self.is_sentence_start(start) and _is_title(self.words[start])
        at_end = stop == len(self.words)
        merged = merge_separators(self.seps[start], self.seps[stop], at_start=start == 0, at_end=at_end)
        del self.words[start:stop]
        self.seps[start : stop + 1] = [merged]
        if fix_case and was_title and start < len(self.words) and self.is_sentence_start(start):
            self.words[start] = capitalise(self.words[start])

    def insert_after(self, pos: int, word: str) -> None:
        """Insert ``word`` as the new word ``pos`` (1 <= pos <= n), right after the word before it."""
        if not 1 <= pos <= len(self.words):
            raise IndexError(f"insert position {pos} out of range 1..{len(self.words)}")
        self.words.insert(pos, word)
        self.seps.insert(pos, " ")


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
    if word == "I" or not _is_title(word) or not word[1:].islower():
        return word
    return word[:1].lower() + word[1:]


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
