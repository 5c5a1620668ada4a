"""Weight drop (DropConnect on W_hh, AWD-LSTM): rnnlab's layers drop the recurrent weights with one mask
per call while training, and the hand-written backward gives the gradient autograd would."""

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
