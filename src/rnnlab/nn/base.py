"""Layer -> Stack: the ``torch.nn.RNN/LSTM/GRU`` interface over hand-written recurrences.

A *family* (RNN, LSTM, GRU) supplies two things:

* ``gates``      how many hidden-size blocks its fused weight matrices hold (1, 4 or 3);
* ``recurrence`` a function ``(xg, state0, w_hh, b_hh, mask) -> (out, state_T)`` that runs one
  direction of one layer over a whole sequence, given the input projection of every step.

Everything else -- parameter names and initialisation, ``batch_first``, initial states,
``PackedSequence`` / ``lengths``, bidirectional layers, dropout between layers -- is the same for
all families and lives here, so that ``rnnlab.nn.LSTM(...).load_state_dict(torch.nn.LSTM(...)
.state_dict())`` works and the forward signature and return values match torch's.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

State = tuple[Tensor, ...]
Recurrence = Callable[[Tensor, State, Tensor, "Tensor | None", "Tensor | None"], tuple[Tensor, State]]


def length_mask(lengths: Tensor, steps: int, dtype: torch.dtype) -> Tensor | None:
    """(T, B, 1) mask, 1 where step t < length of sequence b; None when no step is padding."""
    if bool((lengths == steps).all()):
        return None
    t = torch.arange(steps, device=lengths.device)[:, None]
    return (t < lengths[None, :]).to(dtype).unsqueeze(-1)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of a (T, B, F) batch within its own length; padding stays at the end."""
    if lengths is None:
        return x.flip(0)
    t = torch.arange(x.size(0), device=x.device)[:, None]  # (T, 1)
    n = lengths[None, :]  # (1, B)
    index = torch.where(t < n, n - 1 - t, t)  # (T, B)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def recurrent_weight_grads(d_pre: Tensor, h_prev: Tensor, has_bias: bool) -> tuple[Tensor, Tensor | None]:
    """dL/dW_hh and dL/db_hh summed over all steps: one (G*H x T*B) @ (T*B x H) matmul instead of T
    small ones. d_pre (T, B, G*H): gradients of the recurrent pre-activations; h_prev (T, B, H)."""
    gh, h = d_pre.size(-1), h_prev.size(-1)
    d_w = d_pre.reshape(-1, gh).t() @ h_prev.reshape(-1, h)
    return d_w, (d_pre.sum(dim=(0, 1)) if has_bias else None)


