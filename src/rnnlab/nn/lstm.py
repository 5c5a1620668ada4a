r"""Long short-term memory, from its gate equations.

For input x_t and state (h_{t-1}, c_{t-1}), with torch's fused gate order i, f, g, o::

    i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     input gate
    f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     forget gate
    g_t = tanh   (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate cell
    o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     output gate
    c_t = f_t * c_{t-1} + i_t * g_t                           cell: the additive path
    h_t = o_t * tanh(c_t)

``weight_ih`` stacks [W_ii; W_if; W_ig; W_io] (4H x I) and ``weight_hh`` the same for h, exactly as
``torch.nn.LSTM`` does, so weights load both ways.

With projections (``proj_size`` P > 0; layers only, as in torch), the hidden state is a
projection of the gated cell output::

    h_t = W_hr (o_t * tanh(c_t))                              W_hr = weight_hr (P x H)

so h is P-dimensional while c stays H-dimensional, ``weight_hh`` is (4H x P) and the next layer
reads P * directions features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (CellBase, RecurrentStack, differentiable_backward, grads_are_batched, recurrent_weight_grads,
                   replay)
from .fused import keep_bytes, output_grads, step_kernels


def lstm_gates(xg: Tensor, h: Tensor, c: Tensor, w_hh, b_hh=None) -> dict[str, Tensor]:
    """One LSTM step given the input projection xg = W_ih x_t + b_ih (B, 4H), written as the equations
    above, with everything it computes: the gates i, f, g, o, the cell c_t and h_t (each (B, H)).
    The one place the equations are written for autograd: the cell, the layers' replay for double
    backward, and every trace (the names trace, the page, the lab's checks) read them here."""
    gates = xg + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * torch.tanh(c)}


def lstm_step(xg: Tensor, h: Tensor, c: Tensor, w_hh, b_hh=None, w_hr=None) -> tuple[Tensor, Tensor]:
    """One LSTM step (autograd does the backward): (h_t, c_t). With ``w_hr`` (P x H), h is projected."""
    s = lstm_gates(xg, h, c, w_hh, b_hh)
    return (s["h"] if w_hr is None else F.linear(s["h"], w_hr)), s["c"]  # h (B, H) or (B, P)


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, w_ih, w_hh, b_ih=None, b_hh=None) -> tuple[Tensor, Tensor]:
    """One LSTM step, written as the equations above (autograd does the backward)."""
    return lstm_step(F.linear(x, w_ih, b_ih), h, c, w_hh, b_hh)


class LSTMCell(CellBase):
    __doc__ = __doc__
    gates = 4
    state_size = 2

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, (h, c), batched = self._batched(input, hx)  # x (B, I), h and c (B, H)
        h, c = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


def _replay_lstm(xg, h0, c0, w_hh, b_hh, mask):
    return replay(lambda x, h, c: lstm_step(x, h, c, w_hh, b_hh), xg, (h0, c0), mask)


def _replay_lstm_projected(xg, h0, c0, w_hh, b_hh, w_hr, mask):
    return replay(lambda x, h, c: lstm_step(x, h, c, w_hh, b_hh, w_hr), xg, (h0, c0), mask)


