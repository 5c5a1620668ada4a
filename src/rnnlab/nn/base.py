"""Layer -> Stack: the ``torch.nn.RNN/LSTM/GRU`` interface over hand-written recurrences.

A *family* (RNN, LSTM, GRU) supplies two things:

* ``gates``      how many hidden-size blocks its fused weight matrices hold (1, 4 or 3);
* ``recurrence`` a function ``(xg, state0, w_hh, b_hh, mask, w_hr) -> (out, state_T)`` that runs
  one direction of one layer over a whole sequence, given the input projection of every step.

Everything else -- parameter names and initialisation, torch's argument and shape checks,
``batch_first``, initial states, ``PackedSequence`` / ``lengths``, bidirectional layers, dropout
between layers -- is the same for all families and lives here, so that
``rnnlab.nn.LSTM(...).load_state_dict(torch.nn.LSTM(...).state_dict())`` works and the forward
signature, return values and errors match torch's (``torch/nn/modules/rnn.py``: ``RNNBase``,
``RNNCellBase``; the cell checks of ATen's ``RNN.cpp``).

Double backward. The recurrences' backward passes are written by hand for speed and are not
themselves differentiable. When a graph of the backward is requested (``create_graph=True``,
e.g. a gradient penalty, ``gradgradcheck``), ``differentiable_backward`` replays the forward
through the autograd-visible step equations (``rnn_step``, ``lstm_step``, ``gru_step``: the very
functions the cells use) with the same masking and returns ``torch.autograd.grad`` of that
replay with ``create_graph=True``. Plain ``.backward()`` never takes that path.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

State = tuple[Tensor, ...]
Step = Callable[..., State]


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


# --- double backward ---------------------------------------------------------------------------
def replay(step: Step, xg: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, ...]:
    """The recurrence again, one autograd-visible ``step(xg_t, *state) -> state`` per time step,
    with the recurrences' masking: a padded step keeps the state and outputs zero.
    Returns (out (T, B, H_out), *final state)."""
    keep = mask.bool() if mask is not None else None
    outs = []
    for t in range(xg.size(0)):
        new = step(xg[t], *state)
        state = tuple(torch.where(keep[t], n, s) for n, s in zip(new, state)) if keep is not None else new
        outs.append(state[0])
    out = torch.stack(outs)  # (T, B, H_out)
    return (out * mask if mask is not None else out, *state)


def grads_are_batched(*grads: Tensor | None) -> bool:
    """True under vmap (``autograd.grad(..., is_grads_batched=True)``, gradcheck's batched-grad
    check): the hand-written backward writes into preallocated buffers, which vmap cannot do."""
    functorch = torch._C._functorch  # is_grads_batched uses the legacy batching, torch.func.vmap the new
    return any(g is not None and (functorch.is_legacy_batchedtensor(g) or functorch.is_batchedtensor(g))
               for g in grads)


def differentiable_backward(ctx, replay_fn: Callable[..., tuple[Tensor, ...]], inputs: Sequence,
                            grad_outputs: Sequence[Tensor]) -> tuple[Tensor | None, ...]:
    """The backward of a recurrence as a graph, for double backward.

    ``inputs`` are the Function's inputs as saved (the same tensors, so the graph built here hangs
    off their history), ``replay_fn(*inputs)`` recomputes the Function's outputs through the
    step equations. The gradients of that replay are returned with ``create_graph=True`` when a
    graph was requested: they are differentiable functions of the inputs and of ``grad_outputs``.
    (Under vmap without create_graph, the same replay just serves batched gradients.)
    """
    create_graph = torch.is_grad_enabled()  # inside backward: True exactly when create_graph=True
    wanted = [k for k, (x, need) in enumerate(zip(inputs, ctx.needs_input_grad))
              if need and isinstance(x, Tensor)]
    result: list[Tensor | None] = [None] * len(ctx.needs_input_grad)
    if not wanted:
        return tuple(result)
    with torch.enable_grad():
        outputs = replay_fn(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not pairs:
        return tuple(result)
    grads = torch.autograd.grad([o for o, _ in pairs], [inputs[k] for k in wanted], [g for _, g in pairs],
                                create_graph=create_graph, allow_unused=True)
    for k, g in zip(wanted, grads):
        result[k] = g
    return tuple(result)


# --- argument checks (torch's messages and error types) -------------------------------------
def _type_name(x) -> str:
    return type(x).__name__


def check_stack_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                          proj_size) -> None:
    """torch.nn.RNNBase.__init__'s checks, in its order, with its error types and messages; plus
    type checks torch lacks for num_layers, proj_size and bidirectional (torch takes
    ``bidirectional="False"`` as True: a silent wrong model, refused here)."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                         "element being zeroed")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                      f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                      stacklevel=3)
    if not isinstance(bias, bool):
        raise TypeError(f"bias should be of type bool, got: {_type_name(bias)}")
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first should be of type bool, got: {_type_name(batch_first)}")
    if not (isinstance(bidirectional, bool) or (isinstance(bidirectional, int) and bidirectional in (0, 1))):
        raise TypeError(f"bidirectional should be of type bool, got: {_type_name(bidirectional)}")
    if not isinstance(input_size, int):
        raise TypeError(f"input_size should be of type int, got: {_type_name(input_size)}")
    if input_size <= 0:
        raise ValueError("input_size must be greater than zero")
    if not isinstance(hidden_size, int):
        raise TypeError(f"hidden_size should be of type int, got: {_type_name(hidden_size)}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if not isinstance(num_layers, int):
        raise TypeError(f"num_layers should be of type int, got: {_type_name(num_layers)}")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if not isinstance(proj_size, int):
        raise TypeError(f"proj_size should be of type int, got: {_type_name(proj_size)}")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


def reject_projection(kwargs: dict) -> None:
    """RNN and GRU take no proj_size, like torch (which raises ValueError for it)."""
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"__init__() got an unexpected keyword argument {next(iter(kwargs))!r}")


