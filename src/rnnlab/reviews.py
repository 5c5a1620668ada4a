"""What the sentiment model reads of a review.

jieba cuts a review into words (in the lab the check does that: the function gets the words); the words that carry no sentiment -- the stop words of a general list
(的, 了, 在 ...) and whitespace -- are dropped. But a general list also holds 不, 没有, 很, 太, 但是:
dropped, "房间不干净" would read as "房间 干净". The words of ``keep`` (``KEEP_WORDS``: negations,
degree and contrast words) stay even when the list holds them. The lab's preprocessing part is
this function; its check runs it on real hotel reviews that the workspace does not contain.
"""

from __future__ import annotations

# Words that stop-word lists hold but sentiment needs: negations, degree, contrast.
KEEP_WORDS = frozenset("""不 没 没有 无 非 未 别 莫 勿 毋 否 不是 不会 不要 不能 不够 不太 不再 不必 不用 没什么 并不
很 太 非常 极 极其 最 更 更加 挺 特别 十分 相当 比较 较 有点 有些 稍 稍微 过 过于 好 真 真是 实在 尤其 格外
但 但是 却 可是 不过 虽然 然而 只是 还 还是 也 都 再 又 ！ ？""".split())


def review_tokens(words: list[str], stopwords: frozenset[str], keep: frozenset[str]) -> list[str]:
    """A review's tokens for the model, from the words a tokenizer cut it into (jieba's ``lcut``), in
    their order: whitespace tokens dropped; stop words dropped, except those in ``keep`` -- the
    negations, degree and contrast words (不, 没有, 很, 太, 但是 ...) that a general stop-word list
    holds but that flip or scale a review's sentiment ("不干净" is not "干净").

        words      ["房间", " ", "不", "干净", "的", "，", "很", "吵"]
        stopwords  {"的", "，", "不", "很"}      keep {"不", "很", "太"}
        ->         ["房间", "不", "干净", "很", "吵"]
    """
    return [w for w in words if w.strip() and (w not in stopwords or w in keep)]