class LSTMRecurrence(torch.autograd.Function):
    """The LSTM over a whole sequence, with backpropagation through time written by hand.

    Forward runs the equations step by step without building an autograd graph and keeps the
    activated gates, cells and hidden states. Backward walks the steps in reverse, turning
    dL/dh_t and dL/dc_t into the gradients of the four gate pre-activations, then forms the weight
    gradient of all steps in one matmul. This is what makes the scratch LSTM nearly as fast as
    torch's fused kernel: autograd's per-step bookkeeping is gone. Where it applies (float32 on the
    CPU), each step's pointwise part -- the gate activations and the cell update forward, the local
    derivatives backward -- runs in one pass of C (rnnlab.nn.fused, fused_steps.c: the same equations);
    the eager code below is the fallback and the reference the tests compare it with.

    Inputs: xg (T, B, 4H) = W_ih x_t + b_ih for every step; h0, c0 (B, H); w_hh (4H, H);
    b_hh (4H,) or None; mask (T, B, 1) or None (1 where the step is real, 0 where it is padding:
    a padded step leaves h and c unchanged and outputs zero).
    """

    @staticmethod
    def forward(ctx, xg, h0, c0, w_hh, b_hh, mask):
        steps, batch, four_h = xg.shape
        H = four_h // 4
        keep = mask.bool() if mask is not None else None
        act = xg.new_empty(steps, batch, four_h)  # activated gates i, f, g, o
        hs = xg.new_empty(steps + 1, batch, H)  # h_0 .. h_T
        cs = xg.new_empty(steps + 1, batch, H)  # c_0 .. c_T
        tanh_c = xg.new_empty(steps, batch, H)  # tanh of each step's new cell
        hs[0], cs[0] = h0, c0
        w_t = w_hh.t()
        fused = step_kernels(act)  # the pointwise part in one pass of C (rnnlab.nn.fused), or None
        if fused:
            # act starts as the input projections plus the recurrent bias; each step adds W_hh h_{t-1}
            # in place, and the kernel turns those pre-activations into the gates, also in place.
            torch.add(xg, b_hh, out=act) if b_hh is not None else act.copy_(xg)
            keep_t = keep_bytes(keep)
            for t in range(steps):
                act[t].addmm_(hs[t], w_t)
                fused.forward_step(act[t], cs[t], hs[t], keep_t[t] if keep_t is not None else None,
                                   cs[t + 1], hs[t + 1], tanh_c[t])
        else:
            pre_x = xg + b_hh if b_hh is not None else xg  # the recurrent bias folded in once
            for t in range(steps):
                pre = torch.addmm(pre_x[t], hs[t], w_t)  # (B, 4H): the only sequential matmul
                a = act[t]
                torch.sigmoid(pre, out=a)
                torch.tanh(pre[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
                i, f, g, o = a.chunk(4, dim=1)
                c, h = cs[t + 1], hs[t + 1]  # written in place: these buffers are what backward reads
                torch.mul(f, cs[t], out=c).addcmul_(i, g)  # c_t = f*c_{t-1} + i*g
                torch.mul(o, torch.tanh(c, out=tanh_c[t]), out=h)  # h_t = o*tanh(c_t)
                if keep is not None:  # padded steps carry the state through unchanged
                    c.copy_(torch.where(keep[t], c, cs[t]))
                    h.copy_(torch.where(keep[t], h, hs[t]))
        out = hs[1:] * mask if mask is not None else hs[1:].clone()  # (T, B, H), zero on padding
        # The inputs too: a double backward replays the forward from them (differentiable_backward).
        ctx.save_for_backward(act, hs, cs, tanh_c, w_hh, mask, xg, h0, c0, b_hh)
        ctx.has_bias = b_hh is not None
        return out, hs[steps].clone(), cs[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        act, hs, cs, tanh_c, w_hh, mask, xg, h0, c0, b_hh = ctx.saved_tensors
        if torch.is_grad_enabled() or grads_are_batched(d_out, d_h, d_c):  # create_graph=True, or vmap
            return differentiable_backward(ctx, _replay_lstm, (xg, h0, c0, w_hh, b_hh, mask), (d_out, d_h, d_c))
        steps, batch, four_h = act.shape
        H = four_h // 4
        fused = step_kernels(act)
        if fused:
            return _fused_backward(fused, ctx, act, hs, cs, tanh_c, w_hh, mask, d_out, d_h, d_c)
        i, f, g, o = act.chunk(4, dim=-1)
        c_prev = cs[:-1]
        # Local derivatives of every step at once (vectorised over T), so the sequential loop
        # below does only what must be sequential:
        #   dL/d(pre_i) = dL/dc_t * g * i(1-i),  dL/d(pre_f) = dL/dc_t * c_{t-1} * f(1-f),
        #   dL/d(pre_g) = dL/dc_t * i * (1-g^2), dL/d(pre_o) = dL/dh_t * tanh(c_t) * o(1-o),
        #   dL/dc_t    += dL/dh_t * o * (1 - tanh(c_t)^2).
        d_sig = torch.addcmul(act, act, act, value=-1)  # s(1-s) for the three sigmoid gates
        k_ifg = torch.empty_like(act[..., : 3 * H])  # (T, B, 3H)
        torch.mul(g, d_sig[..., :H], out=k_ifg[..., :H])
        torch.mul(c_prev, d_sig[..., H : 2 * H], out=k_ifg[..., H : 2 * H])
        torch.addcmul(i, i, g * g, value=-1, out=k_ifg[..., 2 * H :])
        k_o = tanh_c * d_sig[..., 3 * H :]  # (T, B, H)
        k_c = torch.addcmul(o, o, tanh_c * tanh_c, value=-1)  # (T, B, H)
        if mask is not None:  # a padded step passes gradients straight through to the step before
            keep = mask.bool()
            k_o, k_c, d_out = k_o * mask, k_c * mask, d_out * mask
        d_gates = act.new_empty(steps, batch, four_h)  # dL/d(pre-activation) of every step
        dh, dc = d_h + d_out[steps - 1], d_c.clone()  # dh: dL/dh_t from the output at t and step t+1
        for t in reversed(range(steps)):
            dc_new = torch.addcmul(dc, dh, k_c[t])
            if mask is not None:
                dc_new = dc_new * mask[t]
            dg = d_gates[t]
            torch.mul(dc_new.unsqueeze(1), k_ifg[t].view(batch, 3, H), out=dg[:, : 3 * H].view(batch, 3, H))
            torch.mul(dh, k_o[t], out=dg[:, 3 * H :])
            dc_prev = dc_new * f[t]  # the cell path: dc_t/dc_{t-1} = f_t
            if mask is not None:
                dc_prev = torch.where(keep[t], dc_prev, dc)
            dh = dh_before(dg, w_hh, dh, keep[t] if mask is not None else None, d_out[t - 1] if t > 0 else None)
            dc = dc_prev
        d_w_hh, d_b_hh = recurrent_weight_grads(d_gates, hs[:-1], ctx.has_bias)
        return d_gates, dh, dc, d_w_hh, d_b_hh, None


def dh_before(dg: Tensor, w_hh: Tensor, dh: Tensor, keep_t: Tensor | None, d_out_prev: Tensor | None,
              in_place: bool = False) -> Tensor:
    """dL/dh_{t-1} in every LSTM backward loop: back through W_hh from step t's gates,
    dL/d(gates_t) W_hh (a padded step, ``keep_t`` False, passes dL/dh_t through unchanged instead),
    plus what the output at t-1 sent (``d_out_prev``; None at t = 0). With ``in_place`` the sum is
    written into ``d_out_prev``, which the caller owns."""
    if keep_t is not None:
        back = torch.where(keep_t, dg @ w_hh, dh)
        return back if d_out_prev is None else back.add_(d_out_prev)
    if d_out_prev is None:
        return dg @ w_hh
    return d_out_prev.addmm_(dg, w_hh) if in_place else torch.addmm(d_out_prev, dg, w_hh)


def _fused_backward(fused, ctx, act, hs, cs, tanh_c, w_hh, mask, d_out, d_h, d_c):
    """LSTMRecurrence.backward with each step's pointwise part in one pass of C (rnnlab.nn.fused):
    the same loop as the eager code, without the local derivatives precomputed for all steps."""
    steps, batch, four_h = act.shape
    keep = keep_bytes(mask)
    d_acc = output_grads(d_out, mask)  # (T, B, H); each step adds the path through W_hh in place
    d_gates = act.new_empty(steps, batch, four_h)  # dL/d(pre-activation) of every step
    dc_bufs = act.new_empty(2, batch, four_h // 4)  # dL/dc, written in turn
    dh, dc = d_acc[steps - 1].add_(d_h), d_c.contiguous()
    for t in reversed(range(steps)):
        dc_prev, dg = dc_bufs[t % 2], d_gates[t]
        fused.backward_step(act[t], cs[t], tanh_c[t], dh, dc, keep[t] if keep is not None else None, dg, dc_prev)
        # d_acc[t - 1] is this function's own copy, so dh_before may add into it in place.
        dh = dh_before(dg, w_hh, dh, mask[t].bool() if keep is not None else None, d_acc[t - 1] if t > 0 else None,
                       in_place=True)
        dc = dc_prev
    d_w_hh, d_b_hh = recurrent_weight_grads(d_gates, hs[:-1], ctx.has_bias)
    return d_gates, dh, dc.clone(), d_w_hh, d_b_hh, None


class LSTMPRecurrence(torch.autograd.Function):
    """The LSTM with projections (torch's ``proj_size``) over a whole sequence, BPTT by hand.

    Same steps as ``LSTMRecurrence``, then h_t = W_hr m_t with m_t = o_t * tanh(c_t): h is
    P-dimensional, c stays H-dimensional. Backward turns dL/dh_t (P) into dL/dm_t = dL/dh_t W_hr
    (H), which feeds the output gate and the cell as dL/dh_t does without projection, and sums
    dL/dW_hr = sum_t dL/dh_t^T m_t in one matmul.

    Inputs: xg (T, B, 4H); h0 (B, P); c0 (B, H); w_hh (4H, P); b_hh (4H,) or None; w_hr (P, H);
    mask (T, B, 1) or None (a padded step leaves h and c unchanged and outputs zero).
    """

    @staticmethod
    def forward(ctx, xg, h0, c0, w_hh, b_hh, w_hr, mask):
        steps, batch, four_h = xg.shape
        H, P = four_h // 4, w_hr.size(0)
        pre_x = xg + b_hh if b_hh is not None else xg
        keep = mask.bool() if mask is not None else None
        act = xg.new_empty(steps, batch, four_h)  # activated gates i, f, g, o
        hs = xg.new_empty(steps + 1, batch, P)  # h_0 .. h_T (projected)
        cs = xg.new_empty(steps + 1, batch, H)  # c_0 .. c_T
        tanh_c = xg.new_empty(steps, batch, H)  # tanh of each step's new cell
        ms = xg.new_empty(steps, batch, H)  # m_t = o_t * tanh(c_t), what W_hr projects
        hs[0], cs[0] = h0, c0
        w_t, w_hr_t = w_hh.t(), w_hr.t()
        for t in range(steps):
            pre = torch.addmm(pre_x[t], hs[t], w_t)  # (B, 4H)
            a = act[t]
            torch.sigmoid(pre, out=a)
            torch.tanh(pre[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
            i, f, g, o = a.chunk(4, dim=1)
            c, h = cs[t + 1], hs[t + 1]
            torch.mul(f, cs[t], out=c).addcmul_(i, g)  # c_t = f*c_{t-1} + i*g
            torch.mul(o, torch.tanh(c, out=tanh_c[t]), out=ms[t])  # m_t = o*tanh(c_t)
            torch.mm(ms[t], w_hr_t, out=h)  # h_t = W_hr m_t
            if keep is not None:
                c.copy_(torch.where(keep[t], c, cs[t]))
                h.copy_(torch.where(keep[t], h, hs[t]))
        out = hs[1:] * mask if mask is not None else hs[1:].clone()  # (T, B, P)
        ctx.save_for_backward(act, hs, cs, tanh_c, ms, w_hh, w_hr, mask, xg, h0, c0, b_hh)
        ctx.has_bias = b_hh is not None
        return out, hs[steps].clone(), cs[steps].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        act, hs, cs, tanh_c, ms, w_hh, w_hr, mask, xg, h0, c0, b_hh = ctx.saved_tensors
        if torch.is_grad_enabled() or grads_are_batched(d_out, d_h, d_c):  # create_graph=True, or vmap
            return differentiable_backward(ctx, _replay_lstm_projected, (xg, h0, c0, w_hh, b_hh, w_hr, mask),
                                           (d_out, d_h, d_c))
        steps, batch, four_h = act.shape
        H, P = four_h // 4, w_hr.size(0)
        i, f, g, o = act.chunk(4, dim=-1)
        # The local derivatives of LSTMRecurrence.backward, with dL/dm_t in place of dL/dh_t.
        d_sig = torch.addcmul(act, act, act, value=-1)  # s(1-s) for the three sigmoid gates
        k_ifg = torch.empty_like(act[..., : 3 * H])  # (T, B, 3H)
        torch.mul(g, d_sig[..., :H], out=k_ifg[..., :H])
        torch.mul(cs[:-1], d_sig[..., H : 2 * H], out=k_ifg[..., H : 2 * H])
        torch.addcmul(i, i, g * g, value=-1, out=k_ifg[..., 2 * H :])
        k_o = tanh_c * d_sig[..., 3 * H :]  # dm/d(pre_o) (T, B, H)
        k_c = torch.addcmul(o, o, tanh_c * tanh_c, value=-1)  # dm/dc (T, B, H)
        if mask is not None:  # a padded step passes gradients straight through to the step before
            keep = mask.bool()
            k_o, k_c, d_out = k_o * mask, k_c * mask, d_out * mask
        d_gates = act.new_empty(steps, batch, four_h)  # dL/d(pre-activation) of every step
        d_hs = act.new_empty(steps, batch, P)  # dL/dh_t where h_t = W_hr m_t (zero on padded steps)
        dh, dc = d_h + d_out[steps - 1], d_c.clone()
        for t in reversed(range(steps)):
            if mask is not None:
                torch.mul(dh, mask[t], out=d_hs[t])
            else:
                d_hs[t] = dh
            dm = dh @ w_hr  # (B, H): back through the projection
            dc_new = torch.addcmul(dc, dm, k_c[t])
            if mask is not None:
                dc_new = dc_new * mask[t]
            dg = d_gates[t]
            torch.mul(dc_new.unsqueeze(1), k_ifg[t].view(batch, 3, H), out=dg[:, : 3 * H].view(batch, 3, H))
            torch.mul(dm, k_o[t], out=dg[:, 3 * H :])
            dc_prev = dc_new * f[t]
            if mask is not None:
                dc_prev = torch.where(keep[t], dc_prev, dc)
            dh = dh_before(dg, w_hh, dh, keep[t] if mask is not None else None, d_out[t - 1] if t > 0 else None)  # (B, P)
            dc = dc_prev
        d_w_hh, d_b_hh = recurrent_weight_grads(d_gates, hs[:-1], ctx.has_bias)
        d_w_hr = d_hs.reshape(-1, P).t() @ ms.reshape(-1, H)  # sum over all steps at once
        return d_gates, dh, dc, d_w_hh, d_b_hh, d_w_hr, None


class LSTM(RecurrentStack):
    __doc__ = __doc__
    gates = 4
    state_size = 2

    # torch.nn.LSTM's overrides of RNNBase's checks: (h_0, c_0), c always of hidden_size.
    def get_expected_cell_size(self, input: Tensor, batch_sizes: Tensor | None) -> tuple[int, int, int]:
        rows, batch, _ = self.get_expected_hidden_size(input, batch_sizes)
        return (rows, batch, self.hidden_size)

    def check_forward_args(self, input: Tensor, hidden: tuple[Tensor, Tensor], batch_sizes: Tensor | None) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden[0], self.get_expected_hidden_size(input, batch_sizes),
                               "Expected hidden[0] size {}, got {}")
        self.check_hidden_size(hidden[1], self.get_expected_cell_size(input, batch_sizes),
                               "Expected hidden[1] size {}, got {}")

    def permute_hidden(self, hx: tuple[Tensor, Tensor], permutation: Tensor | None) -> tuple[Tensor, Tensor]:
        if permutation is None:
            return hx
        return hx[0].index_select(1, permutation), hx[1].index_select(1, permutation)

    def recurrence(self, xg, state, w_hh, b_hh, mask, w_hr=None):
        if w_hr is None:
            out, h, c = LSTMRecurrence.apply(xg, state[0], state[1], w_hh, b_hh, mask)
        else:
            out, h, c = LSTMPRecurrence.apply(xg, state[0], state[1], w_hh, b_hh, w_hr, mask)
        return out, (h, c)
