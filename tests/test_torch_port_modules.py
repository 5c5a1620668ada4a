"""PyTorch's generic module tests (test/test_modules.py, class TestModule) over its module inputs and
module error inputs for the recurrent modules (torch/testing/_internal/common_modules.py:
module_inputs_torch_nn_RNN_GRU_Cell, module_inputs_torch_nn_LSTMCell,
module_inputs_torch_nn_RNN_GRU, module_inputs_torch_nn_LSTM, module_error_inputs_torch_nn_RNN_GRU_Cell,
module_error_inputs_torch_nn_LSTMCell, module_error_inputs_torch_nn_RNN_GRU), ported to run on
torch.nn *and* rnnlab.nn.

The samples below restate common_modules.py's (the same constructor arguments, input shapes and
references, drawn with torch.testing.make_tensor as there); the tests restate test_modules.py's
checks, each named after its source. As in torch, the layers (train_and_eval_differ=True) run in
training and in eval mode, the cells in training mode. Where rnnlab runs, test_forward also
checks its outputs against torch.nn's with the same weights. CUDA-only tests
(test_cpu_gpu_parity, test_multiple_device_transfer) are not ported; test_check_inplace does not
apply (no inplace argument).

To keep the port under a minute on one thread, the tests that torch runs on every sample and
that cost seconds per module here run on a covering subset of the samples, ``covering()``: every
option (bias, batch_first, bidirectional, proj_size, initial state, nonlinearity) takes each of
its values at least once, which for the layers is the all-off and the all-on sample. That is
test_non_contiguous_tensors, test_memory_format, test_pickle in eval mode, test_gradgrad
(torch's gradgradcheck costs about a second per sample for torch.nn itself), test_grad's partial
derivatives (one parameter at a time, each kind of parameter of the first layer) and the
eval-mode gradient checks (eval computes the same function: dropout is 0 in these samples).
Every other test, and test_grad's total derivative in training mode, runs on every sample.
gradcheck and gradgradcheck run with torch's test defaults (fast_mode=True,
check_batched_grad=True, as torch.testing._internal.common_utils sets them).
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from itertools import product
from typing import Callable

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence
from torch.testing import assert_close, make_tensor

import rnnlab.nn as rn

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

LIBS = {"torch": torch.nn, "rnnlab": rn}
CELLS = ("RNNCell", "GRUCell", "LSTMCell")
LAYERS = ("RNN", "GRU", "LSTM")
MODULES = CELLS + LAYERS
# ModuleInfo(torch.nn.RNN / GRU / LSTM, train_and_eval_differ=True): both modes are tested.
MODES = [(name, training) for name in MODULES for training in ((True, False) if name in LAYERS else (True,))]


@pytest.fixture(params=list(LIBS))
def nn(request):
    return LIBS[request.param]


@dataclass
class Sample:
    """common_modules.ModuleInput: constructor arguments, forward arguments, reference function."""

    args: tuple
    kwargs: dict
    inputs: tuple
    reference: Callable | None = None
    flags: dict = field(default_factory=dict)  # the sample's options, to pick covering subsets


def _make(dtype, requires_grad):
    return lambda *shape: make_tensor(shape, device="cpu", dtype=dtype, requires_grad=requires_grad)


def _reference_cell(m, *args):
    """common_modules.no_batch_dim_reference_fn / no_batch_dim_reference_lstmcell: one sequence as a
    batch of one, squeezed back."""
    x, hx = args
    if isinstance(hx, tuple):
        h, c = m(x.unsqueeze(0), (hx[0].unsqueeze(0), hx[1].unsqueeze(0)))
        return h.squeeze(0), c.squeeze(0)
    return m(x.unsqueeze(0), hx.unsqueeze(0)).squeeze(0)


def _reference_layer(batch_first, m, *args):
    """common_modules.no_batch_dim_reference_rnn_gru / no_batch_dim_reference_lstm."""
    inp, hx = (args + (None,))[:2]
    batch_dim = 0 if batch_first else 1
    if isinstance(hx, tuple):
        hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
    elif hx is not None:
        hx = hx.unsqueeze(1)
    output, h = m(inp.unsqueeze(batch_dim), hx)
    h = (h[0].squeeze(1), h[1].squeeze(1)) if isinstance(h, tuple) else h.squeeze(1)
    return output.squeeze(batch_dim), h


def _packed(inp, lengths):
    """common_modules.make_packed_sequence: the user can't reach inp, only the packed data."""
    required_grad = inp.requires_grad
    inp.requires_grad_(False)
    seq = pack_padded_sequence(inp, lengths)
    seq.data.requires_grad_(required_grad)
    return seq


