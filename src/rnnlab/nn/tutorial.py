"""The classic PyTorch-tutorial RNN ("Classifying Names with a Character-Level RNN").

Two Linear layers read the concatenation of the input and the previous hidden state::

    combined = concat(x_t, h_{t-1})
    h_t      = i2h(combined)                     (no nonlinearity, as in the tutorial)
    y_t      = LogSoftmax(i2o(combined))

The tutorial feeds one letter at a time and reads the prediction after the last letter.
``forward`` is that one step; ``forward_sequence`` runs a padded batch with lengths, so the same
network also trains batched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TutorialRNN(nn.Module):
    __doc__ = __doc__

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def init_hidden(self, batch: int = 1, device=None) -> Tensor:
        return torch.zeros(batch, self.hidden_size, device=device)

    def forward(self, input: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """One step: input (B, I), hidden (B, H) -> (log-probabilities (B, O), new hidden (B, H))."""
        combined = torch.cat((input, hidden), dim=1)
        return self.softmax(self.i2o(combined)), self.i2h(combined)

    def forward_sequence(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (T, B, I) -> log-probabilities after each sequence's last real step (B, O)."""
        steps, batch, _ = x.shape
        hidden = self.init_hidden(batch, x.device).to(x.dtype)
        last = torch.full((batch,), steps, device=x.device) if lengths is None else lengths.to(x.device)
        result = x.new_zeros(batch, self.output_size)
        for t in range(steps):
            output, hidden = self(x[t], hidden)
            done = (last == t + 1).unsqueeze(1)  # sequences whose last letter is step t
            result = torch.where(done, output, result)
        return result
