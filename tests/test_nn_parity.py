"""rnnlab.nn must be the same function as torch.nn: outputs, final states and every gradient.

Property tests draw sizes, layer counts, directions, batch_first, ragged lengths and (LSTM)
projections, copy torch's weights into ours and compare (float32 within 1e-5, float64 within
1e-10). Double backward (gradient penalties, gradgradcheck) is checked here too; the port of
PyTorch's own tests for these modules is in tests/test_torch_port*.py.
"""

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence

import rnnlab.nn as rn

# torch.nn.LSTM(proj_size=...) tells it falls back from oneDNN; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

FAMILIES = [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_and_grad(model, x, inputs, state0, lengths, batch_first):
    if lengths is not None:
        seq = pack_padded_sequence(inputs, lengths, batch_first=batch_first, enforce_sorted=False)
    else:
        seq = inputs
    out, state = model(seq, state0) if state0 is not None else model(seq)
    out_t = out.data if lengths is not None else out
    state = as_tuple(state)
    # A loss that touches the output and every final state with different weights.
    loss = (out_t * torch.linspace(-1, 1, out_t.numel(), dtype=out_t.dtype).view_as(out_t)).sum()
    loss = loss + sum(((k + 2) * s.pow(2)).sum() for k, s in enumerate(state))
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, [x] + params)
    return out_t.detach(), [s.detach() for s in state], grads


def assert_close(a, b, tol, what):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= tol * max(1.0, b.abs().max().item()), f"{what}: max error {err:.3g} > {tol}"


@settings(max_examples=150, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    input_size=st.integers(1, 9),
    hidden_size=st.integers(1, 9),
    num_layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
    steps=st.integers(1, 7),
    batch=st.integers(1, 5),
    ragged=st.booleans(),
    with_state=st.booleans(),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
    proj=st.integers(0, 8),
)
def test_layers_match_torch(family, input_size, hidden_size, num_layers, bidirectional, batch_first, bias,
                            steps, batch, ragged, with_state, double, seed, proj):
    name, kwargs = family
    dtype = torch.float64 if double else torch.float32
    g = torch.Generator().manual_seed(seed)
    common = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **kwargs)
    proj_size = proj % hidden_size if name == "LSTM" else 0  # torch: 0 <= proj_size < hidden_size, LSTM only
    if proj_size:
        common["proj_size"] = proj_size
    ref = getattr(torch.nn, name)(input_size, hidden_size, **common).to(dtype)
    ours = getattr(rn, name)(input_size, hidden_size, **common).to(dtype)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=dtype) * 1.2 - 0.6)
    ours.load_state_dict(ref.state_dict())

    shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    x = torch.randn(shape, generator=g, dtype=dtype, requires_grad=True)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g) if ragged else None
    state0 = None
    if with_state:
        rows = num_layers * (2 if bidirectional else 1)
        sizes = (proj_size or hidden_size, hidden_size)[: 2 if name == "LSTM" else 1]  # h (projected), c
        states = tuple(torch.randn(rows, batch, size, generator=g, dtype=dtype) for size in sizes)
        state0 = states if name == "LSTM" else states[0]

    o1, s1, g1 = run_and_grad(ref, x, x, state0, lengths, batch_first)
    o2, s2, g2 = run_and_grad(ours, x, x, state0, lengths, batch_first)
    tol = TOL[dtype]
    assert_close(o2, o1, tol, "output")
    for a, b in zip(s2, s1):
        assert_close(a, b, tol, "final state")
    names = ["input"] + [n for n, _ in ref.named_parameters()]
    for n, a, b in zip(names, g2, g1):
        assert_close(a, b, tol, f"grad {n}")


@pytest.mark.parametrize("name,kwargs", FAMILIES)
def test_lengths_argument_equals_packing_and_ignores_padding(name, kwargs):
    torch.manual_seed(0)
    model = getattr(rn, name)(4, 5, num_layers=2, bidirectional=True, **kwargs).double()
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    out_packed, state_packed = model(pack_padded_sequence(x, lengths, enforce_sorted=False))
    out, state = model(x, lengths=lengths)
    # Garbage in the padded steps must not change anything.
    x2 = x.clone()
    x2[2:, 1] = 1e3
    x2[4:, 2] = -1e3
    out2, state2 = model(x2, lengths=lengths)
    for a, b, c in zip(as_tuple(state), as_tuple(state_packed), as_tuple(state2)):
        assert torch.allclose(a, b, atol=1e-12) and torch.allclose(a, c, atol=1e-12)
    assert torch.allclose(out, out2, atol=1e-12)
    assert out[2:, 1].abs().max() == 0 and out[4:, 2].abs().max() == 0  # padded outputs are zero