def module_inputs(name, dtype=torch.float64, requires_grad=False, with_packed_sequence=False) -> list[Sample]:
    make = _make(dtype, requires_grad)
    if name in ("RNNCell", "GRUCell"):  # module_inputs_torch_nn_RNN_GRU_Cell: no-batch-dim samples
        samples = [Sample((5, 10), {}, (make(5), make(10)), _reference_cell, {"sample": 0}),
                   Sample((5, 10), {"bias": True}, (make(5), make(10)), _reference_cell, {"sample": 1})]
        if name == "RNNCell":  # tanh is the default, so relu is checked
            samples.append(Sample((5, 10), {"bias": True, "nonlinearity": "relu"}, (make(5), make(10)),
                                  _reference_cell, {"sample": 2}))
        return samples
    if name == "LSTMCell":  # module_inputs_torch_nn_LSTMCell
        return [Sample((5, 10), kw, (make(5), (make(10), make(10))), _reference_cell, {"sample": k})
                for k, kw in enumerate(({}, {"bias": True}))]
    samples = []
    if name in ("RNN", "GRU"):  # module_inputs_torch_nn_RNN_GRU
        for nl, b, b_f, bidir in product(("relu", "tanh") if name == "RNN" else (None,), (False, True), (False, True),
                                         (False, True)):
            extra = {"nonlinearity": nl} if nl else {}
            flags = dict(bias=b, batch_first=b_f, bidirectional=bidir, **extra)
            cons = dict(input_size=2, hidden_size=2, num_layers=2, batch_first=b_f, bias=b, bidirectional=bidir, **extra)
            cons_hidden = dict(cons, hidden_size=3)
            ref = lambda m, *a, b_f=b_f: _reference_layer(b_f, m, *a)  # noqa: E731
            samples.append(Sample((), cons, (make(3, 2),), ref, dict(flags, hx=False)))
            samples.append(Sample((), cons_hidden, (make(3, 2), make(4 if bidir else 2, 3)), ref, dict(flags, hx=True)))
            if with_packed_sequence:
                samples.append(Sample((), cons, (_packed(make(5, 2, 2), torch.tensor([5, 3])),), None,
                                      dict(flags, packed=True)))
                samples.append(Sample((), cons, (_packed(make(5, 5, 2), torch.tensor([5, 3, 3, 2, 2])),), None,
                                      dict(flags, packed=True)))
        return samples
    for b, b_f, bidir, proj_size in product((False, True), (False, True), (False, True), (0, 2)):  # ..._LSTM
        hidden_size = 3
        cons = dict(input_size=2, hidden_size=hidden_size, num_layers=2, proj_size=proj_size, batch_first=b_f, bias=b,
                    bidirectional=bidir)
        flags = dict(bias=b, batch_first=b_f, bidirectional=bidir, proj=proj_size > 0)
        ref = lambda m, *a, b_f=b_f: _reference_layer(b_f, m, *a)  # noqa: E731
        samples.append(Sample((), cons, (make(2, 2),), ref, dict(flags, hx=False)))
        h_out = proj_size if proj_size > 0 else hidden_size
        hx = (make(4 if bidir else 2, h_out), make(4 if bidir else 2, hidden_size))
        samples.append(Sample((), cons, (make(3, 2), hx), ref, dict(flags, hx=True)))
    return samples


