"""Regulated verse (近体诗) layered on the sampler: a form's rules as masks over the vocabulary, and the
line-by-line decoding that keeps them (see rnnlab.generate for what each rule means).

* ``Sound``: a rhyme scheme (Pingshui or 中华新韵) as masks: the characters of each tone, the level-tone
  characters of each rhyme group;
* ``Rules``: what the poems of one request share -- the prefix's lines, the given first characters,
  the tone patterns that fit them (with their weights) and, per pattern, the rhyme groups large
  enough for it (``rules_for``);
* ``allowed``: what each poem may write at one position;
* ``decode``: ``candidates`` lines drawn at once per line (a batch through ``model.step``), the one the
  model finds likeliest kept; the poems of several requests decode as one batch, each with its own
  random generator (streams of poems and generators), each the poem it would be alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from . import verse
from .errors import UserError
from .poetry import PUNCTUATION
from .sampling import draw_each, select_rows

TRADITION = 3.0  # weight of the customary first line (7 characters: rhyming; 5: not) against 1 for the other
TONE_WORD = {verse.LEVEL: "level (平)", verse.OBLIQUE: "oblique (仄)"}


class Sound:
    """A rhyme scheme as masks over the model's vocabulary: tone classes and level-tone rhyme groups."""

    def __init__(self, vocab, scheme: str, char_mask: torch.Tensor) -> None:
        t = verse.table(scheme)
        v = len(vocab)
        self.scheme, self.table, self.groups = scheme, t, t.groups
        level, oblique = torch.zeros(v, dtype=torch.bool), torch.zeros(v, dtype=torch.bool)
        self.group_masks = torch.zeros(len(t.groups), v, dtype=torch.bool)  # (G, V) level readings only
        index = {g: i for i, g in enumerate(t.groups)}
        for i, ch in enumerate(vocab.tokens):
            tid = i + vocab.offset
            tones = t.tones(ch)
            level[tid], oblique[tid] = verse.LEVEL in tones, verse.OBLIQUE in tones
            for g in t.level_groups(ch):
                self.group_masks[index[g], tid] = True
        # What each template mark allows; characters outside the table fit only the free positions.
        self.tone_masks = {verse.EITHER: char_mask, verse.LEVEL: char_mask & level, verse.OBLIQUE: char_mask & oblique}
        self.group_masks &= char_mask


def split_prefix(prefix: str, shape: tuple[int, int]) -> tuple[list[str], str]:
    """(whole lines, the part of the next line) of a prefix, checked against the form."""
    width, lines = shape
    done, current = [], ""
    where = f"--prefix {prefix!r} does not fit the form {width}x{lines}"
    for ch in prefix:
        i = len(done)
        if ch in PUNCTUATION:
            want = "，" if i % 2 == 0 else "。"
            if len(current) != width:
                raise UserError(f"{where}: line {i + 1} has {len(current)} characters before {ch!r}, not {width}")
            if ch != want and not (i % 2 == 1 and ch in "？！"):
                raise UserError(f"{where}: line {i + 1} ends with {ch!r} where the form puts {want!r}")
            done.append(current)
            current = ""
        else:
            current += ch
            if len(current) > width:
                raise UserError(f"{where}: line {i + 1} is longer than {width} characters")
        if len(done) > lines or (len(done) == lines and current):
            raise UserError(f"{where}: it has more than {lines} lines")
    return done, current


@dataclass
class Rules:
    """Everything the poems of one request share."""

    shape: tuple[int, int]
    done: list[str]  # the prefix's whole lines
    partial: str  # and the part of the next one
    heads: dict[int, int]  # line -> the id of its given first character
    sound: Sound | None
    options: dict  # rhyme, tones, scheme, candidates, repeats
    patterns: list
    weights: torch.Tensor
    groups_for: dict  # pattern -> (G,) the rhyme groups large enough for it
    prefix_groups: dict  # pattern -> (G,) the groups the prefix's rhyming lines share
    reserved: torch.Tensor  # (V,) characters already written (no repeats)
    keywords: list = ()  # the keywords still to write, each a tuple of ids
    placements: dict = None  # pattern -> every way to place them: [{line: (keyword ids, start columns)}]


