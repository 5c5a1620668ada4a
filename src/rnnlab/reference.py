r"""Backpropagation through time in NumPy: forward passes and hand-written backward passes.

No torch here: this module is the derivation of docs/bptt.md written as code, one sequence at a
time, in the lab's notation. Every model maps a sequence x_1..x_T (T, I) and integer targets
y_1..y_T to the loss

    L = sum_t L_t,   L_t = -log softmax(o_t)[y_t],   o_t = V h_t + c

and ``backward`` returns dL/d(every parameter), plus dL/dh_0 (and dL/dC_0 for the LSTM).
The tests check each backward against central finite differences and against torch autograd
(torch.nn.RNN / LSTM / GRU with the same weights) in float64.

Shapes: x (T, I), hidden (H,), parameters U (H, I), W (H, H), V (O, H), b (H,), c (O,).
"""

from __future__ import annotations

import numpy as np

# phi and phi' written through the output h = phi(a) (what the backward pass has at hand).
PHI = {
    "tanh": (np.tanh, lambda h: 1.0 - h * h),  # tanh' <= 1
    "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda h: h * (1.0 - h)),  # sigmoid' <= 1/4
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(h.dtype)),  # relu' in {0, 1}
}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(o):
    e = np.exp(o - o.max())
    return e / e.sum()


def output_layer_backward(p: dict, hs: np.ndarray, probs: np.ndarray, ys) -> tuple[dict, np.ndarray]:
    """The part every model shares: o_t = V h_t + c, softmax, cross-entropy.

    dL_t/do_t = yhat_t - onehot(y_t)                                   (softmax + cross-entropy)
    dL/dV = sum_t (dL_t/do_t) h_t^T,   dL/dc = sum_t dL_t/do_t,   dL_t/dh_t = V^T dL_t/do_t
    Returns the gradients of V and c and dL_t/dh_t for every t (T, H), from the output at t alone.
    """
    d_o = probs.copy()  # (T, O)
    d_o[np.arange(len(ys)), ys] -= 1.0
    grads = {"V": d_o.T @ hs, "c": d_o.sum(axis=0)}
    return grads, d_o @ p["V"]


def init_params(kind: str, input_size: int, hidden: int, output: int, rng: np.random.Generator, scale: float = 0.5) -> dict:
    """Random parameters for ``kind`` in rnn | lstm | gru (float64)."""
    shapes = {"V": (output, hidden), "c": (output,)}
    gates = {"rnn": [""], "lstm": ["f", "i", "a", "o"], "gru": ["r", "z", "n"]}[kind]
    for g in gates:
        s = f"_{g}" if g else ""
        shapes.update({f"U{s}": (hidden, input_size), f"W{s}": (hidden, hidden), f"b{s}": (hidden,)})
        if kind == "gru":
            shapes[f"bh{s}"] = (hidden,)  # the GRU's recurrent bias sits inside r * (W h + bh), as in torch
    return {k: rng.uniform(-scale, scale, size=v) for k, v in shapes.items()}


# --------------------------------------------------------------------------------------------
# Vanilla RNN:  a_t = U x_t + W h_{t-1} + b,   h_t = phi(a_t)
# --------------------------------------------------------------------------------------------
def rnn_forward(p: dict, xs, ys, h0=None, phi: str = "tanh") -> tuple[float, dict]:
    f, _ = PHI[phi]
    T, H = len(xs), p["W"].shape[0]
    hs = np.zeros((T + 1, H))  # hs[0] = h_0, hs[t] = h_t
    hs[0] = np.zeros(H) if h0 is None else h0
    for t in range(1, T + 1):
        hs[t] = f(p["U"] @ xs[t - 1] + p["W"] @ hs[t - 1] + p["b"])
    probs = np.array([softmax(p["V"] @ h + p["c"]) for h in hs[1:]])
    loss = -np.log(probs[np.arange(T), ys]).sum()
    return loss, {"xs": xs, "ys": ys, "hs": hs, "probs": probs, "phi": phi}


