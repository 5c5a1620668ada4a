"""Models shared by the tasks. Every model has the same interface::

    logits, loss = model(ids, lengths, targets=None)     # loss is None without targets

``--backend scratch`` builds the recurrent part from ``rnnlab.nn`` (cells from the equations),
``--backend torch`` from ``torch.nn``'s fused layers: the two take the same arguments and the same
``PackedSequence`` input, so nothing else changes and users can compare both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab.nn as scratch

from .options import BACKENDS, CELLS, NONLINEARITIES, POOLS, RECURRENT_CELLS, Options, option
from .vocab import PAD, UNK


def workspace_path(text: str) -> str:
    """``--lab DIR`` as an absolute path: the run loads the student's cells from there, wherever it is
    served or loaded from later."""
    return str(Path(text).resolve()) if text else ""


def make_recurrent(cell: str, backend: str, input_size: int, hidden_size: int, num_layers: int = 1,
                   bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                   batch_first: bool = False, weight_drop: float = 0.0, lab: str = "") -> nn.Module:
    """An RNN/LSTM/GRU with torch.nn's interface, from rnnlab.nn (scratch) or torch.nn (torch).
    ``weight_drop`` (DropConnect on W_hh) is rnnlab's own: torch's fused layers cannot drop their
    weights without copying them every step."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if cell not in RECURRENT_CELLS:
        raise ValueError(f"--cell {cell!r}: choose one of {', '.join(RECURRENT_CELLS)}")
    lib = scratch if backend == "scratch" else nn
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0,
                  batch_first=batch_first)
    if cell == "rnn":
        if backend == "torch" and nonlinearity == "sigmoid":
            raise ValueError("torch.nn.RNN has no sigmoid nonlinearity: use --backend scratch for it")
        kwargs["nonlinearity"] = nonlinearity
    if weight_drop:
        if backend == "torch":
            raise ValueError("--weight-drop: torch's fused layers have none; use --backend scratch for it")
        kwargs["weight_drop"] = weight_drop
    if lab:  # a student's own cell, from a lab workspace (rnnlab.lab.layers)
        from .lab.layers import student_layer

        return student_layer(cell, lab, input_size, hidden_size, **kwargs)
    cls = {"rnn": lib.RNN, "lstm": lib.LSTM, "gru": lib.GRU}[cell]
    return cls(input_size, hidden_size, **kwargs)


