"""Recurrent cells and layers written from their equations, interchangeable with torch.nn's.

Cell  (one step, autograd):           RNNCell, LSTMCell, GRUCell, TutorialRNN
Layer (one direction, hand BPTT):     RNNRecurrence, LSTMRecurrence, GRURecurrence
Stack (torch.nn.RNN/LSTM/GRU API):    RNN, LSTM, GRU
"""

from .base import RecurrentStack, reverse_padded
from .gru import GRU, GRUCell, GRURecurrence, gru_cell
from .lstm import LSTM, LSTMCell, LSTMRecurrence, lstm_cell
from .rnn import NONLINEARITIES, RNN, RNNCell, RNNRecurrence, rnn_cell
from .tutorial import TutorialRNN

__all__ = [
    "RecurrentStack", "reverse_padded",
    "RNN", "RNNCell", "RNNRecurrence", "rnn_cell", "NONLINEARITIES",
    "LSTM", "LSTMCell", "LSTMRecurrence", "lstm_cell",
    "GRU", "GRUCell", "GRURecurrence", "gru_cell",
    "TutorialRNN",
]