def rnn_backward(p: dict, cache: dict) -> dict:
    """BPTT for the vanilla RNN.

    dL/dh_t = V^T dL_t/do_t + W^T delta_{t+1}        (h_t feeds o_t and a_{t+1})
    delta_t = dL/da_t = dL/dh_t * phi'(a_t)
    dL/dW = sum_t delta_t h_{t-1}^T,   dL/dU = sum_t delta_t x_t^T,   dL/db = sum_t delta_t
    Unrolled, dL/dW sums over every path back in time: the factor W^T diag(phi') appears once per
    step travelled, which is why gradients vanish or explode with distance.
    """
    xs, ys, hs = cache["xs"], cache["ys"], cache["hs"]
    _, dphi = PHI[cache["phi"]]
    grads, dh_out = output_layer_backward(p, hs[1:], cache["probs"], ys)
    grads.update({k: np.zeros_like(p[k]) for k in ("U", "W", "b")})
    dh_next = np.zeros(hs.shape[1])  # W^T delta_{t+1}: nothing after the last step
    for t in range(len(xs), 0, -1):
        dh = dh_out[t - 1] + dh_next  # dL/dh_t
        delta = dh * dphi(hs[t])  # dL/da_t
        grads["W"] += np.outer(delta, hs[t - 1])
        grads["U"] += np.outer(delta, xs[t - 1])
        grads["b"] += delta
        dh_next = p["W"].T @ delta  # dL/dh_{t-1} through a_t
    grads["h0"] = dh_next
    return grads


def rnn_grad_W_at_t3(p: dict, xs, ys, phi: str = "tanh") -> tuple[np.ndarray, list[str]]:
    """dL_3/dW for the loss at t = 3 alone, summed term by term as the lab writes it:

    dL_3/dW = sum_{k=1}^{3} dL_3/do_3 * do_3/dh_3 * (prod_{j=k+1}^{3} dh_j/dh_{j-1}) * d+h_k/dW
            with dh_j/dh_{j-1} = diag(phi'(a_j)) W  and  d+h_k/dW = diag(phi'(a_k)) (.) h_{k-1}^T

    (d+ is the immediate derivative, h_{k-1} held fixed). Returns the sum and the three terms in
    words; the tests check the sum against ``rnn_backward`` on L_3.
    """
    _, dphi = PHI[phi]
    _, cache = rnn_forward(p, xs[:3], ys[:3], phi=phi)
    hs, probs = cache["hs"], cache["probs"]
    d_o3 = probs[2].copy()
    d_o3[ys[2]] -= 1.0
    g = p["V"].T @ d_o3  # dL_3/dh_3
    total = np.zeros_like(p["W"])
    words = []
    for k in (3, 2, 1):
        delta_k = g * dphi(hs[k])  # dL_3/da_k
        total += np.outer(delta_k, hs[k - 1])
        chain = " ".join(f"(dh_{j}/dh_{j - 1})" for j in range(3, k, -1))
        words.append(f"k={k}: (dL3/do3)(do3/dh3){(' ' + chain) if chain else ''} (d+h_{k}/dW)")
        g = p["W"].T @ delta_k  # one more step back: times diag(phi'(a_k)) W, transposed
    return total, list(reversed(words))


