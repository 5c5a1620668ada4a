"""The LSTM's and the GRU's one-pass C steps (rnnlab.nn.fused) against the eager PyTorch equations
they replace (RNNLAB_FUSED=0) and against torch.nn.LSTM / torch.nn.GRU: outputs, final states and
every gradient."""

import shutil

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab.nn as scratch
from rnnlab.nn import fused

needs_compiler = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")),
                                    reason="no C compiler: the eager path is all there is")


@needs_compiler
def test_the_kernel_builds_and_is_used_for_float32_on_the_cpu():
    x = torch.zeros(2, 3)
    assert fused.step_kernels(x) is not None
    assert fused.step_kernels(x.double()) is None  # float64 (gradcheck): the eager equations
    assert fused.step_kernels(torch.zeros(3, 2).t()) is None  # not contiguous


def test_rnnlab_fused_0_switches_it_off(monkeypatch):
    monkeypatch.setenv("RNNLAB_FUSED", "0")
    assert fused.step_kernels(torch.zeros(2, 3)) is None


def run(model, x, lengths, state, batch_first):
    x = x.detach().clone().requires_grad_(True)
    inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if lengths is not None else x
    out, final = model(inp, state)
    h, c = final if isinstance(final, tuple) else (final, torch.zeros(()))  # a GRU has no cell
    if lengths is not None:
        out = pad_packed_sequence(out, batch_first=batch_first)[0]
    # Weights that differ per position, so that every gradient path matters.
    w = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    ((out * w).sum() + (h * h).sum() + c.sum()).backward()
    return [out, h, c, x.grad] + [p.grad for p in model.parameters()]


CASES = [
    dict(layers=1, bidirectional=False, batch_first=False, packed=False, state=False),
    dict(layers=2, bidirectional=True, batch_first=True, packed=True, state=True),
    dict(layers=1, bidirectional=True, batch_first=False, packed=True, state=False),
    dict(layers=2, bidirectional=False, batch_first=True, packed=False, state=True),
]


@needs_compiler
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(k for k, v in c.items() if v and k != "layers") or "plain")
def test_fused_equals_eager_and_torch(case, cell, monkeypatch):
    torch.manual_seed(0)
    size, hidden, batch, steps = 6, 24, 5, 7
    ref = getattr(torch.nn, cell)(size, hidden, num_layers=case["layers"], bidirectional=case["bidirectional"],
                                  batch_first=case["batch_first"])
    ours = getattr(scratch, cell)(size, hidden, num_layers=case["layers"], bidirectional=case["bidirectional"],
                                  batch_first=case["batch_first"])
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(batch, steps, size) if case["batch_first"] else torch.randn(steps, batch, size)
    lengths = torch.tensor([7, 2, 5, 1, 7]) if case["packed"] else None
    dirs = 2 if case["bidirectional"] else 1
    h0 = torch.randn(case["layers"] * dirs, batch, hidden)
    state = (h0 if cell == "GRU" else (h0, torch.randn(case["layers"] * dirs, batch, hidden))) if case["state"] else None
    want = run(ref, x, lengths, state, case["batch_first"])
    got = run(ours, x, lengths, state, case["batch_first"])
    ours.zero_grad()
    monkeypatch.setenv("RNNLAB_FUSED", "0")
    reference = run(ours, x, lengths, state, case["batch_first"])
    for a, b, e in zip(got, reference, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6)  # the kernel vs the eager equations
        torch.testing.assert_close(a, e, rtol=1e-5, atol=2e-6)  # and vs torch.nn


@needs_compiler
def test_fused_keeps_inf_and_nan_semantics():
    """Built without -ffast-math: an overflowing pre-activation saturates, a NaN stays NaN."""
    k = fused.step_kernels(torch.zeros(1))
    gates = torch.tensor([[float("inf"), -float("inf"), -float("inf"), float("nan"),
                           100.0, -100.0, 0.0, 1e30]]).reshape(1, 8)  # B=1, H=2: i, f, g, o pairs
    c_prev, h_prev = torch.zeros(1, 2), torch.zeros(1, 2)
    c, h, tanh_c = torch.empty(1, 2), torch.empty(1, 2), torch.empty(1, 2)
    want = torch.cat([torch.sigmoid(gates[:, :4]), torch.tanh(gates[:, 4:6]), torch.sigmoid(gates[:, 6:])], dim=1)
    k.forward_step(gates, c_prev, h_prev, None, c, h, tanh_c)
    torch.testing.assert_close(gates, want, equal_nan=True)


@needs_compiler
def test_fused_gru_keeps_inf_and_nan_semantics():
    """The GRU's step too: r and z saturate or stay NaN, the candidate's tanh saturates."""
    k = fused.step_kernels(torch.zeros(1))
    xg = torch.tensor([[float("inf"), -float("inf"), float("nan"), 100.0, 1e30, -1e30]])  # B=1, H=2: r, z, n pairs
    hg, h_prev = torch.zeros(1, 6), torch.zeros(1, 2)
    act, hn, h = torch.empty(1, 6), torch.empty(1, 2), torch.empty(1, 2)
    k.gru_forward_step(xg, hg, h_prev, None, act, hn, h)
    want = torch.cat([torch.sigmoid(xg[:, :4]), torch.tanh(xg[:, 4:])], dim=1)
    torch.testing.assert_close(act, want, equal_nan=True)