class RecurrentStack(nn.Module):
    """A multi-layer, optionally bidirectional recurrent net with torch.nn's interface.

    Parameters are registered flat, with torch's names (``weight_ih_l0``,
    ``weight_hh_l1_reverse``, ``weight_hr_l0`` with projections, ...), order and fused gate
    layout, so state dicts move both ways and ``all_weights`` / ``_flat_weights`` list them as
    torch does. Subclasses set ``gates``, ``state_size`` (1 for h, 2 for (h, c)) and
    ``recurrence``.
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
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        check_stack_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                              proj_size)
        if not isinstance(weight_drop, numbers.Number) or isinstance(weight_drop, bool) or not 0 <= weight_drop < 1:
            raise ValueError(f"weight_drop should be a number in [0, 1), got {weight_drop!r}")
        # rnnlab's own (torch has none): DropConnect on the recurrent weights W_hh while training, one
        # mask per forward call shared by every step (AWD-LSTM's weight drop); autograd carries the
        # mask into the hand-written backward's dL/dW_hh.
        self.weight_drop = float(weight_drop)
        self.mode = self._mode()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        h_out = proj_size if proj_size > 0 else hidden_size  # size of h: the projection's, if any
        gh = self.gates * hidden_size
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else h_out * directions
            for suffix in self._suffixes():
                shapes = {"weight_ih": (gh, layer_in), "weight_hh": (gh, h_out)}
                if bias:
                    shapes.update(bias_ih=(gh,), bias_hh=(gh,))
                if proj_size > 0:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = []
                for kind, shape in shapes.items():
                    names.append(f"{kind}_l{layer}{suffix}")
                    setattr(self, names[-1], nn.Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self._init_flat_weights()
        self.reset_parameters()

    # --- the one thing a family must provide -----------------------------------------------
    def recurrence(self, xg: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None, mask: Tensor | None,
                   w_hr: Tensor | None = None):
        raise NotImplementedError

    def _mode(self) -> str:
        """torch's ``mode`` attribute: "RNN_TANH", "RNN_RELU", "LSTM", "GRU"."""
        return type(self).__name__

    # --- parameters --------------------------------------------------------------------------
    def _suffixes(self) -> Sequence[str]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _init_flat_weights(self) -> None:
        self._flat_weights = [getattr(self, n) if hasattr(self, n) else None for n in self._flat_weights_names]

    def __setattr__(self, attr, value) -> None:
        # Keep _flat_weights current when a weight is replaced (weight_norm, weight tying), as torch does.
        if "_flat_weights_names" in self.__dict__ and attr in self._flat_weights_names:
            self._flat_weights[self._flat_weights_names.index(attr)] = value
        super().__setattr__(attr, value)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self._init_flat_weights()  # .to() / .double() may have swapped the parameter objects
        return result

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        if "proj_size" not in state:  # as torch: modules pickled before proj_size existed
            self.proj_size = 0
        self.__dict__.setdefault("weight_drop", 0.0)  # pickled before weight drop existed

    def flatten_parameters(self) -> None:
        """A no-op, kept for torch's interface: torch packs the weights into one buffer for cuDNN;
        the recurrences here read each weight tensor where it is."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer and direction, the weights in torch's order (w_ih, w_hh[, b_ih, b_hh][, w_hr])."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        # torch.nn.RNNBase's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, suffix: str) -> tuple[Tensor | None, ...]:
        name = f"l{layer}{suffix}"
        get = lambda kind: getattr(self, f"{kind}_{name}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def extra_repr(self) -> str:
        # torch's RNNBase.extra_repr, field for field.
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        if self.weight_drop:
            s += f", weight_drop={self.weight_drop}"
        return s

    # --- torch's input and state checks (RNNBase.check_input & co.) ---------------------------
    def check_input(self, input: Tensor, batch_sizes: Tensor | None) -> None:
        weight = self._flat_weights[0]
        if isinstance(weight, Tensor) and input.dtype != weight.dtype and not torch._C._is_any_autocast_enabled():
            raise ValueError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: model.to({input.dtype})"
            )
        expected_dim = 2 if batch_sizes is not None else 3
        if input.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.dim()}")
        if self.input_size != input.size(-1):
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.size(-1)}"
            )

    def get_expected_hidden_size(self, input: Tensor, batch_sizes: Tensor | None) -> tuple[int, int, int]:
        if batch_sizes is not None:
            batch = int(batch_sizes[0])
        else:
            batch = input.size(0) if self.batch_first else input.size(1)
        rows = self.num_layers * (2 if self.bidirectional else 1)
        return (rows, batch, self.proj_size if self.proj_size > 0 else self.hidden_size)

    def check_hidden_size(self, hx: Tensor, expected_hidden_size: tuple[int, int, int],
                          msg: str = "Expected hidden size {}, got {}") -> None:
        if hx.size() != expected_hidden_size:
            raise RuntimeError(msg.format(expected_hidden_size, list(hx.size())))

    def check_forward_args(self, input: Tensor, hidden, batch_sizes: Tensor | None) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden, self.get_expected_hidden_size(input, batch_sizes))

    def permute_hidden(self, hx, permutation: Tensor | None):
        # Kept for torch's interface. forward needs no permutation: it unpacks a PackedSequence
        # into the caller's batch order, the order of hx.
        if permutation is None:
            return hx
        return hx.index_select(1, permutation)

    def _states(self, hx) -> State:
        """hx as a tuple of state tensors, refusing what torch would only trip over later."""
        if self.state_size == 1:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{type(self).__name__} expects hx to be a Tensor, got {_type_name(hx)}")
            return (hx,)
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(s, Tensor) for s in hx)):
            raise TypeError(f"{type(self).__name__} expects hx to be a tuple of two Tensors (h_0, c_0), "
                            f"got {_type_name(hx)}")
        return tuple(hx)

    def _check_state_dims(self, states: State, batched: bool) -> None:
        want = 3 if batched else 2
        if all(s.dim() == want for s in states):
            return
        kind = "batched 3-D" if batched else "unbatched 2-D"
        if self.state_size == 1:
            raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {states[0].dim()}-D tensor")
        dims = ", ".join(f"{s.dim()}-D" for s in states)
        raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")

    # --- forward -----------------------------------------------------------------------------
    def forward(self, input, hx=None, lengths=None):
        """Same call, return values and errors as torch.nn.RNN/LSTM/GRU.

        ``input`` is (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a
        ``PackedSequence``. ``lengths`` (B,) is rnnlab's alternative to packing: steps at or past
        a sequence's length do not change its state, and their outputs are zero.
        Returns ``(output, h_n)`` or, for the LSTM, ``(output, (h_n, c_n))``.
        """
        packed = isinstance(input, PackedSequence)
        states = None if hx is None else self._states(hx)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError("lengths= cannot be combined with a PackedSequence, which carries its own")
            checked, batch_sizes = input.data, input.batch_sizes  # what torch's checks read
        else:
            if input.dim() not in (2, 3):
                what = " tensor" if self.mode.startswith("RNN") else ""  # torch's RNN and LSTM/GRU word it so
                raise ValueError(
                    f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D{what} instead")
            unbatched = input.dim() == 2
            if states is not None:
                self._check_state_dims(states, batched=not unbatched)
            if unbatched:  # as torch: one sequence is a batch of one
                input = input.unsqueeze(0 if self.batch_first else 1)
                states = None if states is None else tuple(s.unsqueeze(1) for s in states)
            checked, batch_sizes = input, None
        if states is None:
            self.check_input(checked, batch_sizes)
            states = self._zero_states(checked, batch_sizes)
        else:
            self.check_forward_args(checked, states[0] if self.state_size == 1 else states, batch_sizes)
        if packed:
            x, lengths = pad_packed_sequence(input)  # (T, B, I), lengths in the caller's order (that of hx)
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        steps, batch, _ = x.shape
        if steps == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        mask = ragged = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            if lengths.shape != (batch,) or (batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps)):
                raise ValueError(f"lengths must be {batch} values in [1, {steps}], got {lengths.tolist()}")
            mask = length_mask(lengths, steps, x.dtype) if batch else None  # None: every sequence is full
            ragged = lengths if mask is not None else None
        layer_input, finals = self._layers(x, states, mask, ragged)
        output = layer_input
        h_n = tuple(torch.stack(f, dim=0) for f in finals)  # each (L*D, B, H_out), c_n (L*D, B, H)
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

    def _layers(self, x: Tensor, state0: State, mask: Tensor | None, ragged: Tensor | None):
        """Every layer and direction over ``x`` (T, B, I) -> (the top layer's output (T, B, D*H_out), each
        state's finals per layer and direction)."""
        finals: list[list[Tensor]] = [[] for _ in range(self.state_size)]
        layer_input = x
        row = 0
        for layer in range(self.num_layers):
            outputs = []
            for suffix in self._suffixes():
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, suffix)
                if self.weight_drop and self.training:  # one mask of W_hh for every step of this call
                    w_hh = F.dropout(w_hh, self.weight_drop, training=True)
                reverse = suffix == "_reverse"
                seq = reverse_padded(layer_input, ragged) if reverse else layer_input
                if self.fold_recurrent_bias and b_hh is not None:
                    b_ih, b_hh = b_ih + b_hh, None
                # The input projection of every step in one matmul; only h @ W_hh is sequential.
                xg = F.linear(seq, w_ih, b_ih)  # (T, B, G*H)
                state = tuple(s[row] for s in state0)
                if w_hr is None:
                    out, state = self.recurrence(xg, state, w_hh, b_hh, mask)
                else:
                    out, state = self.recurrence(xg, state, w_hh, b_hh, mask, w_hr)
                outputs.append(reverse_padded(out, ragged) if reverse else out)
                for k, s in enumerate(state):
                    finals[k].append(s)
                row += 1
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H_out)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, finals

    def _zero_states(self, input: Tensor, batch_sizes: Tensor | None) -> State:
        """torch's default initial state: zeros, h of the hidden (or projection) size, c of hidden_size."""
        h0 = input.new_zeros(self.get_expected_hidden_size(input, batch_sizes))
        if self.state_size == 1:
            return (h0,)
        return (h0, input.new_zeros(self.get_expected_cell_size(input, batch_sizes)))


