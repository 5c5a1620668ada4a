"""AWD-LSTM's regularisation. Weight drop (DropConnect on W_hh): rnnlab's layers drop the recurrent
weights with one mask per call while training, and the hand-written backward gives the gradient
autograd would. The language model's locked (variational) dropout and embedding dropout."""

import pytest
import torch
import torch.nn.functional as F

import rnnlab.nn as rn


@pytest.mark.parametrize("cls", [rn.RNN, rn.LSTM, rn.GRU])
def test_one_mask_per_call_and_the_exact_gradient(cls):
    torch.manual_seed(0)
    layer = cls(3, 4, num_layers=2, bidirectional=True, weight_drop=0.5).double()
    x = torch.randn(6, 2, 3, dtype=torch.double)
    layer.eval()
    eval_out = layer(x)[0]
    torch.testing.assert_close(eval_out, layer(x)[0])  # no drop when evaluating
    layer.train()
    # The same function as the layer with the dropped weights put in, step for step: the mask is one
    # per call (the same seed gives the same masks in the same order).
    torch.manual_seed(1)
    out = layer(x)[0]
    torch.manual_seed(1)
    masked = {n: F.dropout(p, 0.5, training=True) if n.startswith("weight_hh") else p
              for n, p in layer.named_parameters()}
    plain = cls(3, 4, num_layers=2, bidirectional=True).double()
    plain.load_state_dict(masked)
    torch.testing.assert_close(out, plain(x)[0])
    assert not torch.allclose(out, eval_out)
    # dL/dW_hh through the hand-written BPTT and the mask, against finite differences
    layer.zero_grad()

    def f(w):
        torch.manual_seed(2)
        return torch.func.functional_call(layer, {**dict(layer.named_parameters()), "weight_hh_l0": w}, (x,))[0].sum()

    assert torch.autograd.gradcheck(f, (layer.weight_hh_l0.detach().clone().requires_grad_(),))


def test_weight_drop_is_checked_and_shown():
    with pytest.raises(ValueError, match="weight_drop"):
        rn.LSTM(3, 4, weight_drop=1.0)
    assert "weight_drop=0.3" in repr(rn.GRU(3, 4, weight_drop=0.3))
    with pytest.raises(TypeError):
        rn.GRU(3, 4, weight_dorp=0.3)


def _language_model(**changes):
    from rnnlab.models import LanguageModel, LanguageModelConfig

    return LanguageModel(LanguageModelConfig(**{"vocab_size": 12, "embed_dim": 8, "hidden": 8, "dropout": 0.5, **changes}))


def test_locked_dropout_keeps_one_mask_per_sequence():
    """Variational (locked) dropout: each sequence's input vectors lose the same units at every step."""
    torch.manual_seed(0)
    model = _language_model(locked_dropout=True)
    ids = torch.randint(4, 12, (3, 7))
    model.train()
    x = model.inputs(ids)  # (B, T, E)
    zero = x == 0
    assert zero.any() and (zero == zero[:, :1]).all()  # the same units dropped at every step
    model.eval()
    torch.testing.assert_close(model.inputs(ids), model.embed(ids))
    free = _language_model()  # without it: a new mask at each step
    free.train()
    zero = free.inputs(ids) == 0
    assert not (zero == zero[:, :1]).all()


def test_embedding_dropout_drops_a_character_everywhere_in_the_batch():
    torch.manual_seed(0)
    model = _language_model(embed_dropout=0.5, dropout=0.0)
    ids = torch.tensor([[4, 5, 4, 6, 5, 4], [6, 4, 5, 5, 6, 7]])
    model.train()
    gone = (model.inputs(ids) == 0).all(-1)  # (B, T): the whole vector dropped
    for token in ids.unique():
        assert gone[ids == token].all() or not gone[ids == token].any()
    assert gone.any() and not gone.all()
    model.eval()
    torch.testing.assert_close(model.inputs(ids), model.embed(ids))


def test_the_dropouts_are_options_of_rnnlab_train_poems():
    from rnnlab.cli import task_parser
    from rnnlab.tasks import TASKS

    args = task_parser("train", TASKS["poems"]).parse_args(["--locked-dropout", "--embed-dropout", "0.1"])
    assert args.locked_dropout is True and args.embed_dropout == 0.1
    from rnnlab.models import LanguageModelConfig

    with pytest.raises(ValueError, match="--embed-dropout 1.0: must be >= 0 and < 1"):
        LanguageModelConfig(embed_dropout=1.0)


def test_ar_and_tar_add_their_penalty_while_training_only():
    """AR: alpha x mean h_t^2 (dropped outputs); TAR: beta x mean (h_t - h_{t-1})^2 (raw outputs); padding
    steps left out; evaluation's loss is the plain cross-entropy."""
    ids = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 0, 0]])
    targets = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    plain = _language_model(dropout=0.0)
    reg = _language_model(dropout=0.0, ar=2.0, tar=1.0)
    reg.load_state_dict(plain.state_dict())
    for m in (plain, reg):
        m.train()
    _, base = plain(ids, targets=targets)
    _, loss = reg(ids, targets=targets)
    h, _, raw = reg.hidden_states(ids, raw=True)
    real = targets > 0
    ar = h[real].pow(2).mean()
    pairs = torch.cat([raw[0, 1:] - raw[0, :-1], raw[1, 1:3] - raw[1, :2]])  # consecutive real steps only
    torch.testing.assert_close(loss, base + 2.0 * ar + 1.0 * pairs.pow(2).mean())
    reg.eval()
    plain.eval()
    torch.testing.assert_close(reg(ids, targets=targets)[1], plain(ids, targets=targets)[1])  # evaluation: none
    from rnnlab.models import LanguageModelConfig

    with pytest.raises(ValueError, match="ar"):
        LanguageModelConfig(ar=-1.0)
