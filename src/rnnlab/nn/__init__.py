"""Recurrent cells and layers written from their equations, interchangeable with torch.nn's.

Cell  (one step, autograd):           RNNCell, LSTMCell, GRUCell, TutorialRNN
Layer (one direction, hand BPTT):     RNNRecurrence, LSTMRecurrence, LSTMPRecurrence, GRURecurrence
Stack (torch.nn.RNN/LSTM/GRU API):    RNN, LSTM, GRU
A step's gates and states:            lstm_gates, gru_gates; step_through (a layer over time, traced)
Facts without torch (``spec``):       NONLINEARITIES, RECURRENT_CELLS, GATES

The submodules are imported on first use (PEP 562 ``__getattr__``), so ``import rnnlab.nn.spec``
does not import torch: the command line reads its choices from there and ``--help`` stays instant.
``import rnnlab.nn as rn; rn.LSTM`` and ``from rnnlab.nn import LSTM`` work as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> submodule that defines it
_EXPORTS = {
    "RecurrentStack": "base", "reverse_padded": "base",
    "RNN": "rnn", "RNNCell": "rnn", "RNNRecurrence": "rnn", "rnn_cell": "rnn", "rnn_step": "rnn",
    "LSTM": "lstm", "LSTMCell": "lstm", "LSTMRecurrence": "lstm", "LSTMPRecurrence": "lstm",
    "lstm_cell": "lstm", "lstm_step": "lstm", "lstm_gates": "lstm",
    "GRU": "gru", "GRUCell": "gru", "GRURecurrence": "gru", "gru_cell": "gru", "gru_step": "gru", "gru_gates": "gru",
    "step_through": "trace", "GATE_NAMES": "trace",
    "TutorialRNN": "tutorial",
    "NONLINEARITIES": "spec", "RECURRENT_CELLS": "spec", "GATES": "spec",
}

__all__ = [
    "RecurrentStack", "reverse_padded",
    "RNN", "RNNCell", "RNNRecurrence", "rnn_cell", "rnn_step", "NONLINEARITIES",
    "LSTM", "LSTMCell", "LSTMRecurrence", "LSTMPRecurrence", "lstm_cell", "lstm_step", "lstm_gates",
    "GRU", "GRUCell", "GRURecurrence", "gru_cell", "gru_step", "gru_gates", "step_through", "GATE_NAMES",
    "TutorialRNN", "RECURRENT_CELLS", "GATES",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs only; at run time the names come from __getattr__
    from .base import RecurrentStack, reverse_padded
    from .gru import GRU, GRUCell, GRURecurrence, gru_cell, gru_gates, gru_step
    from .lstm import LSTM, LSTMCell, LSTMPRecurrence, LSTMRecurrence, lstm_cell, lstm_gates, lstm_step
    from .trace import GATE_NAMES, step_through
    from .rnn import RNN, RNNCell, RNNRecurrence, rnn_cell, rnn_step
    from .spec import GATES, NONLINEARITIES, RECURRENT_CELLS
    from .tutorial import TutorialRNN