@dataclass(frozen=True)
class ClassifierConfig(Options):
    """Everything needed to rebuild a SequenceClassifier (stored in every checkpoint):
    ``build_classifier(ClassifierConfig(**ckpt["meta"]["model_config"]))``."""

    vocab_size: int = option(0, "tokens, specials included (from the data)", min=0, cli=False)
    num_classes: int = option(0, "labels (from the data)", min=0, cli=False)
    cell: str = option("lstm", "recurrent cell (tutorial: the PyTorch tutorial's i2h/i2o network)", choices=CELLS)
    backend: str = option("scratch", "scratch: rnnlab's cells from the equations; torch: torch.nn's fused layers",
                          choices=BACKENDS)
    nonlinearity: str = option("tanh", "activation of --cell rnn", choices=NONLINEARITIES)
    input: str = option("embedding", "learned embedding, or one-hot letters as the tutorial",
                        choices=("embedding", "onehot"))
    embed_dim: int = option(64, "embedding size", min=1, max=4096)
    hidden: int = option(128, "hidden units per direction", min=1, max=8192)
    layers: int = option(1, "stacked recurrent layers", min=1, max=16)
    bidirectional: bool = option(False, "also read each sequence backwards")
    dropout: float = option(0.0, "dropout before the output layer and between layers", min=0, below=1)
    pool: str = option("last", "sequence summary fed to the head: last state, max or mean over steps, or attention",
                       choices=POOLS)
    ensemble: int = option(1, "train a seed ensemble of N models (their mean probability predicts)", min=1, max=32,
                           metavar="N")
    token_dropout: float = option(0.0, "training only: hide this share of input tokens (they become <unk>)",
                                  min=0, below=1)
    freeze_vectors: bool = option(False, "keep the (pretrained) input vectors fixed")
    lab: str = option("", "a lab workspace (rnnlab lab new): train with the student's own --cell from it", metavar="DIR",
                      parse=workspace_path)
    weight_drop: float = option(0.0, "DropConnect on the recurrent weights W_hh while training (one mask per batch; "
                                "AWD-LSTM's weight drop; --backend scratch)", min=0, below=1)
    views: int = option(1, "2: ensemble members read two views of each text in turn (sentiment's words and "
                        "characters)", min=1, max=2, cli=False)

    # Field names of earlier versions, as config.json, run.json and checkpoints of older runs hold them.
    RENAMED = {"members": "ensemble", "freeze_embedding": "freeze_vectors"}

    def check(self) -> None:
        if self.weight_drop and self.backend == "torch":
            raise ValueError("--weight-drop: torch's fused layers have none; use --backend scratch for it")
        if self.lab and (self.backend == "torch" or self.cell not in RECURRENT_CELLS):
            raise ValueError(f"--lab: trains a student's rnn, lstm or gru cell in rnnlab's own layers (--backend "
                             f"scratch), not --cell {self.cell} --backend {self.backend}")
        if self.cell == "rnn" and self.backend == "torch" and self.nonlinearity == "sigmoid":
            raise ValueError("--nonlinearity sigmoid: torch.nn.RNN has none; use --backend scratch for it")
        if self.views > self.ensemble:
            raise ValueError(f"{self.views} input views need an ensemble of at least as many members (--ensemble), "
                             f"got {self.ensemble}")

    # Options that a choice of cell makes meaningless: giving them is an error, not a silent no-op.
    TUTORIAL_IGNORES = ("backend", "nonlinearity", "layers", "bidirectional", "pool", "dropout", "weight_drop", "lab")

    def implied(self, given: set[str]) -> "ClassifierConfig":
        if "nonlinearity" in given and self.cell != "rnn":
            raise ValueError(f"--nonlinearity: only --cell rnn has one (--cell {self.cell})")
        cfg = self
        if self.cell == "tutorial":
            unused = [f for f in self.TUTORIAL_IGNORES if f in given and f != "nonlinearity"]
            if unused:
                raise ValueError(f"--{unused[0].replace('_', '-')}: the tutorial network has one layer, one direction "
                                 "and its own output layer; use --cell rnn, lstm or gru for it")
            if not {"input", "embed_dim", "freeze_vectors"} & given:  # one-hot letters, as in the tutorial
                cfg = replace(self, input="onehot")
        if cfg.input == "onehot":
            unused = [f for f in ("embed_dim", "freeze_vectors") if f in given]
            if unused:
                flag = "--embed-dim" if unused[0] == "embed_dim" else "--freeze-vectors"
                why = " (the tutorial's default)" if "input" not in given else ""
                raise ValueError(f"{flag}: --input onehot{why} has no embedding; give --input embedding to use one")
        return cfg


