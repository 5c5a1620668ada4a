"""A recurrent layer stepped through time, keeping what each step computes: the gates and states of
``lstm_gates`` / ``gru_gates`` / ``rnn_step`` (the cells' own equations, not a copy of them).

    trace = step_through("lstm", layer, x)     # x (T, I): one sequence through layer 0, forward
    trace["f"]                                  # (T, H): the forget gate at every step
    trace["c"], trace["h"]                      # (T, H): the cell state and the hidden state

``layer`` is any module with torch's parameter names (``weight_ih_l0`` ...): rnnlab.nn's RNN, LSTM and
GRU and torch.nn's alike, or the tutorial network (``i2h``). Keys: LSTM i, f, g, o, c, h; GRU r, z, n,
h; RNN and the tutorial h.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gru import gru_gates
from .lstm import lstm_gates
from .rnn import rnn_step

GATE_NAMES = {"lstm": {"i": "input", "f": "forget", "g": "candidate", "o": "output", "c": "cell", "h": "hidden"},
              "gru": {"r": "reset", "z": "update", "n": "candidate", "h": "hidden"},
              "rnn": {"h": "hidden"}, "tutorial": {"h": "hidden"}}


@torch.no_grad()
def step_through(cell: str, layer, x: Tensor, nonlinearity: str = "tanh", layer_index: int = 0,
                 functions=None) -> dict[str, Tensor]:
    """Run one layer of ``layer`` over ``x`` (T, I) step by step from zero state (forward direction)
    and stack what each step computed: name -> (T, H). ``functions``: a module whose ``lstm_gates`` /
    ``gru_gates`` / ``rnn_step`` are used instead of rnnlab's (a student's cell: ``rnnlab serve --lab``)."""
    gates_lstm = getattr(functions, "lstm_gates", lstm_gates)
    gates_gru = getattr(functions, "gru_gates", gru_gates)
    step_rnn = getattr(functions, "rnn_step", rnn_step)
    if cell == "tutorial":  # h_t = i2h([x_t, h_{t-1}]): no gates
        h, hs = x.new_zeros(1, layer.hidden_size), []
        for x_t in x:
            h = layer.i2h(torch.cat([x_t[None], h], dim=1))
            hs.append(h[0])
        return {"h": torch.stack(hs)}
    k = layer_index
    w_ih, w_hh = getattr(layer, f"weight_ih_l{k}").float(), getattr(layer, f"weight_hh_l{k}").float()
    b_ih, b_hh = (getattr(layer, f"bias_{n}_l{k}", None) for n in ("ih", "hh"))
    b_hh = b_hh.float() if b_hh is not None else None
    xg = x.float() @ w_ih.t() + (b_ih.float() if b_ih is not None else 0)  # (T, G*H): every step's input part
    h = x.new_zeros(1, w_hh.size(1), dtype=torch.float32)
    c = x.new_zeros(1, w_hh.size(1), dtype=torch.float32)
    steps: dict[str, list] = {}
    for t in range(x.size(0)):
        if cell == "lstm":
            s = gates_lstm(xg[t : t + 1], h, c, w_hh, b_hh)
            c = s["c"]
        elif cell == "gru":
            s = gates_gru(xg[t : t + 1], h, w_hh, b_hh)
        else:
            s = {"h": step_rnn(xg[t : t + 1], h, w_hh, b_hh, nonlinearity)}
        h = s["h"]
        for name, v in s.items():
            steps.setdefault(name, []).append(v[0])
    return {name: torch.stack(v) for name, v in steps.items()}


def named(cell: str, steps: dict[str, Tensor], digits: int = 4) -> dict:
    """A ``step_through`` trace under the names the page and the API use, as lists rounded to
    ``digits``: ``gates`` (name -> (T, H), the gates proper, 0..1), ``candidate`` (the LSTM's g_t,
    the GRU's n_t), ``hidden`` (h_t) and the LSTM's ``cell_state`` (c_t)."""
    rows = lambda t: [[round(float(v), digits) for v in row] for row in t]  # noqa: E731
    names = GATE_NAMES[cell]
    return {"gates": {names[k]: rows(v) for k, v in steps.items() if k in "ifozr"}, "hidden": rows(steps["h"]),
            **({"cell_state": rows(steps["c"])} if "c" in steps else {}),
            **{"candidate": rows(steps[k]) for k in "gn" if k in steps}}
