"""Sampling poems from a trained language model: free, or written to a form under the rules of
regulated verse (近体诗, see rnnlab.verse).

Free sampling draws each next character from the model (never padding, start or unknown tokens)
until the end token or ``max_tokens``.

With a form (``form="7x4"`` ..., or an acrostic) the decoder writes line by line and decides by
position what may come next:

* inside a line characters only; after it ``，`` (odd lines) or ``。`` (even lines); after the last
  line the end token: every poem is well-formed by construction;
* ``begin``: the poem's first character; ``acrostic``: each line's first character;
* tones (``tones=True``): one of the form's four standard patterns fixes the tone (平 or 仄) of every
  position but the free ones; a character with several readings fits either tone. The pattern is
  chosen to fit the given characters (begin, acrostic, prefix);
* rhyme (``rhyme=True``): every rhyming line ends on a level-tone character of one rhyme group
  (``rhyme_scheme`` pingshui or xinyun). The group is not fixed beforehand: the first rhyming line may
  end on any level-tone character whose group has enough characters for the whole poem, and the
  line the model likes best decides the group;
* no character comes back in a later line (``repeats=True`` allows it); within a line it may (萋萋);
* ``prefix``: text already written (whole lines with their marks, then possibly part of a line); the
  decoder reads it first and continues after it under the same rules, taking the rhyme group from
  its rhyming lines.

Masks alone would push the model into characters it finds unlikely wherever the rules bite, so each
line is drawn ``candidates`` times at once (a batch through ``model.step``) and the candidate with
the highest log-probability under the model (its characters and the mark after it) is kept: the
model chooses where the rules cost it least. (THU's Jiuge/MixPoet likewise mask by tone and rhyme and
rerank whole lines.) Within what is allowed the model's probabilities decide, shaped by
``temperature``, ``top_k`` (keep the k likeliest) and ``top_p`` (keep the smallest set whose
probability reaches p).

Every loop has a fixed bound (lines x characters, candidates in one batch); a rule the vocabulary
cannot meet is found before decoding or, at the latest, at the position where nothing fits, and
reported as a UserError that says what to relax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import verse
from .errors import UserError
from .options import POEM_FORMS, Options, option
from .poetry import FORMS, PUNCTUATION, lines_of, parse_form
from .vocab import BOS, EOS

MAX_TOKENS = 120  # a free poem is cut here (the cleaned corpus holds at most 80 characters by default)
CANDIDATES = 8  # candidate lines drawn for each line of a form; the likeliest is kept
MAX_ROWS = 512  # poems x candidates decoded in one batch (larger requests go in chunks)
TRADITION = 3.0  # weight of the customary first line (7 characters: rhyming; 5: not) against 1 for the other
TONE_WORD = {verse.LEVEL: "level (平)", verse.OBLIQUE: "oblique (仄)"}


@dataclass(frozen=True)
class SampleOptions(Options):
    """How a poem is drawn: declared once for ``rnnlab generate``, ``Run.generate``, ``POST
    /api/poems/generate``, the page's poem form and the samples of the poems report."""

    begin: str = option("", "the poem's first character", max_chars=1, zh="首字")
    acrostic: str = option("", "each line's first character, e.g. 春夏秋冬", max_chars=8, zh="藏头：每行的第一个字")
    form: str = option("free", "characters x lines (5x4, 7x4: quatrains; 5x8, 7x8: regulated verse)",
                       choices=POEM_FORMS, zh="体裁：每行字数 x 行数")
    temperature: float = option(0.8, "below 1: safer; above 1: wilder", min=0.05, max=10, typical=(0.1, 2.0),
                                zh="温度：小于 1 更稳妥，大于 1 更大胆")
    top_k: int = option(0, "sample among the k likeliest characters (0 = all)", min=0, max=100_000,
                        zh="只在最可能的 k 个字中抽样（0 = 全部）")
    top_p: float = option(1.0, "nucleus sampling: the smallest set of characters with this probability", above=0,
                          max=1, zh="核采样：累计概率达到 p 的最小字集")
    seed: int = option(0, "random seed: the same seed writes the same poem", min=0, max=2**32 - 1, zh="随机种子")
    rhyme_scheme: str = option("pingshui", "tones and rhyme groups: Pingshui (平水韵, Tang) or 中华新韵 (modern)",
                               choices=verse.SCHEMES, zh="韵书：平水韵（唐）或中华新韵（现代）")
    rhyme: bool = option(True, "with a form: rhyming lines rhyme", zh="押韵")
    tones: bool = option(True, "with a form: keep a tone pattern (平仄)", zh="讲平仄")
    candidates: int = option(CANDIDATES, "with a form: candidate lines drawn per line, the likeliest kept", min=1,
                             max=64, zh="每行抽几句候选，留最可能的一句")
    repeats: bool = option(False, "with a form: a character may come back in a later line", flag="--allow-repeats",
                           zh="允许后面的行重复用字")
    prefix: str = option("", "text already written (e.g. the first lines with their marks): continue it",
                         max_chars=200, zh="已写好的开头，接着写")