class SequenceClassifier(nn.Module):
    """tokens -> (embedding | one-hot) -> recurrent net -> pooled state -> dropout -> Linear -> class logits.

    With ``cell="tutorial"`` the recurrent net is the tutorial's TutorialRNN, whose own i2o layer and
    LogSoftmax give the class scores (log-probabilities, which cross-entropy accepts as logits).
    """

    def __init__(self, cfg: ClassifierConfig, class_weights: Tensor | None = None) -> None:
        super().__init__()
        if cfg.vocab_size < 2 or cfg.num_classes < 2:
            raise ValueError(f"need a vocabulary and at least 2 classes, got {cfg.vocab_size}, {cfg.num_classes}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD) if cfg.input == "embedding" else None
        in_size = cfg.embed_dim if self.embed is not None else cfg.vocab_size
        if cfg.cell == "tutorial":
            self.rnn = scratch.TutorialRNN(in_size, cfg.hidden, cfg.num_classes)
            self.head = None
        else:
            self.rnn = make_recurrent(cfg.cell, cfg.backend, in_size, cfg.hidden, cfg.layers, cfg.bidirectional,
                                      cfg.dropout, cfg.nonlinearity, weight_drop=cfg.weight_drop, lab=cfg.lab)
            self.drop = nn.Dropout(cfg.dropout)
            width = cfg.hidden * (2 if cfg.bidirectional else 1)
            self.head = nn.Linear(width, cfg.num_classes)
            if cfg.pool == "attention":  # additive attention: score_t = v . tanh(W h_t)
                self.attention = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False))
        if self.embed is not None and cfg.freeze_vectors:
            self.embed.weight.requires_grad_(False)
        # Loss weights (e.g. class-balanced) are a training choice, not part of the model's weights.
        self.register_buffer("class_weights", class_weights, persistent=False)

    def inputs(self, ids: Tensor) -> Tensor:
        """(B, T) token ids -> (B, T, I) input vectors."""
        if self.training and self.cfg.token_dropout > 0:
            # Augmentation: hide random characters (they become the unknown token; padding stays) so
            # that the model cannot lean on any single one -- what it meets in unseen names.
            hide = (torch.rand(ids.shape, device=ids.device) < self.cfg.token_dropout) & (ids > UNK)
            ids = ids.masked_fill(hide, UNK)
        if self.embed is not None:
            return self.embed(ids)
        return F.one_hot(ids, self.cfg.vocab_size).float()

    def features(self, ids: Tensor, lengths: Tensor, weights: bool = False):
        """(B, T) ids, (B,) lengths -> (B, D*H) summary of each sequence (and, with ``weights``, the
        attention weights (B, T) when pooling by attention)."""
        x = self.inputs(ids)  # (B, T, I)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.cfg.pool == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            d = 2 if self.cfg.bidirectional else 1
            last = h_n[-d:]  # (D, B, H): the top layer's final state in each direction
            return last.transpose(0, 1).reshape(ids.size(0), -1)
        out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T', D*H), zero on padding
        mask = (torch.arange(out.size(1), device=out.device)[None, :] < lengths.to(out.device)[:, None]).unsqueeze(-1)
        if self.cfg.pool == "attention":
            scores = self.attention(out).squeeze(-1).masked_fill(~mask.squeeze(-1), float("-inf"))  # (B, T')
            alpha = scores.softmax(dim=1)
            pooled = (alpha.unsqueeze(-1) * out).sum(dim=1)  # (B, D*H)
            return (pooled, alpha) if weights else pooled
        if self.cfg.pool == "max":
            return out.masked_fill(~mask, float("-inf")).max(dim=1).values
        return out.sum(dim=1) / lengths.to(out.device).unsqueeze(1).to(out.dtype)

    def forward(self, ids: Tensor, lengths: Tensor, targets: Tensor | None = None):
        if self.head is None:  # the tutorial network: its own i2o + LogSoftmax
            logits = self.rnn.forward_sequence(self.inputs(ids).transpose(0, 1), lengths)  # (B, C)
        else:
            logits = self.head(self.drop(self.features(ids, lengths)))  # (B, C)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, targets, weight=self.class_weights)
        return logits, loss


