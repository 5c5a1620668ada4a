"""Tokens -> ids: the one vocabulary every task uses (names, sentiment, poems, generation, longrange).

The first ids are reserved for special tokens, always in this order::

    id   token   used by
    0    <pad>   every task: padding after a sequence's end (the embedding keeps it at zero)
    1    <unk>   every task: any token not seen often enough in training
    2    <s>     language models: the first input, "a poem starts here"
    3    </s>    language models: the last target, "the poem ends here"

Classifiers reserve the first two (``CLASSIFIER_SPECIALS``), language models all four
(``LM_SPECIALS``); the tokens proper follow, so token k of the list has id ``offset + k``.
A checkpoint stores the token list only (``state["chars"]``, a name kept from when every vocabulary
held characters: sentiment's holds words); the task knows its specials.
Torch-free on purpose: the CLI and the web app read vocabularies without starting torch.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

PAD, UNK, BOS, EOS = 0, 1, 2, 3
CLASSIFIER_SPECIALS = ("<pad>", "<unk>")
LM_SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


class Vocab:
    """Tokens (characters or words) seen in training -> ids, after the reserved special tokens."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = CLASSIFIER_SPECIALS) -> None:
        self.tokens = list(tokens)
        self.specials = tuple(specials)
        self.offset = len(self.specials)  # the id of the first token proper
        self.index = {t: i + self.offset for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[Iterable[str]], min_count: int = 1, specials: Sequence[str] = CLASSIFIER_SPECIALS,
              by_frequency: bool = False) -> "Vocab":
        """Every token seen at least ``min_count`` times in ``texts``, sorted (or most frequent first,
        which an adaptive softmax needs: its clusters are ranges of ids). No token left is an error
        (naming --min-count and the most frequent token's count): a model of special tokens alone
        trains on nothing and reports flattering figures."""
        counts = Counter(tok for text in texts for tok in text)
        kept = [(t, n) for t, n in counts.items() if n >= min_count]
        if not kept:
            from .errors import UserError

            if not counts:
                raise UserError("no tokens in the training data: every training text is empty")
            top, n = counts.most_common(1)[0]
            raise UserError(f"--min-count {min_count}: no token occurs that often in the training data (the most "
                            f"frequent, {top!r}, occurs {n:,} time{'s' if n != 1 else ''}); give --min-count {n} or less")
        order = sorted(kept, key=lambda tn: (-tn[1], tn[0])) if by_frequency else sorted(kept)
        return cls([t for t, _ in order], specials)

    def __len__(self) -> int:
        return len(self.tokens) + self.offset

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def id(self, token: str) -> int:
        return self.index.get(token, UNK)

    def encode(self, text: Iterable[str]) -> list[int]:
        return [self.index.get(t, UNK) for t in text]

    def decode(self, ids: Iterable[int], sep: str = "") -> str:
        """Ids -> text; special tokens are left out."""
        return sep.join(self.tokens[i - self.offset] for i in ids if i >= self.offset)

    def unknown(self, text: Iterable[str]) -> list[str]:
        """The tokens of ``text`` that the vocabulary does not hold (sorted, each once)."""
        return sorted({t for t in text if t not in self.index})