def _clashes(p: verse.Pattern, fixed: dict, width: int, sound: Sound | None, tones: bool) -> list[tuple[int, str]]:
    """(weight, what) of each given character that breaks the pattern; a wrong line end weighs
    double: it decides the rhyme, not just a tone."""
    if not tones:
        return []
    out = []
    for (i, k), ch in sorted(fixed.items()):
        want = p.template[i][k]
        if want != verse.EITHER and want not in sound.table.tones(ch):
            out.append((2 if k == width - 1 else 1, f"{ch} (line {i + 1}, character {k + 1}) is not {TONE_WORD[want]}"))
    return out


def _patterns(shape, sound: Sound | None, options: dict) -> list:
    """The form's tone patterns (or, without tones, the two free ones: first line rhyming or not)."""
    width, lines = shape
    if options["tones"]:
        for tone in (verse.LEVEL, verse.OBLIQUE):
            if not sound.tone_masks[tone].any():
                raise UserError(f"no character of the model's vocabulary has a {TONE_WORD[tone]} tone in the "
                                f"{options['scheme']} table: relax with --no-tones")
        return list(verse.patterns(width, lines))
    free = tuple(verse.EITHER * width for _ in range(lines))
    return [verse.Pattern("", free, free, tuple(i % 2 == 1 or (i == 0 and first) for i in range(lines)))
            for first in (True, False)]


def _rhyme_groups(fits: list, known: dict[int, str], sound: Sound, options: dict, reserved: torch.Tensor):
    """Per pattern, the groups with enough level-tone characters left for every rhyming line still to
    write, and the groups the written rhyming lines (``known``: line -> text, the prefix's and the kept
    later lines') share -> (usable patterns, groups_for, prefix_groups)."""
    groups_for, prefix_groups = {}, {}
    sizes = (sound.group_masks & ~reserved).sum(1) if not options["repeats"] else sound.group_masks.sum(1)
    for p in fits:
        to_write = sum(r for i, r in enumerate(p.rhyming) if i not in known)
        need = min(to_write, 1) if options["repeats"] else to_write
        groups_for[p] = sizes >= max(need, 1)
        ends = [sound.table.level_groups(line[-1]) for i, line in sorted(known.items()) if p.rhyming[i]]
        shared = frozenset.intersection(*ends) if ends else frozenset()
        shared = shared or (ends[-1] if ends else frozenset())  # a prefix that does not rhyme: its last rhyme
        if shared:
            prefix_groups[p] = torch.tensor([g in shared for g in sound.groups])
    usable = [p for p in fits if p in prefix_groups or groups_for[p].any()]
    if not usable:
        need = min(sum(r for i, r in enumerate(p.rhyming) if i not in known) for p in fits)
        best = int(sizes.argmax())
        raise UserError(
            f"no level-tone rhyme group of the {options['scheme']} table has {need} characters in the model's "
            f"vocabulary (the largest, {sound.groups[best]}, has {int(sizes[best])}): relax with --no-rhyme, "
            f"--allow-repeats{', --rhyme-scheme xinyun' if options['scheme'] == 'pingshui' else ''} or a 4-line form")
    return usable, groups_for, prefix_groups


def _starts(sound: Sound | None, options: dict, p: verse.Pattern, width: int, line: int, head: int | None,
            word: tuple[int, ...]) -> list[int]:
    """The columns where a keyword (ids) may start in ``line`` of pattern ``p``: each of its characters
    has the tone the pattern asks there, a given first character stays, and a rhyming line's last
    character is left to the rhyme."""
    out = []
    for s in range(width - len(word) + 1):
        cols = range(s, s + len(word))
        if options["rhyme"] and p.rhyming[line] and width - 1 in cols:
            continue
        if head is not None and s == 0 and word[0] != head:
            continue
        if options["tones"] and not all(sound.tone_masks[p.template[line][c]][w] for c, w in zip(cols, word)):
            continue
        out.append(s)
    return out


def _placements(sound, options: dict, p: verse.Pattern, shape, heads: dict, free: list[int], words: list) -> list:
    """Every way to write the keywords in the free lines of pattern ``p``, one keyword a line, in the
    order given: [{line: (keyword, its possible start columns)}]."""
    width, _ = shape
    starts = {(k, line): _starts(sound, options, p, width, line, heads.get(line), w)
              for k, w in enumerate(words) for line in free}
    return [{line: (w, starts[k, line]) for k, (w, line) in enumerate(zip(words, lines))}
            for lines in itertools.combinations(free, len(words))
            if all(starts[k, line] for k, line in enumerate(lines))]