class EnsembleClassifier(nn.Module):
    """``ensemble`` classifiers that differ only in their random initial weights and dropout, trained
    together in one loop. The loss is the mean of the members' losses, so each member learns as if
    alone (their gradients do not mix); the prediction is the mean of their probabilities, returned
    as its logarithm (a valid logit vector)."""

    def __init__(self, cfg: ClassifierConfig, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        member = replace(cfg, ensemble=1, views=1)
        self.members = nn.ModuleList(SequenceClassifier(member, class_weights) for _ in range(cfg.ensemble))

    def forward(self, ids: Tensor, lengths: Tensor, targets: Tensor | None = None):
        return self.combine([m(ids, lengths, targets) for m in self.members], targets)

    @staticmethod
    def combine(outputs: list[tuple[Tensor, Tensor | None]], targets: Tensor | None):
        """The members' (logits, loss) -> the ensemble's: log of the mean probability, mean loss."""
        log_probs = torch.stack([F.log_softmax(logits, dim=-1) for logits, _ in outputs])  # (N, B, C)
        logits = log_probs.logsumexp(dim=0) - math.log(len(outputs))  # log of the mean probability
        loss = torch.stack([loss for _, loss in outputs]).mean() if targets is not None else None
        return logits, loss


def members_of(model: nn.Module) -> list[nn.Module]:
    """The classifiers an ensemble averages, in order; a single classifier is its own one member."""
    return list(model.members) if hasattr(model, "members") else [model]


def fused_twin(model: nn.Module) -> nn.Module:
    """The same classifier with torch.nn's fused layers in place of rnnlab.nn's, sharing every weight
    (a change to one is a change to the other), in eval mode, for forward passes without gradients:
    on one CPU core a batch of 17 reviews of 80-400 words ran 1.5x faster than rnnlab's GRU, and
    about as fast since the GRU's step runs in C (rnnlab.nn.fused); rnnlab.nn's hand-written backward
    is 1.5-2x faster than torch's, so gradients keep the model itself. The model itself
    when it has no such twin: a student's cell (--lab), a sigmoid RNN, the tutorial cell, or fused
    already."""
    cfg = getattr(model, "cfg", None)
    if (not isinstance(cfg, ClassifierConfig) or cfg.backend != "scratch" or cfg.lab or cfg.cell not in RECURRENT_CELLS
            or (cfg.cell == "rnn" and cfg.nonlinearity == "sigmoid")):
        return model
    twin = type(model)(replace(cfg, backend="torch", weight_drop=0.0))  # weight drop acts in training only
    twin.load_state_dict(model.state_dict(), assign=True)  # the model's own tensors, not copies
    return twin.eval()


def build_classifier(cfg: ClassifierConfig, class_weights: Tensor | None = None) -> nn.Module:
    """The classifier a config describes: one model, or an ensemble of ``cfg.ensemble``."""
    return EnsembleClassifier(cfg, class_weights) if cfg.ensemble > 1 else SequenceClassifier(cfg, class_weights)


@dataclass(frozen=True)
class LanguageModelConfig(Options):
    """Everything needed to rebuild a LanguageModel (stored in every checkpoint):
    ``LanguageModel(LanguageModelConfig(**ckpt["meta"]["model_config"]))``."""

    vocab_size: int = option(0, "tokens, specials included (from the data)", min=0, cli=False)
    cell: str = option("lstm", "recurrent cell", choices=RECURRENT_CELLS)
    backend: str = option("scratch", "scratch: rnnlab's cells from the equations; torch: torch.nn's fused layers",
                          choices=BACKENDS)
    nonlinearity: str = option("tanh", "activation of --cell rnn", choices=NONLINEARITIES)
    embed_dim: int = option(256, "embedding size", min=1, max=4096)
    hidden: int = option(512, "hidden units", min=1, max=8192)
    layers: int = option(1, "stacked recurrent layers", min=1, max=16)
    dropout: float = option(0.1, "dropout on the embedding, between layers and before the output", min=0, below=1)
    weight_drop: float = option(0.0, "DropConnect on the recurrent weights W_hh while training (one mask per batch; "
                                "AWD-LSTM's weight drop; --backend scratch)", min=0, below=1)
    locked_dropout: bool = option(False, "variational (locked) dropout: the embedding's and the output's dropout mask "
                                  "drawn once per sequence, the same at every step (AWD-LSTM), not anew at each step")
    embed_dropout: float = option(0.0, "while training, drop whole characters from the embedding matrix: a dropped "
                                  "character's vector is zero wherever it occurs in the batch (AWD-LSTM's embedding "
                                  "dropout)", min=0, below=1)
    ar: float = option(0.0, "activation regularisation: alpha x the mean square of the top layer's outputs (after "
                       "dropout), added to the training loss (AWD-LSTM: 2)", min=0, max=100)
    tar: float = option(0.0, "temporal activation regularisation: beta x the mean square of h_t - h_{t-1} of the top "
                        "layer (before dropout), added to the training loss (AWD-LSTM: 1)", min=0, max=100)
    # The output layer reuses the input embedding (Press & Wolf, 2017).
    tie_weights: bool = option(True, "output layer = the embedding (full softmax only)")
    softmax: str = option("full", "output layer: full, or adaptive (frequent tokens cost a small softmax, rare ones "
                          "a cheaper extra step)", choices=("full", "adaptive"))
    cutoffs: tuple[int, ...] = option((1000, 3000), "adaptive softmax: token ids (by falling frequency) where the "
                                      "clusters start", min=1, cli=False)

    def check(self) -> None:
        if self.softmax == "adaptive" and self.tie_weights:
            raise ValueError("--softmax adaptive has its own output layers: add --no-tie-weights")
        if self.weight_drop and self.backend == "torch":
            raise ValueError("--weight-drop: torch's fused layers have none; use --backend scratch for it")
        if self.cell == "rnn" and self.backend == "torch" and self.nonlinearity == "sigmoid":
            raise ValueError("--nonlinearity sigmoid: torch.nn.RNN has none; use --backend scratch for it")

    def implied(self, given: set[str]) -> "LanguageModelConfig":
        if "nonlinearity" in given and self.cell != "rnn":
            raise ValueError(f"--nonlinearity: only --cell rnn has one (--cell {self.cell})")
        return self


class LanguageModel(nn.Module):
    """tokens -> embedding -> recurrent net -> (projection to the embedding size) -> scores of the next token.

    ``forward(ids, lengths, targets)`` returns logits (B, T, V) and the mean cross-entropy over real
    tokens (id 0, padding, is ignored). ``step(tokens, state)`` advances one token for sampling.
    With ``tie_weights`` the output matrix *is* the embedding matrix: a character's input and output
    vectors are learnt together, which helps the rare ones and halves those parameters.
    """

    def __init__(self, cfg: LanguageModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError(f"need a vocabulary, got {cfg.vocab_size} tokens")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD)
        self.rnn = make_recurrent(cfg.cell, cfg.backend, cfg.embed_dim, cfg.hidden, cfg.layers, False, cfg.dropout,
                                  cfg.nonlinearity, batch_first=True, weight_drop=cfg.weight_drop)
        self.drop = nn.Dropout(cfg.dropout)
        self.adaptive = None
        if cfg.softmax == "adaptive":
            # Grave et al. (2017): a softmax over the frequent tokens plus one entry per cluster of rarer
            # ones, each cluster a smaller projection; ids must be sorted by falling frequency.
            # A small vocabulary keeps the cutoffs below its size (one cluster at half of it at least).
            cutoffs = [c for c in cfg.cutoffs if 0 < c < cfg.vocab_size - 1] or [max(1, cfg.vocab_size // 2)]
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden, cfg.vocab_size, cutoffs=cutoffs, div_value=4.0)
        elif cfg.tie_weights:
            self.proj = nn.Linear(cfg.hidden, cfg.embed_dim) if cfg.hidden != cfg.embed_dim else nn.Identity()
            self.out = nn.Linear(cfg.embed_dim, cfg.vocab_size)
            self.out.weight = self.embed.weight
        else:
            self.proj = nn.Identity()
            self.out = nn.Linear(cfg.hidden, cfg.vocab_size)

    def inputs(self, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, E) input vectors, after embedding dropout and dropout (while training)."""
        p = self.cfg.embed_dropout
        if self.training and p > 0:  # one keep-or-drop per character of the vocabulary, for the whole batch
            weight = self.embed.weight
            keep = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
            x = F.embedding(ids, weight * keep, padding_idx=PAD)
        else:
            x = self.embed(ids)
        return self.dropped(x)

    def dropped(self, x: Tensor) -> Tensor:
        """Dropout on (B, T, D): a new mask at every step, or with ``locked_dropout`` one mask per
        sequence, the same at every step (Gal & Ghahramani's variational dropout)."""
        p = self.cfg.dropout
        if not (self.cfg.locked_dropout and self.training and p > 0):
            return self.drop(x)
        return x * (x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p))  # (B, 1, D) over T

    def hidden_states(self, ids: Tensor, state=None, raw: bool = False):
        """(B, T) ids -> (B, T, H) top-layer outputs (after dropout) and the recurrent state (and with
        ``raw`` the outputs before dropout too)."""
        x = self.inputs(ids)  # (B, T, E)
        # No packing: padding only ever follows a sequence's end, so it cannot change earlier steps.
        out, state = self.rnn(x, state)  # (B, T, H)
        return (self.dropped(out), state, out) if raw else (self.dropped(out), state)

    def activation_penalty(self, h: Tensor, raw: Tensor, real: Tensor) -> Tensor:
        """AWD-LSTM's AR and TAR (Merity et al., 2018), over the real (not padding) steps ``real`` (B, T):
        ``ar`` x mean(h_t^2) of the dropped outputs + ``tar`` x mean((h_t - h_{t-1})^2) of the raw ones."""
        penalty = h.new_zeros(())
        if self.cfg.ar:
            penalty = penalty + self.cfg.ar * h[real].pow(2).mean()
        if self.cfg.tar and raw.size(1) > 1:
            both = real[:, 1:] & real[:, :-1]  # (B, T - 1): consecutive real steps
            penalty = penalty + self.cfg.tar * (raw[:, 1:] - raw[:, :-1])[both].pow(2).mean()
        return penalty

    def head(self, h: Tensor) -> Tensor:
        """(..., H) -> (..., V) logits (log-probabilities with the adaptive softmax)."""
        if self.adaptive is not None:
            return self.adaptive.log_prob(h.reshape(-1, h.size(-1))).view(*h.shape[:-1], -1)
        return self.out(self.proj(h))

    def scores(self, ids: Tensor, state=None):
        """(B, T) ids -> (B, T, V) logits and the recurrent state after the last step."""
        h, state = self.hidden_states(ids, state)
        return self.head(h), state

    def forward(self, ids: Tensor, lengths: Tensor | None = None, targets: Tensor | None = None):
        h, _, raw = self.hidden_states(ids, raw=True)
        penalty = 0.0  # AR/TAR: while training, on the training loss only
        if targets is not None and self.training and (self.cfg.ar or self.cfg.tar):
            penalty = self.activation_penalty(h, raw, targets > 0)
        if targets is not None and self.adaptive is not None and self.training:
            # Training with the adaptive softmax scores only the targets' clusters and never builds the
            # full (B, T, V) logits: that is where its speed comes from. logits are None here.
            real = targets > 0
            return None, self.adaptive(h[real], targets[real]).loss + penalty
        logits = self.head(h)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD) + penalty
        return logits, loss

    def step(self, tokens: Tensor, state=None):
        """(B,) current tokens -> (B, V) logits of the next ones, and the new state."""
        logits, state = self.scores(tokens[:, None], state)
        return logits[:, 0], state


@torch.no_grad()
def predict_batches(model: nn.Module, batches, device) -> tuple[Tensor, Tensor]:
    """Eval-mode logits for every batch of ``{ids, lengths, ..., targets}`` -> (logits (N, C), targets (N,))."""
    model.eval()
    logits, targets = [], []
    for batch in batches:
        out, _ = model(**{k: v.to(device) for k, v in batch.items() if k != "targets"})
        logits.append(out.float().cpu())
        targets.append(batch["targets"])
    return torch.cat(logits), torch.cat(targets)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module) -> str:
    """The model's printout and parameter count, as written to model.txt and shown in reports."""
    return f"{model}\n\nparameters: {count_parameters(model):,}\n"
