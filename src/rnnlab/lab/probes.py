"""What a part's check feeds the student's code, and what it reads back: the inputs (drawn from a seed,
in the trusted parent) and the probe (run on the student's module in the sandboxed child, and on the
key and the mistakes in the parent). No expected answer is here: the parent computes those itself.
Torch and NumPy only in the child (it never imports rnnlab's models); the parent draws the reviews of
the preprocessing part from the bundled data and cuts them with jieba itself."""

from __future__ import annotations

import numpy as np
import torch

CELL_GATES = {"rnn_cell": 1, "lstm_cell": 4, "gru_cell": 3}
NONLINEARITIES = ("tanh", "sigmoid", "relu")


def _sizes(rng: np.random.Generator, hidden: bool) -> dict:
    big = 3 if hidden else 0  # the hidden checks: other and larger sizes
    return {"B": int(rng.integers(2, 5 + big)), "I": int(rng.integers(2, 7 + big)), "H": int(rng.integers(2, 7 + big)),
            "T": int(rng.integers(3, 6 + big)), "O": int(rng.integers(2, 6 + big))}


def inputs(part: str, seed: int, hidden: bool = False) -> dict[str, np.ndarray]:
    """The arrays one check of ``part`` feeds the student's code (float64; sizes drawn too)."""
    rng = np.random.default_rng(seed)
    s = _sizes(rng, hidden)
    B, I, H, T, O = s["B"], s["I"], s["H"], s["T"], s["O"]
    u = lambda *shape: rng.uniform(-0.8, 0.8, size=shape)  # noqa: E731
    if part in CELL_GATES:
        G = CELL_GATES[part] * H
        return {"x": u(T, B, I), "h0": u(B, H), "c0": u(B, H), "w_ih": u(G, I), "w_hh": u(G, H), "b_ih": u(G),
                "b_hh": u(G), "gy": u(T, B, H)}
    if part == "tutorial_rnn":
        return {"x": u(B, I), "hidden": u(B, H), "i2h.weight": u(H, I + H), "i2h.bias": u(H),
                "i2o.weight": u(O, I + H), "i2o.bias": u(O), "gy": u(B, O), "gh": u(B, H)}
    if part in ("bptt_rnn", "bptt_lstm"):
        gates = [""] if part == "bptt_rnn" else ["_f", "_i", "_a", "_o"]
        out = {"xs": u(T, I), "ys": rng.integers(0, O, size=T), "h0": u(H), "C0": u(H), "p.V": u(O, H), "p.c": u(O)}
        for g in gates:
            out.update({f"p.U{g}": u(H, I), f"p.W{g}": u(H, H), f"p.b{g}": u(H)})
        return out
    if part == "preprocessing":
        return _reviews(rng, 10 if hidden else 6)
    if part == "sampling":
        V = int(rng.integers(6, 10))
        logits = rng.normal(0, 1.5, size=(3, V)).astype(np.float32)
        allowed = rng.random((3, V)) < 0.75
        allowed[:, 0] = True  # every row allows something
        return {"logits": logits, "allowed": allowed, "seed": np.array([int(rng.integers(0, 2**31))])}
    raise KeyError(part)


# The settings each sampling check draws with: (temperature, top_k, top_p); 2,000 draws of each row.
DRAW_SETTINGS = ((1.0, 0, 1.0), (0.5, 0, 1.0), (2.0, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.7))
DRAWS = 2000


