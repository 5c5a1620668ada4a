r"""Gated recurrent unit, from its gate equations.

For input x_t and state h_{t-1}, with torch's fused gate order r, z, n::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n_t = tanh   (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))  candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Note that the reset gate multiplies W_hn h + b_hn, *after* the recurrent bias, as torch does.
``weight_ih`` stacks [W_ir; W_iz; W_in] (3H x I) and ``weight_hh`` the same for h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (CellBase, RecurrentStack, differentiable_backward, grads_are_batched, recurrent_weight_grads,
                   reject_projection, replay)
from .fused import keep_bytes, output_grads, step_kernels


def gru_gates(xg: Tensor, h: Tensor, w_hh, b_hh=None) -> dict[str, Tensor]:
    """One GRU step given the input projection xg = W_ih x_t + b_ih (B, 3H), written as the equations
    above, with everything it computes: r, z, the candidate n and h_t (each (B, H)); what the cell,
    the replay for double backward and every trace read."""
    xr, xz, xn = xg.chunk(3, dim=-1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return {"r": r, "z": z, "n": n, "h": (1 - z) * n + z * h}


def gru_step(xg: Tensor, h: Tensor, w_hh, b_hh=None) -> Tensor:
    """One GRU step (autograd does the backward): h_t."""
    return gru_gates(xg, h, w_hh, b_hh)["h"]


def gru_cell(x: Tensor, h: Tensor, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """One GRU step, written as the equations above (autograd does the backward)."""
    return gru_step(F.linear(x, w_ih, b_ih), h, w_hh, b_hh)


class GRUCell(CellBase):
    __doc__ = __doc__
    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._batched(input, hx)  # x (B, I), h (B, H)
        h = gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h.squeeze(0)


def _replay_gru(xg, h0, w_hh, b_hh, mask):
    return replay(lambda x, h: (gru_step(x, h, w_hh, b_hh),), xg, (h0,), mask)


class GRURecurrence(torch.autograd.Function):
    """The GRU over a whole sequence, with backpropagation through time written by hand.

    Inputs: xg (T, B, 3H) = W_ih x_t + b_ih for every step; h0 (B, H); w_hh (3H, H);
    b_hh (3H,) or None; mask (T, B, 1) or None (a padded step keeps h and outputs zero).

    Where it applies (float32 on the CPU), each step's pointwise part runs in one pass of C
    (rnnlab.nn.fused, fused_steps.c: the same equations); the eager code below is the fallback and
    the reference the tests compare it with.
    """

    @staticmethod
    def forward(ctx, xg, h0, w_hh, b_hh, mask):
        steps, batch, three_h = xg.shape
        H = three_h // 3
        keep = mask.bool() if mask is not None else None
        act = xg.new_empty(steps, batch, three_h)  # r, z, n
        hn_all = xg.new_empty(steps, batch, H)  # W_hn h_{t-1} + b_hn, needed by r's gradient
        hs = xg.new_empty(steps + 1, batch, H)  # h_0 .. h_T
        hs[0] = h0
        w_t = w_hh.t()
        fused = step_kernels(act)
        if fused:
            _fused_forward(fused, xg.contiguous(), w_t, b_hh, keep, act, hn_all, hs)
        else:
            for t in range(steps):
                hg = torch.addmm(b_hh, hs[t], w_t) if b_hh is not None else hs[t] @ w_t  # (B, 3H)
                a = act[t]
                torch.sigmoid(xg[t, :, : 2 * H] + hg[:, : 2 * H], out=a[:, : 2 * H])  # r, z
                r, z = a[:, :H], a[:, H : 2 * H]
                hn_all[t] = hg[:, 2 * H :]
                n = torch.tanh(torch.addcmul(xg[t, :, 2 * H :], r, hn_all[t]), out=a[:, 2 * H :])
                h = torch.addcmul(n, z, hs[t] - n)  # (1-z)*n + z*h_{t-1}
                if keep is not None:
                    h = torch.where(keep[t], h, hs[t])
                hs[t + 1] = h
        out = hs[1:] * mask if mask is not None else hs[1:].clone()
        # The inputs too: a double backward replays the forward from them (differentiable_backward).
        ctx.save_for_backward(act, hn_all, hs, w_hh, mask, xg, h0, b_hh)
        ctx.has_bias = b_hh is not None
        return out, hs[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h):
        act, hn_all, hs, w_hh, mask, xg, h0, b_hh = ctx.saved_tensors
        if torch.is_grad_enabled() or grads_are_batched(d_out, d_h):  # create_graph=True, or vmap
            return differentiable_backward(ctx, _replay_gru, (xg, h0, w_hh, b_hh, mask), (d_out, d_h))
        fused = step_kernels(act)
        if fused:
            return _fused_backward(fused, ctx, act, hn_all, hs, w_hh, mask, d_out, d_h)
        steps, batch, three_h = act.shape
        H = three_h // 3
        r, z, n = act.chunk(3, dim=-1)
        # Local derivatives of every step at once (see the equations in the module docstring):
        #   dL/d(pre_n) = dL/dh_t * (1-z) * (1-n^2)
        #   dL/d(pre_z) = dL/dh_t * (h_{t-1} - n) * z(1-z)
        #   dL/d(pre_r) = dL/d(pre_n) * (W_hn h + b_hn) * r(1-r)
        #   dL/d(W_hn h + b_hn) = dL/d(pre_n) * r;   dL/dh_{t-1} gets dL/dh_t * z directly.
        k_n = (1 - z) * (1 - n * n)
        k_z = (hs[:-1] - n) * z * (1 - z)
        k_r = hn_all * r * (1 - r)
        carry = z
        if mask is not None:  # a padded step passes dL/dh straight to the step before
            k_n, k_z, d_out = k_n * mask, k_z * mask, d_out * mask
            carry = torch.where(mask.bool(), z, torch.ones_like(z))
        d_hg = act.new_empty(steps, batch, three_h)  # dL/d(W_hh h + b_hh) of every step
        d_pre_n = act.new_empty(steps, batch, H)  # dL/d(W_in x + b_in + r*hn)
        dh = d_h.clone()
        for t in reversed(range(steps)):
            dh = dh + d_out[t]
            dn = torch.mul(dh, k_n[t], out=d_pre_n[t])
            torch.mul(dn, k_r[t], out=d_hg[t, :, :H])
            torch.mul(dh, k_z[t], out=d_hg[t, :, H : 2 * H])
            torch.mul(dn, r[t], out=d_hg[t, :, 2 * H :])
            dh = torch.addmm(dh * carry[t], d_hg[t], w_hh)  # direct path + back through W_hh
        d_xg = torch.cat([d_hg[..., : 2 * H], d_pre_n], dim=-1)  # r and z see x and h alike
        d_w_hh, d_b_hh = recurrent_weight_grads(d_hg, hs[:-1], ctx.has_bias)
        return d_xg, dh, d_w_hh, d_b_hh, None


def _fused_forward(fused, xg, w_t, b_hh, keep, act, hn_all, hs) -> None:
    """GRURecurrence.forward's loop with each step's pointwise part in one pass of C: per step one
    matmul (W_hh h_{t-1} + b_hh, by torch) and one call."""
    steps, batch, three_h = xg.shape
    keep_t = keep_bytes(keep)
    hg = xg.new_empty(batch, three_h)  # W_hh h_{t-1} + b_hh, rewritten each step
    for t in range(steps):
        torch.addmm(b_hh, hs[t], w_t, out=hg) if b_hh is not None else torch.mm(hs[t], w_t, out=hg)
        fused.gru_forward_step(xg[t], hg, hs[t], keep_t[t] if keep_t is not None else None, act[t], hn_all[t],
                               hs[t + 1])


def _fused_backward(fused, ctx, act, hn_all, hs, w_hh, mask, d_out, d_h):
    """GRURecurrence.backward with each step's pointwise part in one pass of C: the same loop as the
    eager code, without the local derivatives precomputed for all steps."""
    steps, batch, three_h = act.shape
    keep = keep_bytes(mask)
    d_acc = output_grads(d_out, mask)  # (T, B, H); each step adds the paths back from t+1 in place
    d_hg = act.new_empty(steps, batch, three_h)  # dL/d(W_hh h + b_hh) of every step
    d_pre_n = act.new_empty(steps, batch, three_h // 3)  # dL/d(W_in x + b_in + r*hn)
    direct = act.new_empty(batch, three_h // 3)  # dL/dh_t * z: the path that skips W_hh
    dh = d_acc[steps - 1].add_(d_h)
    for t in reversed(range(steps)):
        fused.gru_backward_step(act[t], hn_all[t], hs[t], dh, keep[t] if keep is not None else None, d_hg[t],
                                d_pre_n[t], direct)
        back = d_acc[t - 1].add_(direct) if t > 0 else direct.clone()  # d_acc is this function's own copy
        dh = back.addmm_(d_hg[t], w_hh)
    H = three_h // 3
    d_xg = torch.cat([d_hg[..., : 2 * H], d_pre_n], dim=-1)  # r and z see x and h alike
    d_w_hh, d_b_hh = recurrent_weight_grads(d_hg, hs[:-1], ctx.has_bias)
    return d_xg, dh, d_w_hh, d_b_hh, None


class GRU(RecurrentStack):
    __doc__ = __doc__
    gates = 3
    fold_recurrent_bias = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, **kwargs):
        weight_drop = kwargs.pop("weight_drop", 0.0)  # rnnlab's DropConnect on W_hh (RecurrentStack)
        reject_projection(kwargs)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, weight_drop=weight_drop)

    def recurrence(self, xg, state, w_hh, b_hh, mask, w_hr=None):
        out, h = GRURecurrence.apply(xg, state[0], w_hh, b_hh, mask)
        return out, (h,)
