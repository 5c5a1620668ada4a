"""Sampling poems from a trained language model, free or constrained to a form.

Free sampling draws each next character from the model (never padding, start or unknown tokens)
until the end token or ``max_tokens``. Constrained sampling (``form="7x4"`` ...) decides by
position what may come next, so every poem is well-formed by construction:

* inside a line: characters only (no punctuation, no end token);
* after the line's last character: ``，`` after odd lines, ``。`` after even lines;
* after the last line: the end token;
* ``begin``: the poem's first character; ``acrostic``: each line's first character.

Within what is allowed the model's probabilities decide, shaped by ``temperature``, ``top_k``
(keep the k likeliest) and ``top_p`` (keep the smallest set whose probability reaches p).
"""

from __future__ import annotations

import torch

from .errors import UserError
from .poetry import FORMS, PUNCTUATION, parse_form
from .vocab import BOS, EOS

MAX_TOKENS = 120  # a free poem is cut here (the cleaned corpus holds at most 80 characters by default)



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
        raise UserError(f"{what} {ch!r} is not in the model's vocabulary ({len(self.vocab.chars):,} characters){hint}")

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

    # --- sampling ------------------------------------------------------------------------------
    def _allowed(self, pos: int, shape, heads: list[int], acrostic: bool) -> torch.Tensor:
        """What may come at position ``pos`` (0 = the first character) of a constrained poem."""
        width, lines = shape
        line, col = divmod(pos, width + 1)
        mask = torch.zeros(len(self.vocab), dtype=torch.bool)
        if line == lines:
            mask[self.eos] = True
        elif col == width:
            mask[self.vocab.id("，" if line % 2 == 0 else "。")] = True
        elif col == 0 and (acrostic or line == 0) and line < len(heads):
            mask[heads[line]] = True
        else:
            mask |= self.char_mask
        return mask

    def _draw(self, logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_k: int, top_p: float,
              gen: torch.Generator) -> torch.Tensor:
        logits = (logits.float().cpu() / temperature).masked_fill(~allowed, float("-inf"))  # (B, V)
        if top_k:
            kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p < 1.0:
            probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
            drop = probs.cumsum(-1) - probs >= top_p  # keep the head up to and including the token crossing p
            logits = logits.scatter(-1, order, probs.masked_fill(drop, 0).log())
        return torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]

    @torch.no_grad()
    def sample(self, n: int = 1, begin: str = "", acrostic: str = "", form: str = "free", temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, seed: int = 0, max_tokens: int = MAX_TOKENS) -> list[str]:
        """``n`` poems (their content strings), reproducible from ``seed``."""
        if not 0.05 <= temperature <= 10:
            raise UserError(f"--temperature {temperature}: give a value between 0.05 and 10")
        if top_k < 0 or not 0 < top_p <= 1:
            raise UserError(f"--top-k must be >= 0 and --top-p in (0, 1], got {top_k}, {top_p}")
        if not 1 <= n <= 10_000:
            raise UserError(f"-n {n}: give between 1 and 10000 samples")
        if not 2 <= max_tokens <= 2000:
            raise UserError(f"max tokens {max_tokens}: give between 2 and 2000")
        shape, heads = self.plan(begin, acrostic, form)
        gen = torch.Generator().manual_seed(seed)
        self.model.eval()
        tokens = torch.full((n,), self.bos, dtype=torch.long)
        out = torch.zeros(n, 0, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        state = None
        steps = (shape[0] + 1) * shape[1] + 1 if shape else max_tokens
        for pos in range(steps):
            logits, state = self.model.step(tokens.to(self.device), state)  # (n, V)
            if shape:
                allowed = self._allowed(pos, shape, heads, bool(acrostic)).expand(n, -1)
            else:
                allowed = self.free_mask.expand(n, -1).clone()
                if pos == 0 and heads:
                    allowed[:] = False
                    allowed[:, heads[0]] = True
                if pos == steps - 1:  # out of room: end here
                    allowed[:] = False
                    allowed[:, self.eos] = True
            tokens = self._draw(logits, allowed, temperature, top_k, top_p, gen)
            tokens = tokens.masked_fill(done, self.eos)
            out = torch.cat([out, tokens[:, None]], dim=1)
            done |= tokens == self.eos
            if done.all():
                break
        return [self.vocab.decode(row[row != self.eos].tolist()) for row in out]