# --------------------------------------------------------------------------------------------
# LSTM:  f, i, o = sigmoid(W_* h_{t-1} + U_* x_t + b_*),  a = tanh(W_a h_{t-1} + U_a x_t + b_a)
#        C_t = f * C_{t-1} + i * a,   h_t = o * tanh(C_t)
# --------------------------------------------------------------------------------------------
def lstm_forward(p: dict, xs, ys, h0=None, C0=None) -> tuple[float, dict]:
    T, H = len(xs), p["W_f"].shape[0]
    hs, Cs = np.zeros((T + 1, H)), np.zeros((T + 1, H))
    hs[0] = np.zeros(H) if h0 is None else h0
    Cs[0] = np.zeros(H) if C0 is None else C0
    gates = {g: np.zeros((T + 1, H)) for g in "fiao"}
    for t in range(1, T + 1):
        pre = {g: p[f"W_{g}"] @ hs[t - 1] + p[f"U_{g}"] @ xs[t - 1] + p[f"b_{g}"] for g in "fiao"}
        gates["f"][t], gates["i"][t], gates["o"][t] = sigmoid(pre["f"]), sigmoid(pre["i"]), sigmoid(pre["o"])
        gates["a"][t] = np.tanh(pre["a"])
        Cs[t] = gates["f"][t] * Cs[t - 1] + gates["i"][t] * gates["a"][t]
        hs[t] = gates["o"][t] * np.tanh(Cs[t])
    probs = np.array([softmax(p["V"] @ h + p["c"]) for h in hs[1:]])
    loss = -np.log(probs[np.arange(T), ys]).sum()
    return loss, {"xs": xs, "ys": ys, "hs": hs, "Cs": Cs, "gates": gates, "probs": probs}


def lstm_backward(p: dict, cache: dict) -> dict:
    """BPTT for the LSTM: two paths carry the gradient back, h and the cell C.

    dL/dh_t = V^T dL_t/do_t + sum_g W_g^T delta^g_{t+1}
    dL/dC_t = dL/dh_t * o_t * (1 - tanh^2 C_t) + dL/dC_{t+1} * f_{t+1}   (the cell path: dC_{t+1}/dC_t = f_{t+1})
    delta^o = dL/dh_t * tanh(C_t) * o(1-o),   delta^f = dL/dC_t * C_{t-1} * f(1-f)
    delta^i = dL/dC_t * a_t * i(1-i),         delta^a = dL/dC_t * i_t * (1 - a^2)
    dL/dW_g = sum_t delta^g_t h_{t-1}^T,  dL/dU_g = sum_t delta^g_t x_t^T,  dL/db_g = sum_t delta^g_t
    """
    xs, ys, hs, Cs, G = cache["xs"], cache["ys"], cache["hs"], cache["Cs"], cache["gates"]
    grads, dh_out = output_layer_backward(p, hs[1:], cache["probs"], ys)
    for g in "fiao":
        grads.update({f"{k}_{g}": np.zeros_like(p[f"{k}_{g}"]) for k in "WUb"})
    H = hs.shape[1]
    dh_next, dC_next = np.zeros(H), np.zeros(H)
    for t in range(len(xs), 0, -1):
        dh = dh_out[t - 1] + dh_next  # dL/dh_t
        tC = np.tanh(Cs[t])
        dC = dh * G["o"][t] * (1 - tC * tC) + dC_next  # dL/dC_t: through h_t and along the cell path
        delta = {
            "o": dh * tC * G["o"][t] * (1 - G["o"][t]),
            "f": dC * Cs[t - 1] * G["f"][t] * (1 - G["f"][t]),
            "i": dC * G["a"][t] * G["i"][t] * (1 - G["i"][t]),
            "a": dC * G["i"][t] * (1 - G["a"][t] ** 2),
        }
        dh_next = np.zeros(H)
        for g, d in delta.items():
            grads[f"W_{g}"] += np.outer(d, hs[t - 1])
            grads[f"U_{g}"] += np.outer(d, xs[t - 1])
            grads[f"b_{g}"] += d
            dh_next += p[f"W_{g}"].T @ d  # dL/dh_{t-1} through every gate
        dC_next = dC * G["f"][t]  # dL/dC_{t-1} = dL/dC_t * f_t
    grads["h0"], grads["C0"] = dh_next, dC_next
    return grads


