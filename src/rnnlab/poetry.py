"""Classical Chinese poems as data: cleaning, forms, rhyme, and the quality measures of generated poems.

Nothing here knows about models. A poem's *content* is its paragraphs joined, e.g.
``床前明月光，疑是地上霜。举头望明月，低头思故乡。``; a *line* is the characters between two
punctuation marks. A *regular* poem (the forms of a quatrain 绝句 and regulated verse 律诗) has 4 or 8
lines of 5 or 7 characters each, ``，`` after the odd lines and ``。`` (or ``？``/``！``) after the even
ones; its form is written ``5x4``, ``7x4``, ``5x8`` or ``7x8``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from .verse import verse_rates

LINE_MARKS = "，。？！；"  # marks that end a line
PUNCTUATION = LINE_MARKS + "：、"
FORMS = {"5x4": (5, 4), "7x4": (7, 4), "5x8": (5, 8), "7x8": (7, 8)}
# Everything a cleaned poem may hold: CJK ideographs (all planes) and the poem punctuation above.
_ALLOWED = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f" + PUNCTUATION + "]")
_LINE = re.compile(f"([^{LINE_MARKS}]+)([{LINE_MARKS}])")


def odd_characters(content: str) -> list[str]:
    """Characters a cleaned poem may not hold: brackets, underscores, missing-character marks (□),
    digits, Latin letters ... -- what the classic course corpus filters out."""
    return sorted({c for c in content if not _ALLOWED.fullmatch(c)})


def split_lines(content: str) -> list[tuple[str, str]]:
    """``(line, mark)`` pairs, or [] when the content is not a sequence of marked lines."""
    pairs = _LINE.findall(content)
    return pairs if "".join(a + b for a, b in pairs) == content else []


def lines_of(content: str) -> list[str]:
    """The lines of any text (marks removed, empty pieces dropped)."""
    return [piece for piece in re.split(f"[{PUNCTUATION}]", content) if piece]


def form_of(content: str) -> str | None:
    """``5x4`` / ``7x4`` / ``5x8`` / ``7x8`` for a regular poem, else None."""
    pairs = split_lines(content)
    if len(pairs) not in (4, 8):
        return None
    width = len(pairs[0][0])
    if width not in (5, 7):
        return None
    for i, (line, mark) in enumerate(pairs):
        if len(line) != width or any(c in PUNCTUATION for c in line):
            return None
        if (i % 2 == 0 and mark != "，") or (i % 2 == 1 and mark not in "。？！"):
            return None
    return f"{width}x{len(pairs)}"


def parse_form(text: str) -> tuple[int, int] | None:
    """``5x4`` -> (5, 4); ``free`` -> None."""
    if text == "free":
        return None
    if text not in FORMS:
        raise ValueError(f"form {text!r}: choose one of {', '.join(FORMS)} or free")
    return FORMS[text]


@lru_cache(maxsize=None)
def rhyme_key(char: str) -> str:
    """The rhyme of a character: its Mandarin final without tone and without the medial i/u/ü glide
    (``ian`` rhymes with ``an``, ``uang`` with ``ang``). Modern pronunciation, via pypinyin: an
    approximation of the Tang rhyme books, used the same way for the corpus and for samples."""
    from pypinyin import Style, lazy_pinyin

    final = lazy_pinyin(char, style=Style.FINALS, strict=False)[0]
    final = {"iu": "iou", "ui": "uei", "un": "uen"}.get(final, final)
    if len(final) > 1 and final[0] in "iuv" and final[1] in "aeo":
        final = final[1:]
    return final


def rhymes(content: str) -> bool:
    """Do the even lines of a regular poem all end with the same rhyme?"""
    pairs = split_lines(content)
    finals = {rhyme_key(line[-1]) for i, (line, _) in enumerate(pairs) if i % 2 == 1}
    return len(finals) == 1


def quality(samples: list[str], training_lines: set[str]) -> dict:
    """What makes generated poems poems, measured:

    * ``well_formed``: share of samples that are regular 5/7-character quatrains or regulated verse;
    * ``rhyme_rate``: share of the well-formed samples whose even lines rhyme;
    * ``distinct_lines``: distinct lines / all lines (1.0 = no line repeated);
    * ``copy_rate``: share of lines found verbatim in the training poems;
    * ``forms``: how many samples have each form;
    * the rules of regulated verse, judged by ``rnnlab.verse.check_poem`` on the well-formed samples:
      ``rhyme_rate_pingshui`` / ``rhyme_rate_xinyun`` (even lines end on level-tone characters of one
      rhyme group, Pingshui or 中华新韵), ``tone_pattern_rate`` (the 2-4-6 tone pattern, Pingshui)
      and ``regulated_rate`` (rhyme, pattern and line ends all kept, Pingshui).
    """
    forms = [form_of(s) for s in samples]
    regular = [s for s, f in zip(samples, forms) if f]
    lines = [line for s in samples for line in lines_of(s)]
    return {
        "samples": len(samples),
        "well_formed": len(regular) / max(len(samples), 1),
        "rhyme_rate": sum(rhymes(s) for s in regular) / len(regular) if regular else 0.0,
        **verse_rates(regular),
        "distinct_lines": len(set(lines)) / max(len(lines), 1),
        "copy_rate": sum(line in training_lines for line in lines) / max(len(lines), 1),
        "forms": dict(Counter(f or "other" for f in forms).most_common()),
    }


def corpus_reference(contents: list[str]) -> dict:
    """The same measures on real poems: what the samples should look like."""
    forms = [form_of(c) for c in contents]
    regular = [c for c, f in zip(contents, forms) if f]
    lines = [line for c in contents for line in lines_of(c)]
    return {"poems": len(contents), "well_formed": len(regular) / max(len(contents), 1),
            "rhyme_rate": sum(rhymes(c) for c in regular) / len(regular) if regular else 0.0,
            **verse_rates(regular), "distinct_lines": len(set(lines)) / max(len(lines), 1)}


def format_poem(content: str) -> str:
    """A couplet per printed line: a line break after each 。？！；."""
    out, current = [], ""
    pairs = split_lines(content) or [(content, "")]
    for i, (line, mark) in enumerate(pairs):
        current += line + mark
        if mark in "。？！；" or i == len(pairs) - 1:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return "\n".join(out)