def probe(part: str, mod, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the part's functions of ``mod`` on ``x`` -> named arrays (outputs and gradients)."""
    if part in CELL_GATES:
        return _probe_cell(part, mod, x)
    if part == "tutorial_rnn":
        return _probe_tutorial(mod, x)
    if part in ("bptt_rnn", "bptt_lstm"):
        return _probe_bptt(part, mod, x)
    if part == "sampling":
        return _probe_sampling(mod, x)
    if part == "preprocessing":
        return _probe_preprocessing(mod, x)
    raise KeyError(part)


def _tensors(x: dict, names) -> dict[str, torch.Tensor]:
    return {n: torch.tensor(x[n], dtype=torch.float64, requires_grad=True) for n in names}


def _probe_cell(part: str, mod, x: dict) -> dict[str, np.ndarray]:
    out = {}
    for nl in NONLINEARITIES if part == "rnn_cell" else ("",):
        t = _tensors(x, ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"))
        h, c, hs, cs = t["h0"], t["c0"], [], []
        for step in t["x"]:  # (B, I) each
            if part == "lstm_cell":
                h, c = mod.lstm_cell(step, h, c, t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"])
                cs.append(c)
            elif part == "gru_cell":
                h = mod.gru_cell(step, h, t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"])
            else:
                h = mod.rnn_cell(step, h, t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"], nl)
            hs.append(h)
        hs = torch.stack(hs)  # (T, B, H)
        key = f"{nl}." if nl else ""
        out[key + "h"] = hs.detach().numpy()
        if cs:
            out[key + "c"] = torch.stack(cs).detach().numpy()
        (hs * torch.tensor(x["gy"])).sum().backward()
        for name in ("w_ih", "w_hh", "b_ih", "b_hh", "x", "h0"):
            grad = t[name].grad
            out[f"{key}grad {name}"] = np.zeros(t[name].shape) if grad is None else grad.numpy()
    return out


def _probe_tutorial(mod, x: dict) -> dict[str, np.ndarray]:
    I, H, O = x["x"].shape[1], x["hidden"].shape[1], x["i2o.bias"].shape[0]
    net = mod.TutorialRNN(I, H, O).double()
    names = ("i2h.weight", "i2h.bias", "i2o.weight", "i2o.bias")
    net.load_state_dict({n: torch.tensor(x[n]) for n in names}, strict=False)
    logp, hidden = net(torch.tensor(x["x"]), torch.tensor(x["hidden"]))
    ((logp * torch.tensor(x["gy"])).sum() + (hidden * torch.tensor(x["gh"])).sum()).backward()
    params = dict(net.named_parameters())
    out = {"log-probabilities": logp.detach().numpy(), "hidden": hidden.detach().numpy()}
    for n in names:
        out[f"grad {n}"] = params[n].grad.numpy() if n in params and params[n].grad is not None else np.zeros(x[n].shape)
    return out


def _probe_bptt(part: str, mod, x: dict) -> dict[str, np.ndarray]:
    p = {k[2:]: x[k] for k in x if k.startswith("p.")}
    out = {}
    if part == "bptt_rnn":
        runs = [(f"{phi}.", lambda phi=phi: mod.rnn_forward(p, x["xs"], x["ys"], x["h0"], phi), mod.rnn_backward)
                for phi in ("tanh", "sigmoid")]
    else:
        runs = [("", lambda: mod.lstm_forward(p, x["xs"], x["ys"], x["h0"], x["C0"]), mod.lstm_backward)]
    for key, forward, backward in runs:
        loss, cache = forward()
        grads = backward(p, cache)
        out[key + "loss"] = np.array([float(loss)])
        for name in list(p) + ["h0"] + (["C0"] if part == "bptt_lstm" else []):
            out[f"{key}grad {name}"] = np.asarray(grads[name], dtype=np.float64)
    return out


def _probe_sampling(mod, x: dict) -> dict[str, np.ndarray]:
    logits = torch.tensor(x["logits"]).repeat_interleave(DRAWS, dim=0)  # (3 * DRAWS, V)
    allowed = torch.tensor(x["allowed"]).repeat_interleave(DRAWS, dim=0)
    out = {}
    for i, (temperature, top_k, top_p) in enumerate(DRAW_SETTINGS):
        gen = torch.Generator().manual_seed(int(x["seed"][0]) + i)
        ids = mod.draw(logits, allowed, temperature, top_k, top_p, gen)
        counts = np.zeros(x["logits"].shape)
        ids = np.asarray(ids, dtype=np.int64).reshape(3, DRAWS)
        for row in range(3):
            counts[row] = np.bincount(ids[row], minlength=counts.shape[1])[: counts.shape[1]]
        out[f"draws T={temperature} top_k={top_k} top_p={top_p}"] = counts / DRAWS  # frequencies (3, V)
    return out


def train_names(part: str, mod, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A short names -> language training with the student's cell (one-hot letters, the cell over time,
    a linear head, Adam) -> the test items' logits; the parent, which alone holds the test labels,
    scores them."""
    torch.manual_seed(int(d["seed"][0]))
    V, C, H = int(d["sizes"][0]), int(d["sizes"][1]), int(d["sizes"][2])
    gates = CELL_GATES[part]
    bound = 1 / np.sqrt(H)
    w = lambda *s: torch.nn.Parameter(torch.empty(*s).uniform_(-bound, bound))  # noqa: E731
    params = {"w_ih": w(gates * H, V), "w_hh": w(gates * H, H), "b_ih": w(gates * H), "b_hh": w(gates * H),
              "head": w(C, H), "head_b": w(C)}
    opt = torch.optim.Adam(params.values(), lr=0.02)

    def logits(ids: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        x = torch.nn.functional.one_hot(torch.tensor(ids), V).float()  # (N, T, V)
        h = c = torch.zeros(len(ids), H)
        for t in range(ids.shape[1]):
            if part == "lstm_cell":
                h_new, c_new = mod.lstm_cell(x[:, t], h, c, params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"])
            elif part == "gru_cell":
                h_new = c_new = mod.gru_cell(x[:, t], h, params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"])
            else:
                h_new = c_new = mod.rnn_cell(x[:, t], h, params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"])
            live = torch.tensor(t < lengths)[:, None]  # steps past a name's end change nothing
            h, c = torch.where(live, h_new, h), torch.where(live, c_new, c)
        return h @ params["head"].T + params["head_b"]

    ids, lengths, labels = d["ids"], d["lengths"], torch.tensor(d["labels"])
    for epoch in range(int(d["sizes"][3])):
        order = np.random.default_rng(epoch).permutation(len(ids))
        for s in range(0, len(ids), 64):
            rows = order[s : s + 64]
            loss = torch.nn.functional.cross_entropy(logits(ids[rows], lengths[rows]), labels[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return {"test logits": logits(d["test_ids"], d["test_lengths"]).numpy()}


def write_poem(mod, d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A 5x4 poem from the bundled poems model, every character drawn by the student's ``draw`` inside
    rnnlab's regulated decoder (its masks say what the form allows) -> the poem as code points."""
    from rnnlab import load_run, sampling

    sampling.draw = mod.draw  # the student's sampler, under the decoder's rules (sampling.draw_each calls it)
    poems = load_run("poems").generate(form="5x4", seed=int(d["seed"][0]), n=2)
    return {"poem": np.array([ord(c) for c in "\n".join(poems)], dtype=np.int64)}


# --- preprocessing: text in, text out ---------------------------------------------------------------
# A review with every case the part must handle, beside the drawn ones: whitespace, a negation, degree
# and contrast words, ordinary stop words.
SHOWCASE = "房间 不太干净，隔音也不好，  但是服务很热情，早餐还可以。"
TOKEN, REVIEW = "\x1f", "\x1e"  # between the tokens of a review, between reviews (in ``tokens``)


def _reviews(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` bundled hotel reviews drawn by the seed (and the showcase), cut by jieba here in the parent:
    their words, how many per review, the general stop-word list and the words to keep."""
    import csv
    import logging

    import jieba
    import stopwordsiso

    from ..files import default_data_dir
    from ..reviews import KEEP_WORDS

    with open(default_data_dir() / "sentiment" / "ChnSentiCorp_htl_all.csv", encoding="utf-8-sig", newline="") as f:
        texts = [r["review"].strip() for r in csv.DictReader(f) if 8 <= len(r["review"].strip()) <= 200]
    picked = [texts[int(i)] for i in rng.choice(len(texts), size=n, replace=False)] + [SHOWCASE]
    jieba.setLogLevel(logging.WARNING)
    cut = [jieba.lcut(t) for t in picked]
    return {"words": np.array([w for ws in cut for w in ws]), "counts": np.array([len(ws) for ws in cut]),
            "stopwords": np.array(sorted(stopwordsiso.stopwords("zh"))), "keep": np.array(sorted(KEEP_WORDS))}


def _probe_preprocessing(mod, x: dict) -> dict[str, np.ndarray]:
    words, out, start = [str(w) for w in x["words"]], [], 0
    stopwords, keep = frozenset(str(w) for w in x["stopwords"]), frozenset(str(w) for w in x["keep"])
    for n in x["counts"]:
        tokens = mod.review_tokens(words[start : start + int(n)], stopwords, keep)
        out.append(TOKEN.join(str(t) for t in tokens))
        start += int(n)
    return {"tokens": np.array([ord(c) for c in REVIEW.join(out)], dtype=np.float64)}


def tokens_of(codes: np.ndarray) -> list[list[str]]:
    """The reviews' token lists from a probe's ``tokens``."""
    text = "".join(chr(int(c)) for c in codes)
    return [r.split(TOKEN) if r else [] for r in text.split(REVIEW)]