def _keywords(vocab, keywords: tuple[str, ...], shape, written: str, free: list[int]) -> list[tuple[int, ...]]:
    """The keywords not yet in the poem's written text, as ids, checked against the form."""
    width, _ = shape
    for w in keywords:
        if len(w) > width:
            raise UserError(f"--keywords {w!r} has {len(w)} characters: a line of the {shape[0]}x{shape[1]} form "
                            f"holds {width}")
    words = [tuple(vocab.id(c) for c in w) for w in keywords if w not in written]
    if len(words) > len(free):
        raise UserError(f"--keywords: {len(words)} keywords to write but {len(free)} line{'s' * (len(free) != 1)} "
                        "left to write them in (each keyword goes in a line of its own)")
    return words


def rules_for(vocab, sound: Sound | None, shape, heads: list[int], acrostic: bool, prefix: str, given: str,
              options: dict, after: tuple[str, ...] = (), keywords: tuple[str, ...] = ()) -> Rules:
    """The rules the poems of one request are written under: the prefix's lines, the heads, the
    patterns that fit (with their weights) and, per pattern, the rhyme groups big enough for it.
    ``after``: whole lines (without marks) that follow the next line and are kept as they are (a line
    rewritten between others): they count like the prefix for the tone pattern, the rhyme and repeats.
    ``keywords``: words the poem must hold (those the written lines hold already aside), one in each
    of some of the lines still to write, where their tones fit the pattern."""
    width, _ = shape
    done, partial = split_prefix(prefix, shape)
    if after and partial:
        raise UserError("a line rewritten between others starts at the beginning of a line")
    heads_at = dict(enumerate(heads)) if acrostic else ({0: heads[0]} if heads else {})
    char = lambda token_id: vocab.tokens[token_id - vocab.offset]  # noqa: E731
    written = done + [partial]
    for i, h in heads_at.items():  # a head the prefix already wrote must agree with it
        if i < len(written) and written[i] and written[i][0] != char(h):
            raise UserError(f"--prefix line {i + 1} starts with {written[i][0]!r}, not {char(h)!r}")
    # The characters already decided: (line, position) -> character.
    fixed_heads = {(i, 0): char(h) for i, h in heads_at.items()}
    kept = {len(done) + 1 + j: line for j, line in enumerate(after)}  # line -> text, after the one to write
    fixed_prefix = {(i, k): ch for i, line in [*enumerate(written), *kept.items()] for k, ch in enumerate(line)}
    reserved = torch.zeros(len(vocab), dtype=torch.bool)  # no repeats: these are taken already
    for ch in set(fixed_heads.values()) | set(fixed_prefix.values()):
        reserved[vocab.id(ch)] = True
    clashes = lambda p, fixed: _clashes(p, fixed, width, sound, options["tones"])  # noqa: E731
    # Tones: a pattern must fit the begin/acrostic characters; the prefix is kept as written, so it
    # only prefers the patterns it breaks least.
    every = _patterns(shape, sound, options)
    fits = [p for p in every if not clashes(p, fixed_heads)]
    if not fits:
        detail = "; ".join(f"{p.name}: {', '.join(w for _, w in clashes(p, fixed_heads))}" for p in every)
        raise UserError(f"no {width}x{shape[1]} tone pattern fits {given!r} -- {detail}; choose other characters "
                        "or relax with --no-tones")
    groups_for, prefix_groups = {}, {}
    if options["rhyme"]:
        fits, groups_for, prefix_groups = _rhyme_groups(fits, {**dict(enumerate(done)), **kept}, sound, options,
                                                        reserved)
    # Keywords: the lines still to write whole, and per pattern every way to place the keywords there.
    free = [i for i in range(len(done) + bool(partial), shape[1]) if i not in kept]
    words = _keywords(vocab, keywords, shape, "".join(written) + "".join(after), free)
    placements = {p: _placements(sound, options, p, shape, heads_at, free, words) for p in fits} if words else {}
    if words:
        fits = [p for p in fits if placements[p]]
        if not fits:
            raise UserError(f"--keywords {' '.join(keywords)}: no line of the {width}x{shape[1]} form has room for "
                            "them where their tones fit the tone pattern (and off the rhyme); give other or fewer "
                            "keywords, or relax with --no-tones")

    # Prefer the patterns the prefix breaks least, then those whose base tones the given characters
    # match even at free positions; then tradition decides, at random.
    def rank(p):
        matches = sum(p.tones[i][k] in sound.table.tones(ch) for (i, k), ch in {**fixed_prefix, **fixed_heads}.items()
                      ) if options["tones"] else 0
        return (-sum(w for w, _ in clashes(p, fixed_prefix)), matches)

    top = max(rank(p) for p in fits)
    fits = [p for p in fits if rank(p) == top]
    weights = torch.tensor([TRADITION if p.first_rhymes == (width == 7) else 1.0 for p in fits])
    return Rules(shape, done, partial, heads_at, sound, options, fits, weights, groups_for, prefix_groups, reserved,
                 words, placements)