class RecurrentStack(nn.Module):
    """A multi-layer, optionally bidirectional recurrent net with torch.nn's interface.

    Parameters are registered flat, with torch's names (``weight_ih_l0``,
    ``weight_hh_l1_reverse``, ...) and fused gate layout, so state dicts move both ways.
    Subclasses set ``gates``, ``state_size`` (1 for h, 2 for (h, c)) and ``recurrence``.
    """

    gates: int = 1
    state_size: int = 1
    # RNN and LSTM add b_hh to the same pre-activation as b_ih, so it can join the input
    # projection's bias (free inside one addmm; autograd gives both biases their gradient).
    # The GRU cannot: r_t multiplies (W_hn h + b_hn), so its recurrence takes b_hh itself.
    fold_recurrent_bias: bool = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(
                f"input_size, hidden_size and num_layers must be positive, got "
                f"{input_size}, {hidden_size}, {num_layers}"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * directions
            for suffix in self._suffixes():
                name = f"l{layer}{suffix}"
                gh = self.gates * hidden_size
                self.register_parameter(f"weight_ih_{name}", nn.Parameter(torch.empty(gh, layer_in, **factory)))
                self.register_parameter(f"weight_hh_{name}", nn.Parameter(torch.empty(gh, hidden_size, **factory)))
                if bias:
                    self.register_parameter(f"bias_ih_{name}", nn.Parameter(torch.empty(gh, **factory)))
                    self.register_parameter(f"bias_hh_{name}", nn.Parameter(torch.empty(gh, **factory)))
        self.reset_parameters()

    # --- the one thing a family must provide -----------------------------------------------
    def recurrence(self, xg: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None, mask: Tensor | None):
        raise NotImplementedError

    # --- parameters --------------------------------------------------------------------------
    def _suffixes(self) -> Sequence[str]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        # torch.nn.RNNBase's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, suffix: str) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        name = f"l{layer}{suffix}"
        get = lambda kind: getattr(self, f"{kind}_{name}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    # --- forward -----------------------------------------------------------------------------
    def _initial_state(self, hx, batch: int, ref: Tensor, unbatched: bool) -> State:
        rows = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            zeros = ref.new_zeros(rows, batch, self.hidden_size)
            return (zeros,) * self.state_size
        states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(states) != self.state_size:
            raise ValueError(f"{type(self).__name__} expects {self.state_size} initial state tensor(s), got {len(states)}")
        if unbatched:
            states = tuple(s.unsqueeze(1) for s in states)
        for s in states:
            if tuple(s.shape) != (rows, batch, self.hidden_size):
                raise ValueError(
                    f"initial state has shape {tuple(s.shape)}, expected {(rows, batch, self.hidden_size)}"
                )
        return states

    def forward(self, input, hx=None, lengths=None):
        """Same call and return values as torch.nn.RNN/LSTM/GRU.

        ``input`` is (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a
        ``PackedSequence``. ``lengths`` (B,) is an alternative to packing: steps at or past a
        sequence's length do not change its state, and their outputs are zero.
        Returns ``(output, h_n)`` or, for the LSTM, ``(output, (h_n, c_n))``.
        """
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the caller's order
        else:
            x = input
            unbatched = x.dim() == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
            if x.dim() != 3 or x.size(-1) != self.input_size:
                raise ValueError(f"expected input (T, B, {self.input_size}), got {tuple(input.shape)}")
        steps, batch, _ = x.shape
        mask = ragged = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            if lengths.shape != (batch,) or int(lengths.min()) < 1 or int(lengths.max()) > steps:
                raise ValueError(f"lengths must be {batch} values in [1, {steps}], got {lengths.tolist()}")
            mask = length_mask(lengths, steps, x.dtype)  # None when every sequence is full length
            ragged = lengths if mask is not None else None
        state0 = self._initial_state(hx, batch, x, unbatched)

        finals: list[list[Tensor]] = [[] for _ in range(self.state_size)]
        layer_input = x
        row = 0
        for layer in range(self.num_layers):
            outputs = []
            for suffix in self._suffixes():
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, suffix)
                reverse = suffix == "_reverse"
                seq = reverse_padded(layer_input, ragged) if reverse else layer_input
                if self.fold_recurrent_bias and b_hh is not None:
                    b_ih, b_hh = b_ih + b_hh, None
                # The input projection of every step in one matmul; only h @ W_hh is sequential.
                xg = F.linear(seq, w_ih, b_ih)  # (T, B, G*H)
                out, state = self.recurrence(xg, tuple(s[row] for s in state0), w_hh, b_hh, mask)
                outputs.append(reverse_padded(out, ragged) if reverse else out)
                for k, s in enumerate(state):
                    finals[k].append(s)
                row += 1
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)

        output = layer_input
        h_n = tuple(torch.stack(f, dim=0) for f in finals)  # each (L*D, B, H)
        if packed:
            order = input.sorted_indices
            if order is not None:
                output, lengths = output.index_select(1, order), lengths.index_select(0, order)
            data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
            output = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        elif unbatched:
            output, h_n = output.squeeze(1), tuple(h.squeeze(1) for h in h_n)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n[0] if self.state_size == 1 else h_n)


class CellBase(nn.Module):
    """One time step, with torch.nn.*Cell's parameter names: weight_ih, weight_hh, bias_ih, bias_hh."""

    gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        gh = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gh, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.hidden_size)