def covering(samples: list[Sample]) -> list[Sample]:
    """A few samples in which every option (bias, batch_first, bidirectional, proj_size, initial
    state, nonlinearity) takes each of its values at least once: greedily the sample that adds
    the most values not yet covered, usually the all-off and the all-on sample."""
    def items(s):
        return {(k, v) for k, v in s.flags.items()}

    wanted = set().union(*(items(s) for s in samples))
    chosen, seen = [samples[0]], items(samples[0])
    while not wanted <= seen:
        best = max(samples, key=lambda s: len(items(s) - seen))
        chosen.append(best)
        seen |= items(best)
    return chosen


def build(nn, name, sample, dtype=torch.float64, training=True):
    m = getattr(nn, name)(*sample.args, **sample.kwargs)
    m.to(dtype)
    m.train(training)
    return m


def flat(obj) -> list[torch.Tensor]:
    return [t for t in torch.utils._pytree.tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _traverse(obj, fn):
    if isinstance(obj, (tuple, list)):
        return type(obj)(_traverse(o, fn) for o in obj)
    if isinstance(obj, PackedSequence):
        return obj
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    return obj


# ---------------------------------------------------------------------------------------------

# test/test_modules.py TestModule.test_forward
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,training", MODES)
def test_forward(nn, name, training, dtype):
    torch.manual_seed(0)
    # common_modules.py's packed-sequence samples (with_packed_sequence=True), once per module
    for sample in module_inputs(name, dtype, with_packed_sequence=training and dtype == torch.float64):
        m = build(nn, name, sample, dtype, training)
        outputs = m(*sample.inputs)
        if sample.reference is not None:
            assert_close(outputs, sample.reference(m, *sample.inputs))
        if nn is rn:  # ours: the same outputs as torch.nn's with the same weights
            ref = build(torch.nn, name, sample, dtype, training)
            ref.load_state_dict(m.state_dict())
            expected = ref(*sample.inputs)
            assert_close(flat(outputs), flat(expected))
        # the method call (float() / double()) converts every parameter
        getattr(m, {torch.float32: "float", torch.float64: "double"}[dtype])()
        m(*sample.inputs)
        for p in m.parameters():
            assert p.dtype == dtype and p.device.type == "cpu"


# test/test_modules.py TestModule.test_factory_kwargs
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", MODULES)
def test_factory_kwargs(nn, name, dtype):
    for sample in module_inputs(name, dtype):
        m = getattr(nn, name)(*sample.args, **sample.kwargs, device="cpu", dtype=dtype)
        assert len(list(m.parameters())) > 0
        for pname, p in m.named_parameters():
            assert p.device == torch.device("cpu"), pname
            assert p.dtype == dtype, pname
        assert list(m.buffers()) == []


# test/test_modules.py TestModule.test_device_ctx_init
@pytest.mark.parametrize("name", MODULES)
def test_device_ctx_init(nn, name):
    for sample in module_inputs(name):
        m_cpu = getattr(nn, name)(*sample.args, **sample.kwargs)
        with torch.device("meta"):
            m = getattr(nn, name)(*sample.args, **sample.kwargs)
        for p_meta, p_cpu in zip(m.parameters(), m_cpu.parameters(), strict=True):
            assert p_meta.is_meta
            assert (p_meta.shape, p_meta.dtype, p_meta.stride(), p_meta.requires_grad) == \
                   (p_cpu.shape, p_cpu.dtype, p_cpu.stride(), p_cpu.requires_grad)


# test/test_modules.py TestModule.test_repr
@pytest.mark.parametrize("name,training", MODES)
def test_repr(nn, name, training):
    for sample in module_inputs(name):
        m = build(nn, name, sample, training=training)
        m.__repr__()
        str(m)
        # ours: the same text as torch.nn's (but for the nonlinearity of an RNN layer: see
        # test_torch_port.py::test_difference_rnn_repr_shows_nonlinearity)
        if nn is rn and not (name == "RNN" and sample.kwargs.get("nonlinearity", "tanh") != "tanh"):
            assert repr(m) == repr(build(torch.nn, name, sample, training=training))


# test/test_modules.py TestModule.test_pickle
@pytest.mark.parametrize("name,training", MODES)
def test_pickle(nn, name, training):
    samples = module_inputs(name, with_packed_sequence=training)
    for sample in samples if training else covering(samples):
        m = build(nn, name, sample, training=training)
        output = m(*sample.inputs)
        buf = io.BytesIO()
        torch.save(m, buf)
        buf.seek(0)
        m_copy = torch.load(buf, weights_only=False)
        assert_close(flat(m_copy(*sample.inputs)), flat(output))


# test/test_modules.py TestModule.test_non_contiguous_tensors
@pytest.mark.parametrize("name,training", MODES)
def test_non_contiguous_tensors(nn, name, training):
    torch.manual_seed(0)

    def make_non_contiguous(obj):
        def inner(t):
            if t.dim() == 0:  # scalar tensors can not be made non-contiguous
                return t
            out = torch.repeat_interleave(t, 2, dim=-1)[..., ::2].detach()
            out.requires_grad = t.requires_grad
            return out
        return _traverse(obj, inner)

    def run(m, inputs, grad_outputs):
        for t in flat(inputs) + list(m.parameters()):
            t.grad = None
        out = m(*inputs)
        for o, g in zip(flat(out), flat(grad_outputs)):
            o.backward(g, retain_graph=True)
        return out, [t.grad for t in flat(inputs)], [p.grad for p in m.parameters()]

    for sample in covering(module_inputs(name, requires_grad=True)):
        m = build(nn, name, sample, training=training)
        default_output = m(*sample.inputs)
        grad_output = _traverse(default_output, lambda o: o.clone().detach().normal_())
        _, default_input_grads, default_param_grads = run(m, sample.inputs, grad_output)
        default_input_grads = [g.clone() for g in default_input_grads]
        default_param_grads = [g.clone() for g in default_param_grads]
        nc_inputs = make_non_contiguous(sample.inputs)
        assert not all(t.is_contiguous() for t in flat(nc_inputs))
        for inputs, g_out in product((sample.inputs, nc_inputs), (grad_output, make_non_contiguous(grad_output))):
            out, input_grads, param_grads = run(m, inputs, copy.deepcopy(g_out))
            assert_close(flat(out), flat(default_output))
            assert_close(input_grads, default_input_grads, atol=1e-4, rtol=0)
            assert_close(param_grads, default_param_grads)


def _gradients_helper(nn, name, training, check, samples, partial):
    """test/test_modules.py TestModule._test_gradients_helper: check the total derivative with
    respect to the inputs and all parameters, then (partial) one parameter at a time."""
    for sample in samples:
        m = build(nn, name, sample, torch.float64, training)
        params = tuple(m.parameters())
        input_args = sample.inputs

        def fn_to_gradcheck(*flat_input_and_params):
            input_and_params = torch.utils._pytree.tree_unflatten(flat_input_and_params, flat_spec)
            return torch.utils._pytree.tree_leaves(m(*input_and_params[: len(input_args)]))

        grad_input = input_args + params
        flat_input, flat_spec = torch.utils._pytree.tree_flatten(grad_input)
        # torch.testing._internal.common_utils.gradcheck/gradgradcheck's defaults
        assert check(fn_to_gradcheck, flat_input, fast_mode=True, check_batched_grad=True)
        if not partial:
            continue
        # One parameter at a time: each kind (weight_ih, weight_hh, bias_ih, bias_hh, weight_hr),
        # taken from the first layer's forward direction (torch goes through all of them).
        single = [p for n, p in m.named_parameters() if "_l" not in n or n.endswith("_l0")]
        for p in params:
            p.requires_grad = False
        for p in single:
            p.requires_grad = True
            flat_input, flat_spec = torch.utils._pytree.tree_flatten(input_args + params)
            assert check(fn_to_gradcheck, flat_input, fast_mode=True, check_batched_grad=True)
            p.requires_grad = False
        for p in params:
            p.requires_grad = True


# test/test_modules.py TestModule.test_grad (allowed_dtypes=[torch.double])
@pytest.mark.parametrize("name,training", MODES)
def test_grad(nn, name, training):
    torch.manual_seed(0)
    samples = module_inputs(name, torch.float64, requires_grad=True)
    cover = covering(samples)
    # every sample in training mode; eval mode computes the same function (dropout is 0)
    _gradients_helper(nn, name, training, gradcheck, samples if training else cover, partial=False)
    if training:
        _gradients_helper(nn, name, training, gradcheck, cover[-1:], partial=True)


# test/test_modules.py TestModule.test_gradgrad (supports_gradgrad, allowed_dtypes=[torch.double])
@pytest.mark.parametrize("name,training", MODES)
def test_gradgrad(nn, name, training):
    torch.manual_seed(0)
    cover = covering(module_inputs(name, torch.float64, requires_grad=True))
    # eval mode computes the same function (dropout is 0): its first sample suffices
    _gradients_helper(nn, name, training, gradgradcheck, cover if training else cover[:1], partial=False)
    if training:
        _gradients_helper(nn, name, training, gradgradcheck, cover[:1], partial=True)


# test/test_modules.py TestModule.test_memory_format. The recurrent modules' inputs are 1-D to
# 3-D: no channels_last format applies, so the formats are contiguous and preserve_format, and
# outputs and gradients must be contiguous and unchanged.
@pytest.mark.parametrize("name,training", MODES)
def test_memory_format(nn, name, training):
    torch.manual_seed(0)
    for sample in covering(module_inputs(name, requires_grad=True)):
        m = build(nn, name, sample, training=training)
        desired = m(*sample.inputs)
        diff_outputs = [t for t in flat(desired) if t.requires_grad]
        diff_inputs = [t for t in flat(sample.inputs) + list(m.parameters()) if t.requires_grad]
        grad_outputs = [torch.rand_like(t) for t in diff_outputs]
        ref_grads = torch.autograd.grad(diff_outputs, diff_inputs, grad_outputs)
        for module_mem_format in (torch.preserve_format, torch.contiguous_format):
            m.to(memory_format=module_mem_format)
            outputs = m(*sample.inputs)
            assert_close(flat(outputs), flat(desired))
            assert all(o.is_contiguous() for o in flat(outputs))
            diff_inputs = [t for t in flat(sample.inputs) + list(m.parameters()) if t.requires_grad]
            grads = torch.autograd.grad([t for t in flat(outputs) if t.requires_grad], diff_inputs, grad_outputs)
            assert_close(grads, ref_grads)
            assert all(g.is_contiguous() for g in grads)


# test/test_modules.py TestModule.test_if_train_and_eval_modes_differ (train_only)
@pytest.mark.parametrize("name", MODULES)
def test_if_train_and_eval_modes_differ(nn, name):
    for sample in module_inputs(name):
        m = build(nn, name, sample, training=True)
        delattr(m, "training")  # does the forward read the training flag?
        try:
            m(*sample.inputs)
        except AttributeError as e:
            if "'training'" not in str(e):
                raise
            assert name in LAYERS, f"{name} reads self.training but its ModuleInfo says train and eval agree"


# ---------------------------------------------------------------------------------------------
# test/test_modules.py TestModule.test_errors over the module error inputs
# ---------------------------------------------------------------------------------------------

@dataclass
class ErrorSample:
    """common_modules.ErrorModuleInput: where it fails (construction or forward), how."""

    args: tuple
    kwargs: dict
    inputs: tuple | None  # None: the constructor raises
    error_type: type
    error_regex: str


def _cell_error_inputs(name, make):
    if name == "LSTMCell":  # module_error_inputs_torch_nn_LSTMCell
        return [
            ErrorSample((10, 20), {}, (make(3, 11), (make(3, 20), make(3, 20))), RuntimeError,
                        "input has inconsistent input_size: got 11 expected 10"),
            ErrorSample((10, 20), {}, (make(3, 10), (make(3, 21), make(3, 21))), RuntimeError,
                        "hidden0 has inconsistent hidden_size: got 21, expected 20"),
            ErrorSample((10, 20), {}, (make(3, 10), (make(5, 20), make(5, 20))), RuntimeError,
                        "Input batch size 3 doesn't match hidden0 batch size 5"),
            ErrorSample((10, 20), {}, (make(3, 10), (make(3, 1, 1, 20), make(3, 1, 1, 20))), ValueError,
                        "Expected hx\\[0\\] to be 1D or 2D, got 4D instead"),
        ]
    return [  # module_error_inputs_torch_nn_RNN_GRU_Cell
        ErrorSample((10, 20), {}, (make(3, 11), make(3, 20)), RuntimeError,
                    "input has inconsistent input_size: got 11 expected 10"),
        ErrorSample((10, 20), {}, (make(3, 10), make(3, 21)), RuntimeError,
                    "hidden0 has inconsistent hidden_size: got 21, expected 20"),
        ErrorSample((10, 20), {}, (make(3, 10), make(5, 20)), RuntimeError,
                    "Input batch size 3 doesn't match hidden0 batch size 5"),
        ErrorSample((10, 20), {}, (make(3, 10), make(3, 1, 1, 20)), ValueError,
                    "Expected hidden to be 1D or 2D, got 4D instead"),
        # torch passes 'relu' / 'tanh' as the third positional argument, which is bias: both are
        # truthy, so these cells are built as usual and fail on the hidden size.
        ErrorSample((10, 20, "relu"), {}, (make(3, 10), make(3, 21)), RuntimeError,
                    "hidden0 has inconsistent hidden_size: got 21, expected 20"),
        ErrorSample((10, 20, "tanh"), {}, (make(3, 10), make(3, 21)), RuntimeError,
                    "hidden0 has inconsistent hidden_size: got 21, expected 20"),
    ]


def _layer_error_inputs(make_mismatched):
    """module_error_inputs_torch_nn_RNN_GRU (used for RNN, GRU and LSTM)."""
    def ctor(*args, msg, error=ValueError, **kwargs):
        return ErrorSample(args, kwargs, None, error, msg)

    return [
        ctor(10, 0, 1, msg="hidden_size must be greater than zero"),
        ctor(10, 10, 0, msg="num_layers must be greater than zero"),
        ErrorSample((3, 5), {"dtype": torch.float32}, (make_mismatched(2, 4, 3),), ValueError,
                    r"RNN input dtype .* does not match weight dtype .* "
                    r"Convert input: input\.to\(.*\), or convert model: model\.to\(.*\)"),
        ctor(3, 5, bias=0, error=TypeError, msg="bias should be of type bool, got: int"),
        ctor(3, 5, bias=1, error=TypeError, msg="bias should be of type bool, got: int"),
        ctor(3, 5, bias="True", error=TypeError, msg="bias should be of type bool, got: str"),
        ctor(3, 5, batch_first=0, error=TypeError, msg="batch_first should be of type bool, got: int"),
        ctor(3, 5, batch_first=1, error=TypeError, msg="batch_first should be of type bool, got: int"),
        ctor(3, 5, batch_first="False", error=TypeError, msg="batch_first should be of type bool, got: str"),
        ctor(3.0, 5, error=TypeError, msg="input_size should be of type int, got: float"),
        ctor("10", 5, error=TypeError, msg="input_size should be of type int, got: str"),
        ctor(0, 5, msg="input_size must be greater than zero"),
        ctor(-1, 5, msg="input_size must be greater than zero"),
        ctor(3, 5.0, error=TypeError, msg="hidden_size should be of type int, got: float"),
    ]


def error_inputs(name) -> list[ErrorSample]:
    make = _make(torch.float32, False)
    if name in CELLS:
        return _cell_error_inputs(name, make)
    return _layer_error_inputs(_make(torch.float64, False))  # float32 modules, float64 input


ERROR_CASES = [(name, k) for name in MODULES for k in range(len(error_inputs(name)))]


@pytest.mark.parametrize("name,case", ERROR_CASES)
def test_errors(nn, name, case):
    error = error_inputs(name)[case]
    cls = getattr(nn, name)
    if error.inputs is None:
        with pytest.raises(error.error_type, match=error.error_regex):
            cls(*error.args, **error.kwargs)
    else:
        m = cls(*error.args, **error.kwargs)
        with pytest.raises(error.error_type, match=error.error_regex):
            m(*error.inputs)
