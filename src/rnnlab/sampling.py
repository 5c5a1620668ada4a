"""Drawing the next token, as short pure functions (makemore's ``generate``): temperature, top-k and
top-p shape the model's distribution, a mask says what is allowed, and the loop feeds each draw back.
The rules of a poem's form are masks layered on top (rnnlab.regulated)."""

from __future__ import annotations

from typing import Callable

import torch


def draw(logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_k: int, top_p: float,
         gen: torch.Generator, gumbel: bool = False) -> torch.Tensor:
    """One token per row of ``logits`` (B, V), among the ``allowed`` ones (B, V), shaped by
    ``temperature``, ``top_k`` (keep the k likeliest) and ``top_p`` (keep the smallest set whose
    probability reaches p), drawn with ``gen`` -> (B,)."""
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


def draw_each(logits: torch.Tensor, allowed: torch.Tensor, options: dict, gumbel: bool = False) -> torch.Tensor:
    """``draw`` with ``options`` (``temperature``, ``top_k``, ``top_p`` and ``gen``), ``gen`` being
    streams ``[(generator, rows), ...]``: consecutive rows each drawn with a generator of their own --
    one stream for a request alone; requests joined in one batch, each drawn exactly as alone."""
    shape, out, start = (options["temperature"], options["top_k"], options["top_p"]), [], 0
    for g, rows in options["gen"]:  # positional, as a student's draw may name its parameters otherwise
        out.append(draw(logits[start : start + rows], allowed[start : start + rows], *shape, g, gumbel=gumbel))
        start += rows
    return torch.cat(out)


def select_rows(state, index: torch.Tensor):
    """Rows ``index`` of a recurrent state: a (layers, B, H) tensor or a tuple of them (LSTM)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(1, index.to(state.device))
    return type(state)(select_rows(s, index) for s in state)


def sample(step: Callable, state, tokens: torch.Tensor, steps: int, allowed_at: Callable[[int], torch.Tensor],
           end: int, options: dict) -> torch.Tensor:
    """Up to ``steps`` tokens for each of the B rows: ``step(tokens, state) -> (logits (B, V), state)``
    reads the last tokens, ``allowed_at(position)`` (B, V) says what may come, ``options`` are
    ``draw_each``'s (``gen``: streams of rows and their generators); a row that drew ``end`` keeps
    drawing ``end``. -> (B, <= steps) token ids."""
    out = torch.zeros(tokens.size(0), 0, dtype=torch.long)
    done = torch.zeros(tokens.size(0), dtype=torch.bool)
    for pos in range(steps):
        logits, state = step(tokens, state)  # (B, V)
        tokens = draw_each(logits, allowed_at(pos), options).masked_fill(done, end)
        out = torch.cat([out, tokens[:, None]], dim=1)
        done |= tokens == end
        if done.all():
            break
    return out