@pytest.mark.parametrize("cell,kwargs", [("RNNCell", {"nonlinearity": "tanh"}), ("RNNCell", {"nonlinearity": "relu"}),
                                         ("LSTMCell", {}), ("GRUCell", {})])
def test_cells_match_torch_both_ways(cell, kwargs):
    torch.manual_seed(1)
    ref = getattr(torch.nn, cell)(6, 7, **kwargs).double()
    ours = getattr(rn, cell)(6, 7, **kwargs).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 6, dtype=torch.float64)
    hx = (torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)) if cell == "LSTMCell" \
        else torch.randn(4, 7, dtype=torch.float64)
    for a, b in zip(as_tuple(ours(x, hx)), as_tuple(ref(x, hx))):
        assert torch.allclose(a, b, atol=1e-12)
    # And back: torch loads ours.
    ours2 = getattr(rn, cell)(6, 7, **kwargs).double()
    ref.load_state_dict(ours2.state_dict())
    for a, b in zip(as_tuple(ours2(x, hx)), as_tuple(ref(x, hx))):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("kwargs", [{}, {"proj_size": 2}])
def test_torch_loads_our_layer_weights(kwargs):
    ours = rn.LSTM(3, 4, num_layers=2, bidirectional=True, **kwargs)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, **kwargs)
    ref.load_state_dict(ours.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [[n for n in names] for names in ours._all_weights] == ref._all_weights
    assert ours._flat_weights_names == ref._flat_weights_names
    x = torch.randn(5, 2, 3)
    for a, b in zip(torch.utils._pytree.tree_leaves(ours(x)), torch.utils._pytree.tree_leaves(ref(x))):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("lib", [torch.nn, rn])
def test_functional_call_swaps_the_weights(lib):
    """torch.func.functional_call runs the module with other weights (torch's RNNBase tracks
    _flat_weights for it); the module's own weights stay."""
    torch.manual_seed(9)
    model = lib.LSTM(3, 4, num_layers=2, proj_size=2)
    x = torch.randn(5, 2, 3)
    zeros = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    out, (h, c) = torch.func.functional_call(model, zeros, (x,))
    assert out.abs().max() == 0 and h.abs().max() == 0 and c.abs().max() == 0
    assert model(x)[0].abs().max() > 0


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_rnn_layer_equals_a_loop_of_its_cell(nonlinearity):
    """The fused layer with hand-written BPTT equals the step equations under autograd (sigmoid too,
    which torch.nn has no version of)."""
    torch.manual_seed(2)
    layer = rn.RNN(3, 5, nonlinearity=nonlinearity).double()
    cell = rn.RNNCell(3, 5, nonlinearity=nonlinearity).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
    x = torch.randn(8, 2, 3, dtype=torch.float64)
    out, h = layer(x)
    hs, state = [], None
    for t in range(8):
        state = cell(x[t], state)
        hs.append(state)
    ref = torch.stack(hs)
    assert torch.allclose(out, ref, atol=1e-12) and torch.allclose(h[0], ref[-1], atol=1e-12)
    g1 = torch.autograd.grad(out.pow(2).sum(), list(layer.parameters()))
    g2 = torch.autograd.grad(ref.pow(2).sum(), list(cell.parameters()))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-10)


RECURRENCES = [
    (rn.LSTMRecurrence, 4, ()), (rn.GRURecurrence, 3, ()), (rn.LSTMPRecurrence, 4, ()),
    (rn.RNNRecurrence, 1, ("tanh",)), (rn.RNNRecurrence, 1, ("sigmoid",)), (rn.RNNRecurrence, 1, ("relu",)),
]


