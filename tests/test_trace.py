"""rnnlab.nn.step_through: a layer stepped through time with the cells' own equations (lstm_gates,
gru_gates, rnn_step) gives the layer's own outputs, for rnnlab's layers and torch's alike."""

import pytest
import torch

import rnnlab.nn as rn
from rnnlab.nn import step_through


@pytest.mark.parametrize("cell,nonlinearity", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu"),
                                                ("rnn", "sigmoid")])
def test_the_trace_is_the_layer_s_own_computation(cell, nonlinearity):
    torch.manual_seed(0)
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    ours = {"lstm": rn.LSTM, "gru": rn.GRU, "rnn": rn.RNN}[cell](5, 7, **kwargs)
    x = torch.randn(9, 5)  # (T, I)
    layers = [ours]
    if nonlinearity != "sigmoid":  # torch has no sigmoid RNN
        theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](5, 7, **kwargs)
        theirs.load_state_dict(ours.state_dict())
        layers.append(theirs)
    for layer in layers:
        out, state = layer(x[:, None])  # (T, 1, H)
        trace = step_through(cell, layer, x, nonlinearity)
        torch.testing.assert_close(trace["h"], out[:, 0].detach(), rtol=1e-5, atol=1e-6)
        if cell == "lstm":
            torch.testing.assert_close(trace["c"][-1], state[1][0, 0].detach(), rtol=1e-5, atol=1e-6)
            gate = trace["f"]
            assert set(trace) == {"i", "f", "g", "o", "c", "h"} and ((gate > 0) & (gate < 1)).all()
        if cell == "gru":
            assert set(trace) == {"r", "z", "n", "h"}
