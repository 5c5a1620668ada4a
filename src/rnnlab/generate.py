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
* ``keywords``: words the poem must hold (明月 故乡), one in each of some of the lines still to write,
  in the order given: for each poem a way to place them is drawn among those where every keyword's
  characters have the tones the pattern asks (a rhyming line's last character is left to the rhyme),
  and each candidate of such a line puts the word at another allowed column, so the model's choice
  of the likeliest candidate also chooses where the word sits;
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

The parts: rnnlab.sampling draws (temperature, top-k, top-p, masks) and runs the free loop;
rnnlab.regulated holds the form's rules as masks and decodes line by line; this module checks a
request and puts them together.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch

from . import regulated, verse
from .errors import UserError
from .options import POEM_FORMS, Options, option
from .poetry import FORMS, PUNCTUATION, lines_of, parse_form
from .sampling import sample, select_rows
from .vocab import BOS, EOS

MAX_TOKENS = 120  # a free poem is cut here (the cleaned corpus holds at most 80 characters by default)
CANDIDATES = 8  # candidate lines drawn for each line of a form; the likeliest is kept
MAX_ROWS = 512  # poems x candidates decoded in one batch (larger requests go in chunks)


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
    keywords: str = option("", "with a form: words the poem must hold, separated by spaces or commas (e.g. 明月 故乡): "
                           "one in each of some lines, in the order given, where their tones fit", max_chars=40,
                           zh="关键词：诗中必须出现的词，用空格或逗号分隔（如 明月 故乡），按顺序各占一行，放在平仄相合的位置")


def _batches(jobs: list[tuple[int, int]], gens: list, size: int):
    """The requests' poems in batches of at most ``size`` poems, in order, as streams
    ``[(generator, poems), ...]``: a request that does not fit the room left starts a batch, and one of
    more than ``size`` poems fills whole batches of its own one after another, as alone (its generator
    runs through the same chunks); its last part shares a batch with the next requests."""
    batch, room = [], size
    for g, (_, n) in zip(gens, jobs):
        if n > room and batch:
            yield batch
            batch, room = [], size
        while n:
            m = min(n, room)
            batch.append((g, m))
            n, room = n - m, room - m
            if not room:
                yield batch
                batch, room = [], size
    if batch:
        yield batch


class PoemSampler:
    """A trained language model's poems: free, or written to a form (``sample``), and how likely the
    model finds a poem (``logprob``)."""

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
        self._sounds: dict[str, regulated.Sound] = {}

    def sound(self, scheme: str) -> regulated.Sound:
        if scheme not in self._sounds:
            self._sounds[scheme] = regulated.Sound(self.vocab, scheme, self.char_mask)
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

    def keywords(self, text: str) -> tuple[str, ...]:
        """``--keywords``: the words, split at spaces and commas, each character known to the model."""
        words = tuple(w for w in re.split(r"[\s,，、;；]+", text) if w)
        for w in words:
            for ch in w:
                self.check_char(ch, f"--keywords {w!r}: character")
        return words

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's log-probabilities (an adaptive softmax gives them already)."""
        logits = logits.float().cpu()
        return logits if getattr(self.model, "adaptive", None) is not None else logits.log_softmax(-1)

    def prime(self, prefix_ids: list[int], n: int):
        """(state, next input) for ``n`` poems after reading ``<s>`` and the prefix."""
        if not prefix_ids:
            return None, torch.full((n,), self.bos, dtype=torch.long)
        ids = torch.tensor([[self.bos] + prefix_ids[:-1]], device=self.device)
        _, state = self.model.scores(ids, None)
        return select_rows(state, torch.zeros(n, dtype=torch.long)), torch.full((n,), prefix_ids[-1], dtype=torch.long)

    def sample(self, n: int = 1, max_tokens: int = MAX_TOKENS, details: bool = False, after: tuple[str, ...] = (),
               **options) -> list:
        """``n`` poems drawn as ``options`` (``SampleOptions``' fields) say, reproducible from ``seed``
        (``after``: with a form, whole lines kept after the next one, which its tones, rhyme and
        characters must agree with -- a line rewritten between others):
        their content strings, or with ``details`` dicts ``{"poem", "lines", "rhyme_group", "pattern",
        "tones", "logprob"}`` (``logprob``: the model's mean log-probability per token of the poem, marks
        and end token included; ``rhyme_group`` and ``pattern`` are those the decoder kept, None when
        not asked for or in free form)."""
        seed = options.pop("seed", SampleOptions.seed)
        return self.sample_joined([(seed, n)], max_tokens, details, after, **options)[0]

    @torch.no_grad()
    def sample_joined(self, jobs: list[tuple[int, int]], max_tokens: int = MAX_TOKENS, details: bool = False,
                      after: tuple[str, ...] = (), **options) -> list[list]:
        """``sample`` for several requests that differ only in their ``(seed, n)`` (``jobs``), decoded
        together (batches of up to ``MAX_ROWS`` rows): each request's poems, each list exactly what
        ``sample(n, seed=seed, ...)`` gives alone (every request draws with a generator of its own)."""
        o = SampleOptions(**options)
        for _, n in jobs:
            if not 1 <= n <= 10_000:
                raise UserError(f"-n {n}: give between 1 and 10000 samples")
        if not 2 <= max_tokens <= 2000:
            raise UserError(f"max tokens {max_tokens}: give between 2 and 2000")
        begin, acrostic, form, prefix, candidates = o.begin, o.acrostic, o.form, o.prefix, o.candidates
        prefix = "".join(prefix.split())
        shape, heads = self.plan(begin, acrostic, form)
        prefix_ids = self._prefix_ids(prefix)
        keywords = self.keywords(o.keywords)
        if keywords and not shape:
            raise UserError(f"--keywords {o.keywords!r}: keywords need a form (--form 5x4, 7x4, 5x8 or 7x8): the "
                            "decoder places them line by line")
        if len(prefix_ids) >= max_tokens and not shape:
            raise UserError(f"--prefix has {len(prefix_ids)} characters: no room left within {max_tokens}")
        if prefix and begin and prefix[0] != begin:
            raise UserError(f"--begin {begin!r} and --prefix {prefix!r} disagree on the first character")
        gens = [torch.Generator().manual_seed(seed) for seed, _ in jobs]
        self.model.eval()
        draw = dict(temperature=o.temperature, top_k=o.top_k, top_p=o.top_p)
        if shape:
            options = dict(rhyme=o.rhyme, tones=o.tones, scheme=o.rhyme_scheme, candidates=candidates, repeats=o.repeats)
            sound = self.sound(o.rhyme_scheme) if o.rhyme or o.tones else None
            rules = regulated.rules_for(self.vocab, sound, shape, heads, bool(acrostic), prefix, acrostic or begin, options,
                                        after=tuple(after), keywords=keywords)
            made = []
            for batch in _batches(jobs, gens, max(1, MAX_ROWS // candidates)):  # [(generator, poems), ...]
                made += regulated.decode(self, sum(m for _, m in batch), rules, prefix, prefix_ids, {**draw, "gen": batch})
        else:
            parts = [(g, n) for g, (_, n) in zip(gens, jobs)]
            made = [(p, None, None, None)
                    for p in self._free(sum(n for _, n in jobs), heads, prefix, prefix_ids, max_tokens, {**draw, "gen": parts})]
        poems = [p for p, *_ in made]
        if details:
            poems = [{"poem": p, "lines": lines_of(p), "rhyme_group": g, "pattern": name, "tones": list(t) if t else None,
                      "logprob": s} for (p, g, name, t), s in zip(made, self.logprob(poems))]
        ends = list(itertools.accumulate(n for _, n in jobs))
        return [poems[end - n : end] for (_, n), end in zip(jobs, ends)]  # each request's own

    def _free(self, n: int, heads: list[int], prefix: str, prefix_ids: list[int], max_tokens: int, draw: dict) -> list[str]:
        """Free form: any token but padding, unknown and start; the given first character first; the end
        token when the room runs out."""
        state, tokens = self.prime(prefix_ids, n)
        steps = max_tokens - len(prefix_ids)

        def allowed_at(pos: int) -> torch.Tensor:
            allowed = self.free_mask.expand(n, -1).clone()  # (n, V)
            if pos == 0 and heads and not prefix_ids:
                allowed[:] = False
                allowed[:, heads[0]] = True
            if pos == steps - 1:  # out of room: end here
                allowed[:] = False
                allowed[:, self.eos] = True
            return allowed

        step = lambda tokens, state: self.model.step(tokens.to(self.device), state)  # noqa: E731
        out = sample(step, state, tokens, steps, allowed_at, self.eos, draw)
        return [prefix + self.vocab.decode(row[row != self.eos].tolist()) for row in out]

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