def _select(state, index: torch.Tensor):
    """Rows ``index`` of a recurrent state: a (layers, B, H) tensor or a tuple of them (LSTM)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(1, index.to(state.device))
    return type(state)(_select(s, index) for s in state)


class _Sound:
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


class PoemSampler:
    def __init__(self, model, vocab, device) -> None:
        self.model, self.vocab, self.device = model, vocab, device
        self.bos, self.eos = BOS, EOS
        v = len(vocab)
        self.punct_ids = torch.tensor([vocab.id(c) for c in PUNCTUATION if c in vocab], dtype=torch.long)
        self.char_mask = torch.ones(v, dtype=torch.bool)  # characters proper
        self.char_mask[: vocab.offset] = False
        self.char_mask[self.punct_ids] = False
        self.free_mask = torch.ones(v, dtype=torch.bool)  # free sampling: anything but pad/unk/start
        self.free_mask[: vocab.offset] = False
        self.free_mask[EOS] = True
        self._sounds: dict[str, _Sound] = {}

    def sound(self, scheme: str) -> _Sound:
        if scheme not in self._sounds:
            self._sounds[scheme] = _Sound(self.vocab, scheme, self.char_mask)
        return self._sounds[scheme]

    # --- checks with clear messages ------------------------------------------------------------
    def check_char(self, ch: str, what: str) -> int:
        if len(ch) != 1 or ch in PUNCTUATION or ch.isspace():
            raise UserError(f"{what} {ch!r}: give one Chinese character")
        if ch in self.vocab:
            return self.vocab.id(ch)
        hint = ""
        try:
            import opencc

            simple = opencc.OpenCC("t2s").convert(ch)
            if simple != ch and simple in self.vocab:
                hint = f"; did you mean the simplified {simple!r}?"
        except Exception:  # OpenCC missing or failing only loses the hint
            pass
        raise UserError(f"{what} {ch!r} is not in the model's vocabulary ({len(self.vocab.tokens):,} characters){hint}")

    def plan(self, begin: str, acrostic: str, form: str) -> tuple[tuple[int, int] | None, list[int]]:
        shape = None
        if form != "free":
            try:
                shape = parse_form(form)
            except ValueError as e:
                raise UserError(f"--form: {e}") from None
        if shape and not ("，" in self.vocab and "。" in self.vocab):
            raise UserError("this model never saw the marks ， and 。: it cannot write a form; use --form free")
        if acrostic:
            if shape is None:
                if len(acrostic) not in (4, 8):
                    raise UserError(f"--acrostic {acrostic!r} has {len(acrostic)} characters: an acrostic needs one per "
                                    f"line of a form ({', '.join(FORMS)}), so 4 or 8")
                shape = (7, len(acrostic))
            elif len(acrostic) != shape[1]:
                raise UserError(f"--acrostic {acrostic!r} has {len(acrostic)} characters but --form {form} has {shape[1]} lines")
            if begin and begin != acrostic[0]:
                raise UserError(f"--begin {begin!r} and --acrostic {acrostic!r} disagree on the first character")
            heads = [self.check_char(c, "acrostic character") for c in acrostic]
        else:
            heads = [self.check_char(begin, "begin character")] if begin else []
        return shape, heads

    def _prefix_ids(self, prefix: str) -> list[int]:
        ids = []
        for ch in prefix:
            if ch in PUNCTUATION:
                if ch not in self.vocab:
                    raise UserError(f"prefix mark {ch!r} is not in the model's vocabulary")
                ids.append(self.vocab.id(ch))
            else:
                ids.append(self.check_char(ch, "prefix character"))
        return ids

    @staticmethod
    def _split_prefix(prefix: str, shape: tuple[int, int]) -> tuple[list[str], str]:
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

    # --- sampling ------------------------------------------------------------------------------
    def _draw(self, logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_k: int, top_p: float,
              gen: torch.Generator, gumbel: bool = False) -> torch.Tensor:
        logits = (logits.float().cpu() / temperature).masked_fill(~allowed, float("-inf"))  # (B, V)
        if top_k:
            kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p < 1.0:
            probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
            drop = probs.cumsum(-1) - probs >= top_p  # keep the head up to and including the token crossing p
            logits = logits.scatter(-1, order, probs.masked_fill(drop, 0).log())
        if gumbel:
            # The same distribution by the Gumbel-max trick: argmax of the log-probabilities plus
            # independent Gumbel noise. On a CPU it is many times faster than torch.multinomial for
            # the hundreds of rows (poems x candidate lines) of regulated decoding.
            noise = torch.rand(logits.shape, generator=gen).clamp_(min=1e-20).log_().neg_().log_().neg_()
            return (logits + noise).argmax(-1)
        return torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]

    def _logp(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's log-probabilities (an adaptive softmax gives them already)."""
        logits = logits.float().cpu()
        return logits if getattr(self.model, "adaptive", None) is not None else logits.log_softmax(-1)

    def _prime(self, prefix_ids: list[int], n: int):
        """(state, next input) for ``n`` poems after reading ``<s>`` and the prefix."""
        if not prefix_ids:
            return None, torch.full((n,), self.bos, dtype=torch.long)
        ids = torch.tensor([[self.bos] + prefix_ids[:-1]], device=self.device)
        _, state = self.model.scores(ids, None)
        return _select(state, torch.zeros(n, dtype=torch.long)), torch.full((n,), prefix_ids[-1], dtype=torch.long)

    @torch.no_grad()
    def sample(self, n: int = 1, max_tokens: int = MAX_TOKENS, details: bool = False, **options) -> list:
        """``n`` poems drawn as ``options`` (``SampleOptions``' fields) say, reproducible from ``seed``:
        their content strings, or with ``details`` dicts ``{"poem", "lines", "rhyme_group", "pattern",
        "tones", "logprob"}`` (``logprob``: the model's mean log-probability per token of the poem, marks
        and end token included; ``rhyme_group`` and ``pattern`` are those the decoder kept, None when
        not asked for or in free form)."""
        o = SampleOptions(**options)
        if not 1 <= n <= 10_000:
            raise UserError(f"-n {n}: give between 1 and 10000 samples")
        if not 2 <= max_tokens <= 2000:
            raise UserError(f"max tokens {max_tokens}: give between 2 and 2000")
        begin, acrostic, form, prefix, candidates = o.begin, o.acrostic, o.form, o.prefix, o.candidates
        prefix = "".join(prefix.split())
        shape, heads = self.plan(begin, acrostic, form)
        prefix_ids = self._prefix_ids(prefix)
        if len(prefix_ids) >= max_tokens and not shape:
            raise UserError(f"--prefix has {len(prefix_ids)} characters: no room left within {max_tokens}")
        if prefix and begin and prefix[0] != begin:
            raise UserError(f"--begin {begin!r} and --prefix {prefix!r} disagree on the first character")
        gen = torch.Generator().manual_seed(o.seed)
        self.model.eval()
        draw = dict(temperature=o.temperature, top_k=o.top_k, top_p=o.top_p, gen=gen)
        if shape:
            rules = dict(rhyme=o.rhyme, tones=o.tones, scheme=o.rhyme_scheme, candidates=candidates, repeats=o.repeats)
            setup = self._setup(shape, heads, bool(acrostic), prefix, acrostic or begin, rules)
            chunk = max(1, MAX_ROWS // candidates)
            made = [p for start in range(0, n, chunk)
                    for p in self._regulated(min(chunk, n - start), setup, prefix, prefix_ids, draw)]
        else:
            made = [(p, None, None, None) for p in self._free(n, heads, prefix, prefix_ids, max_tokens, draw)]
        poems = [p for p, *_ in made]
        if not details:
            return poems
        scores = self.logprob(poems)
        return [{"poem": p, "lines": lines_of(p), "rhyme_group": g, "pattern": name, "tones": list(t) if t else None,
                 "logprob": s} for (p, g, name, t), s in zip(made, scores)]

    def _free(self, n: int, heads: list[int], prefix: str, prefix_ids: list[int], max_tokens: int, draw: dict) -> list[str]:
        state, tokens = self._prime(prefix_ids, n)
        out = torch.zeros(n, 0, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        steps = max_tokens - len(prefix_ids)
        for pos in range(steps):
            logits, state = self.model.step(tokens.to(self.device), state)  # (n, V)
            allowed = self.free_mask.expand(n, -1).clone()
            if pos == 0 and heads and not prefix_ids:
                allowed[:] = False
                allowed[:, heads[0]] = True
            if pos == steps - 1:  # out of room: end here
                allowed[:] = False
                allowed[:, self.eos] = True
            tokens = self._draw(logits, allowed, **draw)
            tokens = tokens.masked_fill(done, self.eos)
            out = torch.cat([out, tokens[:, None]], dim=1)
            done |= tokens == self.eos
            if done.all():
                break
        return [prefix + self.vocab.decode(row[row != self.eos].tolist()) for row in out]

    # --- regulated verse -----------------------------------------------------------------------
    def _setup(self, shape, heads: list[int], acrostic: bool, prefix: str, given: str, rules: dict) -> dict:
        """Everything the poems of one request share: the prefix's lines, the heads, the patterns
        that fit (with their weights) and, per pattern, the rhyme groups big enough for it."""
        width, lines = shape
        done, partial = self._split_prefix(prefix, shape)
        heads_at = dict(enumerate(heads)) if acrostic else ({0: heads[0]} if heads else {})
        written = done + [partial]
        for i, h in heads_at.items():  # a head the prefix already wrote must agree with it
            if i < len(written) and written[i] and written[i][0] != self.vocab.tokens[h - self.vocab.offset]:
                raise UserError(f"--prefix line {i + 1} starts with {written[i][0]!r}, not {self.vocab.tokens[h - self.vocab.offset]!r}")
        sound = self.sound(rules["scheme"]) if rules["rhyme"] or rules["tones"] else None
        if rules["tones"]:
            for tone, mask in ((verse.LEVEL, sound.tone_masks[verse.LEVEL]), (verse.OBLIQUE, sound.tone_masks[verse.OBLIQUE])):
                if not mask.any():
                    raise UserError(f"no character of the model's vocabulary has a {TONE_WORD[tone]} tone in the "
                                    f"{rules['scheme']} table: relax with --no-tones")
            options = list(verse.patterns(width, lines))
        else:  # no tone pattern: any character anywhere; the first line rhymes or not, as with tones
            free = tuple(verse.EITHER * width for _ in range(lines))
            options = [verse.Pattern("", free, free, tuple(i % 2 == 1 or (i == 0 and first) for i in range(lines)))
                       for first in (True, False)]
        # The characters already decided: (line, position) -> character.
        fixed_heads = {(i, 0): self.vocab.tokens[h - self.vocab.offset] for i, h in heads_at.items()}
        fixed_prefix = {(i, k): ch for i, line in enumerate(written) for k, ch in enumerate(line)}
        reserved = torch.zeros(len(self.vocab), dtype=torch.bool)  # no repeats: these are taken already
        for ch in set(fixed_heads.values()) | set(fixed_prefix.values()):
            reserved[self.vocab.id(ch)] = True

        def clashes(p: verse.Pattern, fixed: dict) -> list[tuple[int, str]]:
            """(weight, what) of each given character that breaks the pattern; a wrong line end
            weighs double: it decides the rhyme, not just a tone."""
            if not rules["tones"]:
                return []
            out = []
            for (i, k), ch in sorted(fixed.items()):
                want = p.template[i][k]
                if want != verse.EITHER and want not in sound.table.tones(ch):
                    out.append((2 if k == width - 1 else 1, f"{ch} (line {i + 1}, character {k + 1}) is not {TONE_WORD[want]}"))
            return out

        # Tones: a pattern must fit the begin/acrostic characters; the prefix is kept as written, so
        # it only prefers the patterns it breaks least.
        fits = [p for p in options if not clashes(p, fixed_heads)]
        if not fits:
            detail = "; ".join(f"{p.name}: {', '.join(w for _, w in clashes(p, fixed_heads))}" for p in options)
            raise UserError(f"no {width}x{lines} tone pattern fits {given!r} -- {detail}; choose other characters "
                            "or relax with --no-tones")
        # Rhyme: groups with enough level-tone characters left for every rhyming line still to write.
        groups_for, prefix_groups = {}, {}
        if rules["rhyme"]:
            sizes = (sound.group_masks & ~reserved).sum(1) if not rules["repeats"] else sound.group_masks.sum(1)
            for p in fits:
                to_write = sum(r for i, r in enumerate(p.rhyming) if i >= len(done))
                need = min(to_write, 1) if rules["repeats"] else to_write
                groups_for[p] = sizes >= max(need, 1)
                ends = [sound.table.level_groups(line[-1]) for i, line in enumerate(done) if p.rhyming[i]]
                shared = frozenset.intersection(*ends) if ends else frozenset()
                shared = shared or (ends[-1] if ends else frozenset())  # a prefix that does not rhyme: its last rhyme
                if shared:
                    prefix_groups[p] = torch.tensor([g in shared for g in sound.groups])
            usable = [p for p in fits if p in prefix_groups or groups_for[p].any()]
            if not usable:
                need = min(sum(r for i, r in enumerate(p.rhyming) if i >= len(done)) for p in fits)
                best = int(sizes.argmax())
                raise UserError(
                    f"no level-tone rhyme group of the {rules['scheme']} table has {need} characters in the model's "
                    f"vocabulary (the largest, {sound.groups[best]}, has {int(sizes[best])}): relax with --no-rhyme, "
                    f"--allow-repeats{', --rhyme-scheme xinyun' if rules['scheme'] == 'pingshui' else ''} or a 4-line form")
            fits = usable
        # Prefer the patterns the prefix breaks least, then those whose base tones the given
        # characters match even at free positions; then tradition decides, at random.
        def rank(p):
            matches = sum(p.tones[i][k] in sound.table.tones(ch) for (i, k), ch in {**fixed_prefix, **fixed_heads}.items()
                          ) if rules["tones"] else 0
            return (-sum(w for w, _ in clashes(p, fixed_prefix)), matches)
        top = max(rank(p) for p in fits)
        fits = [p for p in fits if rank(p) == top]
        customary = width == 7
        weights = torch.tensor([TRADITION if p.first_rhymes == customary else 1.0 for p in fits])
        return dict(shape=shape, done=done, partial=partial, heads=heads_at, sound=sound, rules=rules, patterns=fits,
                    weights=weights, groups_for=groups_for, prefix_groups=prefix_groups, reserved=reserved)

    def _regulated(self, n: int, s: dict, prefix: str, prefix_ids: list[int], draw: dict) -> list[tuple]:
        width, lines = s["shape"]
        rules, sound, k = s["rules"], s["sound"], s["rules"]["candidates"]
        gen = draw["gen"]
        picks = torch.multinomial(s["weights"], n, replacement=True, generator=gen).tolist()
        pats = [s["patterns"][i] for i in picks]
        used = s["reserved"].expand(n, -1).clone() if not rules["repeats"] else torch.zeros(n, len(self.vocab), dtype=torch.bool)
        if rules["rhyme"]:  # (n, G): the groups each poem may still rhyme in
            groups = torch.stack([s["prefix_groups"].get(p, s["groups_for"][p]) for p in pats])
        texts = [prefix] * n
        state, inp = self._prime(prefix_ids, n)
        rows = torch.arange(n).repeat_interleave(k)  # candidate row -> poem
        start = len(s["done"])
        for line in range(start, lines):
            c0 = len(s["partial"]) if line == start else 0
            st, tok = _select(state, rows), inp[rows]
            picked = torch.zeros(n * k, width - c0, dtype=torch.long)
            lp = torch.zeros(n * k)
            for col in range(c0, width):
                logits, st = self.model.step(tok.to(self.device), st)
                logp = self._logp(logits)
                allowed = self._allowed(line, col, pats, s, used, groups if rules["rhyme"] else None)[rows]
                tok = self._draw(logp, allowed, draw["temperature"], draw["top_k"], draw["top_p"], gen, gumbel=True)
                lp += logp.gather(1, tok[:, None])[:, 0]  # the model's own, untempered
                picked[:, col - c0] = tok
            mark = self.vocab.id("，" if line % 2 == 0 else "。")
            logits, st = self.model.step(tok.to(self.device), st)
            lp += self._logp(logits)[:, mark]
            if line == lines - 1:  # does the model think the poem ends here?
                logits, _ = self.model.step(torch.full((n * k,), mark, device=self.device), st)
                lp += self._logp(logits)[:, self.eos]
            # Keep each poem's likeliest candidate line.
            best = lp.view(n, k).argmax(1) + torch.arange(n) * k
            state, inp, chosen = _select(st, best), torch.full((n,), mark, dtype=torch.long), picked[best]
            for p in range(n):
                texts[p] += self.vocab.decode(chosen[p].tolist()) + self.vocab.tokens[mark - self.vocab.offset]
            if not rules["repeats"]:
                used.scatter_(1, chosen, True)
            if rules["rhyme"] and width > c0:
                for p, pat in enumerate(pats):
                    if pat.rhyming[line]:
                        groups[p] &= sound.group_masks[:, chosen[p, -1]]
        out = []
        for p, pat in enumerate(pats):
            group = next((g for g, ok in zip(sound.groups, groups[p]) if ok), None) if rules["rhyme"] else None
            out.append((texts[p], group, pat.name or None, pat.template if rules["tones"] else None))
        return out

    def _allowed(self, line: int, col: int, pats: list, s: dict, used: torch.Tensor, groups) -> torch.Tensor:
        """(n, V): what each poem may write at this position."""
        n, width = len(pats), s["shape"][0]
        if col == 0 and line in s["heads"]:  # a given first character, whatever else holds
            allowed = torch.zeros(n, len(self.vocab), dtype=torch.bool)
            allowed[:, s["heads"][line]] = True
            return allowed
        sound = s["sound"]
        if sound is None or not s["rules"]["tones"]:
            allowed = self.char_mask.expand(n, -1).clone()
        else:
            allowed = torch.stack([sound.tone_masks[p.template[line][col]] for p in pats])
        rhyming = torch.tensor([groups is not None and col == width - 1 and p.rhyming[line] for p in pats])
        if rhyming.any():  # a level-tone character of a group each poem may still rhyme in
            in_group = (groups.float() @ sound.group_masks.float()) > 0  # (n, V)
            allowed[rhyming] &= in_group[rhyming]
        fresh = allowed & ~used
        # No repeats unless nothing else fits here; then the rule gives way, the tone and rhyme do not.
        empty = ~fresh.any(1)
        fresh[empty] = allowed[empty]
        if not fresh.any(1).all():
            p = int((~fresh.any(1)).nonzero()[0])
            want = pats[p].template[line][col] if s["rules"]["tones"] else verse.EITHER
            what = ([TONE_WORD[want] + " tone"] if want != verse.EITHER else []) + (
                ["a rhyme in " + "/".join(g for g, ok in zip(sound.groups, groups[p]) if ok)] if rhyming[p] else [])
            raise UserError(f"no character of the model's vocabulary fits line {line + 1}, character {col + 1} "
                            f"({', '.join(what) or 'any character'}): relax with --no-tones or --no-rhyme")
        return fresh

    @torch.no_grad()
    def logprob(self, poems: list[str]) -> list[float]:
        """The model's mean log-probability per token of each poem (its characters, marks and the end
        token; unknown characters score as ``<unk>``): how fluent the model finds it."""
        out = []
        self.model.eval()
        for start in range(0, len(poems), 64):
            batch = [self.vocab.encode(p) + [self.eos] for p in poems[start : start + 64]]
            width = max(len(b) for b in batch)
            targets = torch.zeros(len(batch), width, dtype=torch.long)
            for i, b in enumerate(batch):
                targets[i, : len(b)] = torch.tensor(b)
            ids = torch.cat([torch.full((len(batch), 1), self.bos), targets[:, :-1]], dim=1)
            logits, _ = self.model.scores(ids.to(self.device))
            logp = logits.float().cpu().log_softmax(-1).gather(2, targets[..., None])[..., 0]
            real = targets > 0
            out += ((logp * real).sum(1) / real.sum(1)).tolist()
        return out