def recurrence_args(fn, gates, extra, masked, T=5, B=3, H=4, P=2, seed=3):
    """Random inputs for one of the Recurrence Functions, in its argument order."""
    torch.manual_seed(seed)
    d = dict(dtype=torch.float64, requires_grad=True)
    h_size = P if fn is rn.LSTMPRecurrence else H  # with a projection, h (and W_hh's columns) are P wide
    xg = torch.randn(T, B, gates * H, **d)
    w_hh = (torch.randn(gates * H, h_size, dtype=torch.float64) * 0.5).requires_grad_()
    b_hh = torch.randn(gates * H, **d)
    h0 = torch.randn(B, h_size, **d)
    mask = None
    if masked:
        mask = (torch.arange(T)[:, None] < torch.tensor([T, 2, 4][:B])[None, :]).double().unsqueeze(-1)
    if fn is rn.LSTMRecurrence:
        return (xg, h0, torch.randn(B, H, **d), w_hh, b_hh, mask)
    if fn is rn.LSTMPRecurrence:
        w_hr = (torch.randn(P, H, dtype=torch.float64) * 0.5).requires_grad_()
        return (xg, h0, torch.randn(B, H, **d), w_hh, b_hh, w_hr, mask)
    return (xg, h0, w_hh, b_hh, mask) + extra


@pytest.mark.parametrize("fn,gates,extra", RECURRENCES)
@pytest.mark.parametrize("masked", [False, True])
def test_hand_written_bptt_passes_gradcheck(fn, gates, extra, masked):
    args = recurrence_args(fn, gates, extra, masked)
    assert torch.autograd.gradcheck(fn.apply, args, eps=1e-6, atol=1e-7)
    # vmap over the backward (is_grads_batched, jacobians) goes through the replay (see base.py).
    assert torch.autograd.gradcheck(fn.apply, args, eps=1e-6, atol=1e-7, fast_mode=True, check_batched_grad=True)


@pytest.mark.parametrize("fn,gates,extra", RECURRENCES)
@pytest.mark.parametrize("masked", [False, True])
def test_double_backward_passes_gradgradcheck(fn, gates, extra, masked):
    args = recurrence_args(fn, gates, extra, masked, T=3, B=2, H=2, P=1)
    assert torch.autograd.gradgradcheck(fn.apply, args, eps=1e-6, atol=1e-6)


def test_first_order_backward_never_replays(monkeypatch):
    """Plain .backward() runs the hand-written BPTT only; the replay is for create_graph=True."""
    import rnnlab.nn.base as base

    def refuse(*args, **kwargs):
        raise AssertionError("the first-order backward must not replay the forward")

    for module in ("rnn", "lstm", "gru"):
        monkeypatch.setattr(sys.modules[f"rnnlab.nn.{module}"], "differentiable_backward", refuse)
    monkeypatch.setattr(base, "differentiable_backward", refuse)
    x = torch.randn(4, 2, 3, requires_grad=True)
    for model in (rn.RNN(3, 4, num_layers=2), rn.LSTM(3, 4, bidirectional=True), rn.LSTM(3, 4, proj_size=2),
                  rn.GRU(3, 4)):
        out, _ = model(x, lengths=torch.tensor([4, 2]))
        out.sum().backward()
    with pytest.raises(AssertionError, match="must not replay"):
        out, _ = rn.GRU(3, 4)(x)
        torch.autograd.grad(out.sum(), x, create_graph=True)


DOUBLE_BACKWARD_FAMILIES = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("LSTM", {"proj_size": 2}),
                            ("GRU", {})]


@pytest.mark.parametrize("name,kwargs", DOUBLE_BACKWARD_FAMILIES)
@pytest.mark.parametrize("num_layers,bidirectional,packed", [(1, False, False), (2, True, True), (3, False, True)])
def test_gradient_penalty_matches_torch(name, kwargs, num_layers, bidirectional, packed):
    """d/dtheta of a function of dL/dx (a gradient penalty): every parameter's gradient, and dL/dx
    itself, equal torch's -- one layer or many, bidirectional, padded (packed) or not."""
    torch.manual_seed(7)
    common = dict(num_layers=num_layers, bidirectional=bidirectional, **kwargs)
    ref = getattr(torch.nn, name)(3, 4, **common).double()
    ours = getattr(rn, name)(3, 4, **common).double()
    ours.load_state_dict(ref.state_dict())
    x0 = torch.randn(5, 3, 3, dtype=torch.float64)
    results = []
    for model in (ref, ours):
        x = x0.clone().requires_grad_()
        seq = pack_padded_sequence(x, torch.tensor([5, 2, 4]), enforce_sorted=False) if packed else x
        out, state = model(seq)
        out = out.data if packed else out
        loss = (out * out.detach().cos()).sum() + sum((s**2).sum() for s in as_tuple(state))
        (dx,) = torch.autograd.grad(loss, x, create_graph=True)
        penalty = (dx**2).sum() + (dx.sin() * x).sum()
        grads = torch.autograd.grad(penalty, [x] + list(model.parameters()))
        results.append([dx.detach()] + list(grads))
    names = ["dL/dx", "input"] + [n for n, _ in ref.named_parameters()]
    for n, a, b in zip(names, results[1], results[0]):
        assert_close(a, b, 1e-10, f"penalty grad {n}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid"])
