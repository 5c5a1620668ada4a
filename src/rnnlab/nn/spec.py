"""Facts about the recurrent cells that need no torch: the names the command line offers and the
gate layout of the fused weight matrices.

This module must not import torch (directly or through ``rnnlab.nn``'s package ``__init__``), so
that ``rnnlab --help`` and option parsing stay instant; ``rnnlab.options`` takes its choices from
here. ``tests/test_torch_port.py`` checks that ``import rnnlab.nn.spec`` leaves torch unloaded.
"""

# phi of the vanilla RNN, h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). torch.nn has tanh and
# relu; sigmoid is the lab's third, kept to show its vanishing gradient (sigmoid' <= 1/4).
NONLINEARITIES = ("tanh", "relu", "sigmoid")

# The recurrent cell families, as the command line names them.
RECURRENT_CELLS = ("rnn", "lstm", "gru")

# How many hidden-size blocks the fused weight_ih / weight_hh matrices stack, in torch's order:
# RNN one; LSTM i, f, g, o; GRU r, z, n.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# How many state tensors a layer carries: h, or (h, c) for the LSTM.
STATE_TENSORS = {"rnn": 1, "lstm": 2, "gru": 1}