def allowed(r: Rules, char_mask: torch.Tensor, line: int, col: int, pats: list, used: torch.Tensor,
            groups) -> torch.Tensor:
    """(n, V): what each poem may write at this position."""
    n, width = len(pats), r.shape[0]
    if col == 0 and line in r.heads:  # a given first character, whatever else holds
        out = torch.zeros(n, char_mask.numel(), dtype=torch.bool)
        out[:, r.heads[line]] = True
        return out
    sound = r.sound
    if sound is None or not r.options["tones"]:
        out = char_mask.expand(n, -1).clone()
    else:
        out = torch.stack([sound.tone_masks[p.template[line][col]] for p in pats])
    rhyming = torch.tensor([groups is not None and col == width - 1 and p.rhyming[line] for p in pats])
    if rhyming.any():  # a level-tone character of a group each poem may still rhyme in
        in_group = (groups.float() @ sound.group_masks.float()) > 0  # (n, V)
        out[rhyming] &= in_group[rhyming]
    fresh = out & ~used
    # No repeats unless nothing else fits here; then the rule gives way, the tone and rhyme do not.
    empty = ~fresh.any(1)
    fresh[empty] = out[empty]
    if not fresh.any(1).all():
        p = int((~fresh.any(1)).nonzero()[0])
        want = pats[p].template[line][col] if r.options["tones"] else verse.EITHER
        what = ([TONE_WORD[want] + " tone"] if want != verse.EITHER else []) + (
            ["a rhyme in " + "/".join(g for g, ok in zip(sound.groups, groups[p]) if ok)] if rhyming[p] else [])
        raise UserError(f"no character of the model's vocabulary fits line {line + 1}, character {col + 1} "
                        f"({', '.join(what) or 'any character'}): relax with --no-tones or --no-rhyme")
    return fresh


def _keyword_rows(plans: list[dict], line: int, k: int, width: int, gens: list) -> torch.Tensor:
    """(n*k, width): the keyword character each candidate row must write at each column (-1: none).
    A poem's keyword for this line starts at a different allowed column in each candidate (in an
    order drawn with the poem's generator ``gens[p]``), so the model's choice among the candidates
    also places the word."""
    force = torch.full((len(plans) * k, width), -1, dtype=torch.long)
    for p, plan in enumerate(plans):
        if line in plan:
            word, starts = plan[line]
            order = torch.randperm(len(starts), generator=gens[p]).tolist()
            for j in range(k):
                s = starts[order[j % len(starts)]]
                force[p * k + j, s : s + len(word)] = torch.tensor(word)
    return force


