"""An interpolated modified Kneser-Ney n-gram language model (Chen & Goodman, 1998) over token ids.

The baseline a user would pick instead of a recurrent language model, and the yardstick of the
poems benchmark. It is trained and scored on the same token ids as the neural model (same
vocabulary, same unknown token, the end token predicted, the start token not), so the two
perplexities are comparable.

For the highest order the counts are raw counts; for lower orders they are continuation counts
(how many distinct tokens precede the n-gram), which is what makes Kneser-Ney good at rare words::

    p(w | h) = max(c(hw) - D(c(hw)), 0) / c(h)  +  gamma(h) * p(w | h')
    gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / c(h)

with three discounts per order estimated from count-of-counts, h' the context without its oldest
token, and the unigram level interpolated with the uniform distribution. Unseen contexts back
off to the lower order entirely.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Sequence

_OFFSET = 0x100  # ids become characters of a string, so n-grams are cheap string slices


def _text(ids: Sequence[int]) -> str:
    return "".join(chr(_OFFSET + int(i)) for i in ids)


class KneserNey:
    def __init__(self, order: int, vocab_size: int, bos: int) -> None:
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order, self.vocab_size, self.bos = order, vocab_size, bos
        self.counts: list[dict[str, int]] = []  # counts[k]: (k+1)-gram -> (continuation) count
        self.discounts: list[tuple[float, float, float]] = []
        self.context: list[dict[str, tuple[int, int, int, int]]] = []  # h -> (total, N1, N2, N3+)

    def _padded(self, seq: Sequence[int]) -> str:
        return chr(_OFFSET + self.bos) * (self.order - 1) + _text(seq)

    def fit(self, sequences: Iterable[Sequence[int]]) -> "KneserNey":
        """``sequences``: token ids of each item, ending with the end token, without the start token."""
        n = self.order
        top: Counter = Counter()
        for seq in sequences:
            s = self._padded(seq)
            for end in range(n, len(s) + 1):
                top[s[end - n : end]] += 1
        counts: list[dict[str, int]] = [dict() for _ in range(n)]
        counts[n - 1] = dict(top)
        for k in range(n - 2, -1, -1):  # continuation counts: distinct left extensions
            cont: Counter = Counter()
            for gram in counts[k + 1]:
                cont[gram[1:]] += 1
            counts[k] = dict(cont)
        self.counts = counts
        self.discounts = [self._estimate_discounts(c) for c in counts]
        self.context = []
        for k, table in enumerate(counts):
            stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
            for gram, c in table.items():
                st = stats[gram[:-1]]
                st[0] += c
                st[min(c, 3)] += 1
            self.context.append({h: tuple(v) for h, v in stats.items()})
        return self

    @staticmethod
    def _estimate_discounts(table: dict[str, int]) -> tuple[float, float, float]:
        n = Counter(min(c, 4) for c in table.values())
        n1, n2, n3, n4 = (max(n.get(i, 0), 1) for i in (1, 2, 3, 4))
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        return tuple(min(max(v, 0.05), float(i + 1)) for i, v in enumerate(d))  # keep each in a sane range

    def prob(self, history: str, token: str) -> float:
        """p(token | history); both as id-strings, ``history`` the last order-1 tokens (padded)."""
        p = 1.0 / self.vocab_size
        for k in range(self.order):
            h = history[len(history) - k :] if k else ""
            st = self.context[k].get(h)
            if st is None:
                continue  # unseen context: keep the lower order's estimate
            total, n1, n2, n3 = st
            d1, d2, d3 = self.discounts[k]
            c = self.counts[k].get(h + token, 0)
            d = (0.0, d1, d2, d3)[min(c, 3)]
            gamma = (d1 * n1 + d2 * n2 + d3 * n3) / total
            p = max(c - d, 0.0) / total + gamma * p
        return p

    def log_prob(self, seq: Sequence[int]) -> tuple[float, int]:
        """Natural-log probability of one item (ids ending with the end token) and its token count."""
        s = self._padded(seq)
        m = self.order - 1
        total = 0.0
        for i in range(m, len(s)):
            total += math.log(self.prob(s[i - m : i], s[i]))
        return total, len(s) - m

    def perplexity(self, sequences: Iterable[Sequence[int]]) -> float:
        nll, n = 0.0, 0
        for seq in sequences:
            lp, k = self.log_prob(seq)
            nll -= lp
            n += k
        return math.exp(nll / max(n, 1))