def test_gradient_penalty_equals_the_cell_loop(nonlinearity):
    """Double backward of the fused layer equals that of its cell in a loop under autograd (sigmoid,
    which torch.nn has no version of, too)."""
    torch.manual_seed(8)
    layer = rn.RNN(3, 5, nonlinearity=nonlinearity).double()
    cell = rn.RNNCell(3, 5, nonlinearity=nonlinearity).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x0 = torch.randn(6, 2, 3, dtype=torch.float64)
    results = []
    for run in ("layer", "cell"):
        x = x0.clone().requires_grad_()
        if run == "layer":
            out, _ = layer(x)
        else:
            h, hs = None, []
            for t in range(6):
                h = cell(x[t], h)
                hs.append(h)
            out = torch.stack(hs)
        (dx,) = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
        params = list((layer if run == "layer" else cell).parameters())
        results.append(torch.autograd.grad(dx.pow(2).sum(), [x] + params))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10)


def test_spec_imports_no_torch():
    """The command line's choices come from rnnlab.nn.spec, which must not pull torch in."""
    code = ("import sys, rnnlab.nn.spec, rnnlab.options; assert 'torch' not in sys.modules; "
            "assert rnnlab.options.NONLINEARITIES == rnnlab.nn.spec.NONLINEARITIES; "
            "import rnnlab.nn as rn; rn.LSTM; from rnnlab.nn import GRU; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unbatched_input_and_repr():
    torch.manual_seed(4)
    ref, ours = torch.nn.GRU(3, 4, num_layers=2), rn.GRU(3, 4, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3)
    (o1, h1), (o2, h2) = ref(x), ours(x)
    assert o2.shape == o1.shape == (5, 4) and h2.shape == h1.shape == (2, 4)
    assert torch.allclose(o1, o2, atol=1e-6)
    assert repr(ours) == repr(ref)
    assert "nonlinearity=sigmoid" in repr(rn.RNN(2, 3, nonlinearity="sigmoid"))


def test_bad_arguments_are_clear():
    """torch's error types and messages (the full set is ported in tests/test_torch_port*.py)."""
    with pytest.raises(ValueError, match="Unknown nonlinearity 'softplus'"):
        rn.RNN(2, 3, nonlinearity="softplus")
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. Expected 3, got 7"):
        rn.LSTM(3, 4)(torch.randn(5, 2, 7))
    with pytest.raises(ValueError, match="lengths"):
        rn.LSTM(3, 4)(torch.randn(5, 2, 3), lengths=torch.tensor([6, 1]))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 4\), got \[1, 3, 4\]"):
        rn.GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 3, 4))
    with pytest.raises(TypeError, match="expects hx to be a tuple of two Tensors"):
        rn.LSTM(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(5)
    model = rn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(4, 2, 3)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])


def test_tutorial_rnn_structure_and_batched_sequence():
    torch.manual_seed(6)
    net = rn.TutorialRNN(57, 128, 18)
    text = repr(net)
    assert "(i2h): Linear(in_features=185, out_features=128" in text
    assert "(i2o): Linear(in_features=185, out_features=18" in text and "LogSoftmax(dim=1)" in text
    x = torch.randn(6, 3, 57)
    lengths = torch.tensor([6, 2, 4])
    batched = net.forward_sequence(x, lengths)
    for b in range(3):  # the tutorial's way: one sample, one letter at a time
        hidden = net.init_hidden(1)
        for t in range(int(lengths[b])):
            output, hidden = net(x[t, b : b + 1], hidden)
        assert torch.allclose(batched[b], output[0], atol=1e-6)
    assert torch.allclose(batched.exp().sum(1), torch.ones(3), atol=1e-5)
