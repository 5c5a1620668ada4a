"""The NumPy BPTT reference: hand-written gradients against finite differences and torch autograd."""

import numpy as np
import pytest
import torch

from rnnlab import reference as ref

CASES = [("rnn", "tanh"), ("rnn", "sigmoid"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
T, I, H, O = 5, 3, 4, 3


def setup(kind, seed=0):
    rng = np.random.default_rng(seed)
    p = ref.init_params(kind, I, H, O, rng)
    p["h0"] = rng.uniform(-0.5, 0.5, H)
    if kind == "lstm":
        p["C0"] = rng.uniform(-0.5, 0.5, H)
    xs = rng.normal(size=(T, I))
    ys = rng.integers(0, O, size=T)
    return p, xs, ys


def run(kind, phi, p, xs, ys):
    forward, backward = ref.MODELS[kind]
    extra = {"phi": phi} if kind == "rnn" else {}
    if kind == "lstm":
        extra["C0"] = p["C0"]
    loss, cache = forward(p, xs, ys, h0=p["h0"], **extra)
    return loss, backward(p, cache)


@pytest.mark.parametrize("kind,phi", CASES)
def test_backward_matches_central_finite_differences(kind, phi):
    p, xs, ys = setup(kind)
    _, grads = run(kind, phi, p, xs, ys)
    loss_fn = lambda q: run(kind, phi, q, xs, ys)[0]  # noqa: E731
    for name in p:
        num = ref.numerical_gradient(loss_fn, p, name)
        assert ref.relative_error(grads[name], num) < 1e-6, name


def torch_loss_and_grads(kind, phi, p, xs, ys):
    """The same model in torch (torch.nn layers where torch has them), gradients by autograd."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    x = torch.tensor(xs).unsqueeze(1)  # (T, 1, I)
    if kind == "rnn":
        act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[phi]
        h, hs = t["h0"], []
        for step in range(len(xs)):
            h = act(t["U"] @ x[step, 0] + t["W"] @ h + t["b"])
            hs.append(h)
        out = torch.stack(hs)
    elif kind == "lstm":  # torch's gate order i, f, g(=a), o
        layer = torch.nn.LSTM(I, H).double()
        w_ih = torch.cat([t[f"U_{g}"] for g in "ifao"])
        w_hh = torch.cat([t[f"W_{g}"] for g in "ifao"])
        b = torch.cat([t[f"b_{g}"] for g in "ifao"])
        out, _ = torch.func.functional_call(layer, {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b,
                                                    "bias_hh_l0": torch.zeros_like(b)},
                                            (x, (t["h0"].view(1, 1, H), t["C0"].view(1, 1, H))))
        out = out[:, 0]
    else:  # torch's gate order r, z, n
        layer = torch.nn.GRU(I, H).double()
        params = {"weight_ih_l0": torch.cat([t[f"U_{g}"] for g in "rzn"]), "weight_hh_l0": torch.cat([t[f"W_{g}"] for g in "rzn"]),
                  "bias_ih_l0": torch.cat([t[f"b_{g}"] for g in "rzn"]), "bias_hh_l0": torch.cat([t[f"bh_{g}"] for g in "rzn"])}
        out, _ = torch.func.functional_call(layer, params, (x, t["h0"].view(1, 1, H)))
        out = out[:, 0]
    logits = out @ t["V"].T + t["c"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(ys), reduction="sum")
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("kind,phi", CASES)
def test_backward_matches_torch_autograd_in_float64(kind, phi):
    p, xs, ys = setup(kind, seed=1)
    loss, grads = run(kind, phi, p, xs, ys)
    t_loss, t_grads = torch_loss_and_grads(kind, phi, p, xs, ys)
    assert abs(loss - t_loss) < 1e-10
    for name in p:
        assert ref.relative_error(grads[name], t_grads[name]) < 1e-6, name


@pytest.mark.parametrize("phi", ["tanh", "sigmoid", "relu"])
def test_t3_expansion_of_dW_is_the_gradient_of_L3(phi):
    p, xs, ys = setup("rnn", seed=2)
    total, words = ref.rnn_grad_W_at_t3(p, xs, ys, phi)
    assert len(words) == 3 and "(dh_3/dh_2) (dh_2/dh_1)" in words[0]

    def loss3(q):  # L_3 alone, with h_0 = 0 as in rnn_grad_W_at_t3
        _, cache = ref.rnn_forward(q, xs[:3], ys[:3], phi=phi)
        return -np.log(cache["probs"][2, ys[2]])

    assert ref.relative_error(total, ref.numerical_gradient(loss3, p, "W")) < 1e-6