def _line(sampler, r: Rules, line: int, c0: int, st, tok, pats, used, groups, rows, draw_options, plans, gens):
    """``candidates`` drafts of one line for each poem -> (their characters (n*k, width-c0), their
    log-probabilities (n*k,), the state after the line's mark, the mark's id)."""
    n, k = len(pats), r.options["candidates"]
    width, lines = r.shape
    picked = torch.zeros(n * k, width - c0, dtype=torch.long)
    lp = torch.zeros(n * k)
    force = _keyword_rows(plans, line, k, width, gens) if r.keywords else None
    # each poem's k candidate rows drawn with the poem's generator
    candidates = {**draw_options, "gen": [(g, m * k) for g, m in draw_options["gen"]]}
    for col in range(c0, width):
        logits, st = sampler.model.step(tok.to(sampler.device), st)
        logp = sampler.log_probs(logits)
        mask = allowed(r, sampler.char_mask, line, col, pats, used, groups)[rows]
        if force is not None and (force[:, col] >= 0).any():  # a keyword's character, whatever else holds
            at = (force[:, col] >= 0).nonzero()[:, 0]
            mask[at] = False
            mask[at, force[at, col]] = True
        tok = draw_each(logp, mask, candidates, gumbel=True)
        lp += logp.gather(1, tok[:, None])[:, 0]  # the model's own, untempered
        picked[:, col - c0] = tok
    mark = sampler.vocab.id("，" if line % 2 == 0 else "。")
    logits, st = sampler.model.step(tok.to(sampler.device), st)
    lp += sampler.log_probs(logits)[:, mark]
    if line == lines - 1:  # does the model think the poem ends here?
        logits, _ = sampler.model.step(torch.full((n * k,), mark, device=sampler.device), st)
        lp += sampler.log_probs(logits)[:, sampler.eos]
    return picked, lp, st, mark


def decode(sampler, n: int, r: Rules, prefix: str, prefix_ids: list[int], draw_options: dict) -> list[tuple]:
    """``n`` poems under ``r`` -> [(poem, rhyme group, pattern name, tone template)]; ``draw_options["gen"]``:
    streams ``[(generator, poems), ...]`` adding up to ``n`` (several requests' poems, each drawn with
    its own generator, as it would be alone)."""
    width, lines = r.shape
    options, sound, k, vocab = r.options, r.sound, r.options["candidates"], sampler.vocab
    parts = draw_options["gen"]
    gens = [g for g, m in parts for _ in range(m)]  # each poem's generator
    picks = [i for g, m in parts for i in torch.multinomial(r.weights, m, replacement=True, generator=g).tolist()]
    pats = [r.patterns[i] for i in picks]
    used = r.reserved.expand(n, -1).clone() if not options["repeats"] else torch.zeros(n, len(vocab), dtype=torch.bool)
    plans = [{} for _ in pats]  # each poem's keywords: line -> (keyword, its start columns), drawn among the ways
    if r.keywords:
        for p, pat in enumerate(pats):
            ways = r.placements[pat]
            plans[p] = ways[int(torch.randint(len(ways), (1,), generator=gens[p]))]
        if not options["repeats"]:  # a keyword's characters appear where the keyword is, not before
            used[:, [c for w in r.keywords for c in w]] = True
    # (n, G): the groups each poem may still rhyme in
    groups = torch.stack([r.prefix_groups.get(p, r.groups_for[p]) for p in pats]) if options["rhyme"] else None
    texts = [prefix] * n
    state, inp = sampler.prime(prefix_ids, n)
    rows = torch.arange(n).repeat_interleave(k)  # candidate row -> poem
    start = len(r.done)
    for line in range(start, lines):
        c0 = len(r.partial) if line == start else 0
        picked, lp, st, mark = _line(sampler, r, line, c0, select_rows(state, rows), inp[rows], pats, used, groups,
                                     rows, draw_options, plans, gens)
        # Keep each poem's likeliest candidate line.
        best = lp.view(n, k).argmax(1) + torch.arange(n) * k
        state, inp, chosen = select_rows(st, best), torch.full((n,), mark, dtype=torch.long), picked[best]
        for p in range(n):
            texts[p] += vocab.decode(chosen[p].tolist()) + vocab.tokens[mark - vocab.offset]
        if not options["repeats"]:
            used.scatter_(1, chosen, True)
        if options["rhyme"] and width > c0:
            for p, pat in enumerate(pats):
                if pat.rhyming[line]:
                    groups[p] &= sound.group_masks[:, chosen[p, -1]]
    out = []
    for p, pat in enumerate(pats):
        group = next((g for g, ok in zip(sound.groups, groups[p]) if ok), None) if options["rhyme"] else None
        out.append((texts[p], group, pat.name or None, pat.template if options["tones"] else None))
    return out
