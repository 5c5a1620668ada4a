"""Pretraining a classifier's encoder as a language model on the task's own texts, then fine-tuning it
(ULMFiT: Howard & Ruder, 2018) -- ``rnnlab train names|sentiment --pretrain lm``.

Stage 1, in ``RUN/pretrain/`` (its own metrics.jsonl and checkpoints, through the one training loop):
every member's embedding and recurrent layers learn to predict the texts of the training split (never
validation or test) -- the forward direction the next token, the backward direction the one before
(ELMo's two language models in one bidirectional layer; with several bidirectional layers the upper
ones would see the tokens they predict, so that is refused). Labels are not used. Validation
perplexity on the validation texts picks the best epoch.

Stage 2, the run itself: the classifier starts from those weights and is fine-tuned with

* discriminative learning rates: the output layer (with attention) at ``--lr``, the recurrent layers
  at lr / 2.6, the embedding at lr / 2.6^2 (the lower, more general layers change least);
* gradual unfreezing: epoch 1 trains the output layer alone, epoch 2 also the recurrent layers,
  from epoch 3 on everything (``--freeze-vectors`` keeps the embedding fixed throughout).

A run interrupted in either stage resumes where it stopped (a finished stage 1 is not run again).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .errors import UserError
from .models import members_of

STAGE = "pretrain"  # the stage-1 folder inside the run folder
FACTOR = 2.6  # ULMFiT's ratio of one layer group's learning rate to the next one up
TRAIN_SAMPLE = 50  # batches of the training split that stage 1's per-epoch training figures read


def check_pretrain(task_cls, model_cfg, train_cfg, distributed: bool) -> None:
    """``--pretrain lm`` only where it means something: one line otherwise, before any data is read."""
    if train_cfg.pretrain == "none":
        return
    why = None
    if not getattr(task_cls, "pretrainable", False):
        why = f"the {task_cls.name} task has no classifier to pretrain (its model is trained on the texts already)"
    elif getattr(model_cfg, "cell", "") == "tutorial" or getattr(model_cfg, "input", "embedding") != "embedding":
        why = "it needs a recurrent cell (rnn, lstm, gru) reading an embedding (--input embedding)"
    elif model_cfg.bidirectional and model_cfg.layers > 1:
        why = ("the upper layers of a bidirectional stack would see the tokens they predict; use --layers 1 or "
               "--no-bidirectional")
    elif distributed:
        why = "it runs in one process (gradual unfreezing changes which weights train; DDP needs them fixed)"
    if why:
        raise UserError(f"--pretrain {train_cfg.pretrain}: {why}")


class EncoderLM(nn.Module):
    """The members' embeddings and recurrent layers as language models (the classifier's own modules,
    shared: training this trains them), each direction with an output layer of its own."""

    def __init__(self, classifier: nn.Module, vocab_size: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(members_of(classifier))
        self.views = getattr(getattr(classifier, "cfg", None), "views", 1)
        self.out = nn.ModuleList(
            nn.ModuleList(nn.Linear(m.cfg.hidden, vocab_size) for _ in range(2 if m.cfg.bidirectional else 1))
            for m in self.members)

    def member_loss(self, k: int, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m, heads = self.members[k], self.out[k]
        x = m.inputs(ids)  # (B, T, E)
        out, _ = m.rnn(pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T', D*H)
        out, ids, h = m.drop(out), ids[:, : out.size(1)], m.cfg.hidden
        # position t + 1 exists: the forward state at t predicts it; the backward state at t + 1 predicts t
        pair = torch.arange(out.size(1) - 1, device=ids.device)[None, :] + 1 < lengths.to(ids.device)[:, None]
        losses = [F.cross_entropy(heads[0](out[:, :-1, :h][pair]), ids[:, 1:][pair])]
        if len(heads) == 2:
            losses.append(F.cross_entropy(heads[1](out[:, 1:, h:][pair]), ids[:, :-1][pair]))
        return torch.stack(losses).mean()

    def forward(self, ids, lengths, targets=None, char_ids=None, char_lengths=None):
        views = [(ids, lengths), (char_ids, char_lengths)]
        losses = [self.member_loss(k, *views[k % self.views]) for k in range(len(self.members))]
        return None, torch.stack(losses).mean()


class LanguageModelling:
    """The task's texts as stage 1's task for the training loop (``train.LoopTask``): its batches, the
    labels unused; figures: the mean cross-entropy per predicted token and its perplexity."""

    monitor, monitor_mode = "perplexity", "min"

    def __init__(self, task) -> None:
        self.task, self.name = task, f"{task.name}-lm"

    def num_batches(self, split: str, batch_size: int) -> int:
        return self.task.num_batches(split, batch_size)

    def batches(self, split: str, batch_size: int, shuffle: bool, generator=None):
        return self.task.batches(split, batch_size, shuffle, generator)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, device) -> dict:
        model.eval()
        total, n = 0.0, 0
        for i, batch in enumerate(self.task.batches(split, 256, False)):
            if split == "train" and i == TRAIN_SAMPLE:
                break
            _, loss = model(**{k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)})
            total, n = total + float(loss), n + 1
        loss = total / max(n, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


class FineTuning:
    """Stage 2's plan for the loop: the optimizer's parameter groups (discriminative rates, the top
    group first) and, before each epoch, which groups train (gradual unfreezing)."""

    def __init__(self, model: nn.Module, lr: float) -> None:
        members = members_of(model)
        embed = [p for m in members if m.embed is not None for p in m.embed.parameters()]
        rnn = [p for m in members for p in m.rnn.parameters()]
        taken = {id(p) for p in embed + rnn}
        top = [p for p in model.parameters() if id(p) not in taken]
        self.trainable = {id(p) for p in model.parameters() if p.requires_grad}  # --freeze-vectors stays frozen
        self.layers = [top, rnn, embed]  # unfrozen in this order
        self.groups = [{"params": ps, "lr": lr / FACTOR**k} for k, ps in enumerate(self.layers) if ps]

    def unfreeze(self, epoch: int) -> None:
        """Epoch 1: the top group trains alone; each epoch after it one group more."""
        for k, params in enumerate(self.layers):
            for p in params:
                p.requires_grad_(k < epoch and id(p) in self.trainable)


def pretrain(task, model: nn.Module, train_cfg, run_dir, device, meta: dict, log) -> dict:
    """Stage 1 into ``run_dir/pretrain`` (continued if it was interrupted, skipped if it finished); the
    classifier's members end with the best language model's weights. Returns its summary."""
    from .runs import load_checkpoint, read_json
    from .train import fit

    stage = run_dir / STAGE
    stage.mkdir(exist_ok=True)
    lm = EncoderLM(model, model.cfg.vocab_size)
    cfg = replace(train_cfg, epochs=train_cfg.pretrain_epochs, patience=0, average=0, baseline=False)
    if (stage / "train_summary.json").is_file():
        log(f"pretraining: done before ({stage})")
        lm.load_state_dict(load_checkpoint(stage / "best.pt", map_location=device)["model"])
        return read_json(stage / "train_summary.json", dict)
    log(f"pretraining the encoder as a language model on the training texts ({cfg.epochs} epochs, {stage})")
    summary = fit(LanguageModelling(task), lm, cfg, stage, device, {**meta, "stage": STAGE},
                  resume=(stage / "last.pt").is_file(), log=lambda line, *a, **k: log(f"  lm {line}", *a, **k))
    lm.to(device)  # fit leaves the best weights in lm, hence in the classifier's members
    return summary