class CellBase(nn.Module):
    """One time step, with torch.nn.*Cell's parameter names: weight_ih, weight_hh, bias_ih, bias_hh,
    and torch's checks: no broadcasting of a state whose batch or size does not match."""

    gates: int = 1
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        gh = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty((gh, input_size), **factory))
        self.weight_hh = nn.Parameter(torch.empty((gh, hidden_size), **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gh, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch.nn.RNNCellBase's initialisation; hidden_size 0 is allowed (empty weights).
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        # torch's RNNCellBase.extra_repr.
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = self.__dict__.get("nonlinearity", "tanh")
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity}"
        return s

    def _batched(self, input: Tensor, hx) -> tuple[Tensor, State, bool]:
        """(input (B, I), states each (B, H), whether the call was batched), after torch's checks:
        RNNCellBase.forward's dimension checks, then ATen's check_rnn_cell_forward_input/_hidden."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        states = None
        if hx is not None:
            states = (hx,) if self.state_size == 1 else tuple(hx)
            for k, s in enumerate(states):
                if s.dim() not in (1, 2):
                    what = "hidden" if self.state_size == 1 else f"hx[{k}]"
                    raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {s.dim()}D instead")
            if len(states) != self.state_size:
                raise RuntimeError("lstm_cell expects two hidden states")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if input.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {self.input_size}")
        if states is None:
            zeros = input.new_zeros(input.size(0), self.hidden_size)
            return input, (zeros,) * self.state_size, batched
        if not batched:
            states = tuple(s.unsqueeze(0) for s in states)
        for k, s in enumerate(states):
            if s.size(0) != input.size(0):
                raise RuntimeError(f"Input batch size {input.size(0)} doesn't match hidden{k} batch size {s.size(0)}")
            if s.dim() > 1 and s.size(1) != self.hidden_size:
                raise RuntimeError(
                    f"hidden{k} has inconsistent hidden_size: got {s.size(1)}, expected {self.hidden_size}")
            if s.dim() != 2:  # e.g. a (B, H) state for a 1-D input: torch would broadcast, we refuse
                raise RuntimeError(f"hidden{k} must be {'1' if not batched else '2'}-D like the input, "
                                   f"got {s.dim() - (not batched)}-D")
        return input, states, batched
