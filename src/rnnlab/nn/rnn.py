r"""The vanilla (Elman) recurrent network, from its equation.

For input x_t and state h_{t-1}::

    h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    phi in {tanh, relu, sigmoid}

This is the lab's h_t = phi(U x_t + W h_{t-1} + b) with U = weight_ih, W = weight_hh and
b = bias_ih + bias_hh. ``tanh`` and ``relu`` match ``torch.nn.RNN``; ``sigmoid`` is the lab's
third activation (torch has none), kept to show its vanishing gradient (sigmoid' <= 1/4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (CellBase, RecurrentStack, differentiable_backward, grads_are_batched, recurrent_weight_grads,
                   reject_projection, replay)
from .spec import NONLINEARITIES

_PHI = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
assert tuple(_PHI) == NONLINEARITIES


def phi_derivative(h: Tensor, nonlinearity: str) -> Tensor:
    """phi'(pre) written through its output h = phi(pre): what BPTT multiplies at every step."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    return (h > 0).to(h.dtype)  # relu


def check_nonlinearity(nonlinearity: str) -> str:
    if nonlinearity not in NONLINEARITIES:
        choices = ", ".join(repr(n) for n in NONLINEARITIES[:-1]) + f" or {NONLINEARITIES[-1]!r}"
        raise ValueError(f"Unknown nonlinearity {nonlinearity!r}. Select from {choices}.")
    return nonlinearity


def rnn_step(xg: Tensor, h: Tensor, w_hh, b_hh=None, nonlinearity: str = "tanh") -> Tensor:
    """One step given the input projection xg = W_ih x_t + b_ih (autograd does the backward)."""
    return _PHI[nonlinearity](xg + F.linear(h, w_hh, b_hh))


def rnn_cell(x: Tensor, h: Tensor, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh") -> Tensor:
    """One step, written as the equation above (autograd does the backward)."""
    return rnn_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh, nonlinearity)


class RNNCell(CellBase):
    __doc__ = __doc__
    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        # Checked here, not at the first forward as torch does: a typo fails when the model is built.
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, hx)  # x (B, I), h (B, H)
        h = rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)
        return h if batched else h.squeeze(0)


def _replay_rnn(xg, h0, w_hh, b_hh, mask, nonlinearity):
    return replay(lambda x, h: (rnn_step(x, h, w_hh, b_hh, nonlinearity),), xg, (h0,), mask)


class RNNRecurrence(torch.autograd.Function):
    """The vanilla RNN over a whole sequence, with backpropagation through time written by hand.

    Inputs: xg (T, B, H) = W_ih x_t + b_ih for every step; h0 (B, H); w_hh (H, H); b_hh (H,) or
    None; mask (T, B, 1) or None; the nonlinearity's name.
    """

    @staticmethod
    def forward(ctx, xg, h0, w_hh, b_hh, mask, nonlinearity):
        steps, batch, H = xg.shape
        pre = xg + b_hh if b_hh is not None else xg
        keep = mask.bool() if mask is not None else None
        phi = _PHI[nonlinearity]
        hs = xg.new_empty(steps + 1, batch, H)  # h_0 .. h_T
        hs[0] = h0
        w_t = w_hh.t()
        for t in range(steps):
            h = phi(torch.addmm(pre[t], hs[t], w_t))
            hs[t + 1] = torch.where(keep[t], h, hs[t]) if keep is not None else h
        out = hs[1:] * mask if mask is not None else hs[1:].clone()
        # The inputs too: a double backward replays the forward from them (differentiable_backward).
        ctx.save_for_backward(hs, w_hh, mask, xg, h0, b_hh)
        ctx.has_bias, ctx.nonlinearity = b_hh is not None, nonlinearity
        return out, hs[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h):
        hs, w_hh, mask, xg, h0, b_hh = ctx.saved_tensors
        if torch.is_grad_enabled() or grads_are_batched(d_out, d_h):  # create_graph=True, or vmap
            return differentiable_backward(ctx, _replay_rnn, (xg, h0, w_hh, b_hh, mask, ctx.nonlinearity),
                                           (d_out, d_h))
        # dL/d(pre_t) = dL/dh_t * phi'(pre_t); dL/dh_{t-1} = dL/d(pre_t) @ W_hh.
        # The product of these diag(phi') W_hh factors over time is what vanishes or explodes.
        k = phi_derivative(hs[1:], ctx.nonlinearity)  # (T, B, H)
        if mask is not None:
            k, d_out, keep = k * mask, d_out * mask, mask.bool()
        d_pre = torch.empty_like(k)
        dh = d_h.clone()
        for t in reversed(range(hs.size(0) - 1)):
            dh = dh + d_out[t]
            dp = torch.mul(dh, k[t], out=d_pre[t])
            dh_prev = dp @ w_hh
            dh = torch.where(keep[t], dh_prev, dh) if mask is not None else dh_prev
        d_w_hh, d_b_hh = recurrent_weight_grads(d_pre, hs[:-1], ctx.has_bias)
        return d_pre, dh, d_w_hh, d_b_hh, None, None


class RNN(RecurrentStack):
    __doc__ = __doc__
    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None, **kwargs):
        weight_drop = kwargs.pop("weight_drop", 0.0)  # rnnlab's DropConnect on W_hh (RecurrentStack)
        reject_projection(kwargs)
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, weight_drop=weight_drop)

    def _mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"

    def extra_repr(self) -> str:
        # torch.nn.RNN's repr leaves the nonlinearity out (its RNNCell prints it); here a relu or
        # sigmoid network is not shown as if it were tanh. Same wording as torch's cells.
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")

    def recurrence(self, xg, state, w_hh, b_hh, mask, w_hr=None):
        out, h = RNNRecurrence.apply(xg, state[0], w_hh, b_hh, mask, self.nonlinearity)
        return out, (h,)