# --------------------------------------------------------------------------------------------
# GRU (torch's form):  r, z = sigmoid(W_* h_{t-1} + bh_* + U_* x_t + b_*)
#        n = tanh(U_n x_t + b_n + r * (W_n h_{t-1} + bh_n)),   h_t = (1 - z) * n + z * h_{t-1}
# --------------------------------------------------------------------------------------------
def gru_forward(p: dict, xs, ys, h0=None) -> tuple[float, dict]:
    T, H = len(xs), p["W_r"].shape[0]
    hs = np.zeros((T + 1, H))
    hs[0] = np.zeros(H) if h0 is None else h0
    G = {g: np.zeros((T + 1, H)) for g in ("r", "z", "n", "hn")}
    for t in range(1, T + 1):
        h, x = hs[t - 1], xs[t - 1]
        G["r"][t] = sigmoid(p["W_r"] @ h + p["bh_r"] + p["U_r"] @ x + p["b_r"])
        G["z"][t] = sigmoid(p["W_z"] @ h + p["bh_z"] + p["U_z"] @ x + p["b_z"])
        G["hn"][t] = p["W_n"] @ h + p["bh_n"]
        G["n"][t] = np.tanh(p["U_n"] @ x + p["b_n"] + G["r"][t] * G["hn"][t])
        hs[t] = (1 - G["z"][t]) * G["n"][t] + G["z"][t] * h
    probs = np.array([softmax(p["V"] @ h + p["c"]) for h in hs[1:]])
    loss = -np.log(probs[np.arange(T), ys]).sum()
    return loss, {"xs": xs, "ys": ys, "hs": hs, "gates": G, "probs": probs}


def gru_backward(p: dict, cache: dict) -> dict:
    """BPTT for the GRU.

    dL/dh_t = V^T dL_t/do_t + (what h_t contributes to step t+1, below)
    delta^n = dL/dh_t * (1 - z) * (1 - n^2)
    delta^z = dL/dh_t * (h_{t-1} - n) * z(1-z)
    delta^r = delta^n * (W_n h_{t-1} + bh_n) * r(1-r)
    dL/dh_{t-1} = dL/dh_t * z + W_r^T delta^r + W_z^T delta^z + W_n^T (delta^n * r)
    (the direct term dL/dh_t * z is the GRU's additive path, like the LSTM's cell)
    """
    xs, ys, hs, G = cache["xs"], cache["ys"], cache["hs"], cache["gates"]
    grads, dh_out = output_layer_backward(p, hs[1:], cache["probs"], ys)
    for g in "rzn":
        grads.update({f"{k}_{g}": np.zeros_like(p[f"{k}_{g}"]) for k in ("W", "U", "b", "bh")})
    dh_next = np.zeros(hs.shape[1])
    for t in range(len(xs), 0, -1):
        dh = dh_out[t - 1] + dh_next
        r, z, n, hn = G["r"][t], G["z"][t], G["n"][t], G["hn"][t]
        d_n = dh * (1 - z) * (1 - n * n)
        d_z = dh * (hs[t - 1] - n) * z * (1 - z)
        d_r = d_n * hn * r * (1 - r)
        d_hn = d_n * r  # gradient of W_n h_{t-1} + bh_n
        for g, d_x, d_h in (("r", d_r, d_r), ("z", d_z, d_z), ("n", d_n, d_hn)):
            grads[f"U_{g}"] += np.outer(d_x, xs[t - 1])
            grads[f"b_{g}"] += d_x
            grads[f"W_{g}"] += np.outer(d_h, hs[t - 1])
            grads[f"bh_{g}"] += d_h
        dh_next = dh * z + p["W_r"].T @ d_r + p["W_z"].T @ d_z + p["W_n"].T @ d_hn
    grads["h0"] = dh_next
    return grads


MODELS = {"rnn": (rnn_forward, rnn_backward), "lstm": (lstm_forward, lstm_backward), "gru": (gru_forward, gru_backward)}


def numerical_gradient(loss_fn, p: dict, name: str, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of loss_fn(p) with respect to p[name]."""
    grad = np.zeros_like(p[name])
    it = np.nditer(p[name], flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = p[name][i]
        p[name][i] = old + eps
        up = loss_fn(p)
        p[name][i] = old - eps
        down = loss_fn(p)
        p[name][i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12))
