"""PyTorch's own tests for its recurrent modules (test/test_nn.py), ported to run on torch.nn *and*
rnnlab.nn.

Every test names its source: ``test/test_nn.py`` class and test. Tests that take the ``nn``
fixture run twice, once with ``torch.nn`` and once with ``rnnlab.nn``, and must pass on both.
Tests that torch runs only on CUDA (cuDNN against the CPU kernels, weight tying on the GPU, ...)
are ported as torch.nn (the reference) against rnnlab.nn on the CPU: the same comparison with
rnnlab in the role of the second implementation. Sizes are torch's where they are cheap and
smaller where noted. Multi-GPU tests (device mismatch errors) are not ported: no second device.

The generic module tests (test/test_modules.py with common_modules.py's module inputs and error
inputs) are in test_torch_port_modules.py. rnnlab's deliberate differences from torch are at the
end of this file, each with its reason.
"""

import copy
import io
import pickle
import random
import re
import warnings
from functools import partial
from itertools import product

import pytest
import torch
import torch.nn.utils.rnn as rnn_utils
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close

import rnnlab.nn as rn

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

LIBS = {"torch": torch.nn, "rnnlab": rn}


@pytest.fixture(params=list(LIBS))
def nn(request):
    """The library under test, named as torch's tests name it: nn.LSTM, nn.GRUCell, ..."""
    return LIBS[request.param]


@pytest.fixture
def default_double():
    """torch's @set_default_dtype(torch.double)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.double)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    random.seed(0)


def assert_not_close(a, b):
    """torch's assertNotEqual on tensors."""
    with pytest.raises(AssertionError):
        assert_close(a, b)


def copy_weights(dst, src):
    """rnnlab loads torch's weights (and the other way round): the same function, two libraries."""
    dst.load_state_dict(src.state_dict())
    return dst


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNN.test_RNN_cell
def test_RNN_cell(nn):
    # this is just a smoke test; these modules are implemented through autograd
    for module in (nn.RNNCell, nn.GRUCell):
        for bias in (True, False):
            input = torch.randn(3, 10)
            hx = torch.randn(3, 20)
            cell = module(10, 20, bias=bias)
            for _ in range(6):
                hx = cell(input, hx)
            hx.sum().backward()


# test/test_nn.py TestNN.test_RNN_cell_forward_zero_hidden_size
def test_RNN_cell_forward_zero_hidden_size(nn):
    input = torch.randn(3, 10)
    hx = torch.randn(3, 0)
    for cell in (nn.RNNCell(10, 0, nonlinearity="relu"), nn.RNNCell(10, 0, nonlinearity="tanh"), nn.GRUCell(10, 0)):
        assert cell(input, hx).shape == torch.Size([3, 0])


# test/test_nn.py TestNN.test_RNN_cell_no_broadcasting
def test_RNN_cell_no_broadcasting(nn):
    def check(cell_module, input, hx, input_size, hidden_size):
        cell = cell_module(input_size, hidden_size)
        with pytest.raises(RuntimeError):
            cell(input, hx)

    def check_all(hidden_size, bad_hx, good_hx, input_size, input):
        check(nn.RNNCell, input, bad_hx, input_size, hidden_size)
        check(nn.GRUCell, input, bad_hx, input_size, hidden_size)
        check(nn.LSTMCell, input, (bad_hx, good_hx), input_size, hidden_size)
        check(nn.LSTMCell, input, (good_hx, bad_hx), input_size, hidden_size)

    hidden_size, input_size = 20, 10
    input = torch.randn(3, input_size)
    bad_hx = torch.randn(1, hidden_size)
    good_hx = torch.randn(3, hidden_size)
    check_all(hidden_size, bad_hx, good_hx, input_size, input)  # hidden/input batch size broadcasting
    bad_hx = torch.randn(3, 1)
    check_all(hidden_size, bad_hx, good_hx, input_size, input)  # hx's hidden_size vs the module's
    bad_input = torch.randn(3, 1)
    check_all(hidden_size, good_hx, good_hx, input_size, bad_input)  # input's input_size vs the module's


# test/test_nn.py TestNN.test_LSTM_cell
def test_LSTM_cell(nn):
    for bias in (True, False):
        input = torch.randn(3, 10)
        hx = torch.randn(3, 20)
        cx = torch.randn(3, 20)
        lstm = nn.LSTMCell(10, 20, bias=bias)
        for _ in range(6):
            hx, cx = lstm(input, (hx, cx))
        (hx + cx).sum().backward()


# test/test_nn.py TestNN.test_LSTM_cell_forward_input_size
def test_LSTM_cell_forward_input_size(nn):
    lstm = nn.LSTMCell(10, 20)
    with pytest.raises(Exception):
        lstm(torch.randn(3, 11), (torch.randn(3, 20), torch.randn(3, 20)))


# test/test_nn.py TestNN.test_LSTM_cell_forward_hidden_size
def test_LSTM_cell_forward_hidden_size(nn):
    input, hx, cx = torch.randn(3, 10), torch.randn(3, 21), torch.randn(3, 20)
    lstm = nn.LSTMCell(10, 20)
    with pytest.raises(Exception):
        lstm(input, (hx, cx))
    with pytest.raises(Exception):
        lstm(input, (cx, hx))


# test/test_nn.py TestNNDeviceType.test_lstmcell_backward_only_one_output_grad (CUDA-only there)
def test_lstmcell_backward_only_one_output_grad(nn):
    # undefined gradients (only h or only c used) must not hamper the backward (torch issue #11872)
    cell = nn.LSTMCell(2, 3).double()
    s = torch.randn(1, 2, dtype=torch.double, requires_grad=True)
    for i in range(2):
        out = cell(s)[i]
        out.sum().backward()
        assert not (s.grad is None or s.grad.abs().sum().item() == 0)


# ---------------------------------------------------------------------------------------------
# Argument and shape checks
# ---------------------------------------------------------------------------------------------

def _update_shape(shape, dim, new_dim_size):
    new_shape = list(shape)
    new_shape[dim] = new_dim_size
    return tuple(new_shape)


# test/test_nn.py TestNN.test_rnn_args_check
def test_rnn_args_check(nn):
    input_size, hidden_size, num_layers, batch_size, seq_len, num_directions = 3, 5, 2, 4, 6, 1
    bad_size = 7  # prime number so that no size can divide it.
    correct_input_shape = (seq_len, batch_size, input_size)
    correct_hidden_shape = (num_layers * num_directions, batch_size, hidden_size)

    def get_inputs(input_shape, hidden_shape, mode):
        input, hidden = torch.randn(input_shape), torch.randn(hidden_shape)
        if mode != "LSTM":
            return [(input, hidden)]
        if hidden_shape == correct_hidden_shape:
            return [(input, (hidden, hidden))]
        good_hidden = torch.randn(correct_hidden_shape)
        return [(input, (hidden, good_hidden)), (input, (good_hidden, hidden))]

    def check(input_shape, hidden_shape, mode):
        for input, hidden in get_inputs(input_shape, hidden_shape, mode):
            model = getattr(nn, mode)(input_size, hidden_size, num_layers)
            with pytest.raises(RuntimeError):
                model(input, hidden)

    for mode in ("RNN", "GRU", "LSTM"):
        check(_update_shape(correct_input_shape, 1, bad_size), correct_hidden_shape, mode)  # input batch size
        check(correct_input_shape, _update_shape(correct_hidden_shape, 1, bad_size), mode)  # hidden batch size
        check(_update_shape(correct_input_shape, 2, bad_size), correct_hidden_shape, mode)  # input size
        check(correct_input_shape, _update_shape(correct_hidden_shape, 2, bad_size), mode)  # hidden size
        check(correct_input_shape, _update_shape(correct_hidden_shape, 0, bad_size), mode)  # hidden[0]


# test/test_nn.py TestNN.test_projections_lstm_args_check
def test_projections_lstm_args_check(nn):
    input_size, hidden_size, proj_size, num_layers, batch_size, seq_len, num_directions = 3, 5, 2, 2, 4, 6, 1
    bad_size = 7
    correct_input_shape = (seq_len, batch_size, input_size)
    correct_h = (num_layers * num_directions, batch_size, proj_size)
    correct_c = (num_layers * num_directions, batch_size, hidden_size)

    def check(input_shape, h_shape, c_shape):
        model = nn.LSTM(input_size, hidden_size, num_layers, proj_size=proj_size)
        with pytest.raises(RuntimeError):
            model(torch.randn(input_shape), (torch.randn(h_shape), torch.randn(c_shape)))

    check(_update_shape(correct_input_shape, 1, bad_size), correct_h, correct_c)  # input batch size
    check(correct_input_shape, _update_shape(correct_h, 1, bad_size), _update_shape(correct_c, 1, bad_size))
    check(_update_shape(correct_input_shape, 2, bad_size), correct_h, correct_c)  # input size
    check(correct_input_shape, _update_shape(correct_h, 2, bad_size), _update_shape(correct_c, 2, bad_size))
    check(correct_input_shape, _update_shape(correct_h, 0, bad_size), _update_shape(correct_c, 0, bad_size))
    check(correct_input_shape, _update_shape(correct_h, 0, hidden_size), correct_c)  # proj size = hidden size
    check(correct_input_shape, _update_shape(correct_h, 0, bad_size), correct_c)  # proj size != hidden size
    check(correct_input_shape, correct_h, _update_shape(correct_c, 0, bad_size))  # cell size != hidden size


# test/test_nn.py TestNN.test_cudnn_forward_exception (runs on the CPU in torch too)
def test_cudnn_forward_exception(nn):
    rnns = [
        (nn.LSTM(10, 20, batch_first=True), (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19))),
        (nn.LSTM(10, 20, batch_first=True, proj_size=10), (torch.zeros(1, 2, 19), torch.zeros(1, 2, 19))),
        (nn.GRU(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
        (nn.RNN(10, 20, batch_first=True), torch.zeros(1, 2, 19)),
    ]
    x_wrong, x_right = torch.randn(2, 3, 3), torch.randn(2, 3, 10)
    for rnn, hidden in rnns:
        with pytest.raises(RuntimeError, match="Expected hidden.*size.*got"):
            rnn(x_right, hidden)
        with pytest.raises(RuntimeError, match=re.escape("input.size(-1) must be equal to input_size")):
            rnn(x_wrong)


# test/test_nn.py TestNN.test_projections_errors_on_gru_and_rnn
def test_projections_errors_on_gru_and_rnn(nn):
    for mode in ("RNN", "GRU"):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
            getattr(nn, mode)(30, 20, 2, proj_size=10)


# test/test_nn.py TestNN.test_RNN_nonlinearity
def test_RNN_nonlinearity(nn):
    assert nn.RNN(1, 10).nonlinearity == "tanh"
    assert nn.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(1, 10, nonlinearity="garbage")


# test/test_nn.py TestNN.test_RNN_nonlinearity_passed_as_arg
def test_RNN_nonlinearity_passed_as_arg(nn):
    assert nn.RNN(2, 3, 1, "relu").nonlinearity == "relu"


# test/test_nn.py TestNN.test_error_RNN_seq_len_zero
def test_error_RNN_seq_len_zero(nn):
    for module in (nn.RNN, nn.LSTM, nn.GRU):
        for bidirectional in (True, False):
            rnn = module(5, 6, bidirectional=bidirectional)
            with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
                rnn(torch.ones(0, 10, 5))


# test/test_nn.py TestNN.test_RNN_input_size_zero (a batch of zero sequences)
def test_RNN_input_size_zero(nn):
    for module in (nn.RNN, nn.LSTM, nn.GRU):
        outs = module(input_size=3, hidden_size=4)(torch.zeros((5, 0, 3)))
        assert outs[0].shape == torch.Size([5, 0, 4])
        outs[0].sum().backward()  # backward does not cause a hard error


# ---------------------------------------------------------------------------------------------
# Initial hidden state
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNN.test_rnn_initial_hidden_state
def test_rnn_initial_hidden_state(nn):
    for mode in ("RNN", "GRU", "LSTM"):
        rnn = getattr(nn, mode)(30, 20, 2)
        input = torch.randn(10, 32, 30)
        hidden = torch.zeros(2, 32, 20)
        if mode == "LSTM":
            hidden = (hidden, hidden)
        output1, hidden1 = rnn(input, hidden)
        output2, hidden2 = rnn(input)
        assert_close(output1, output2)
        assert_close(hidden1, hidden2)


# test/test_nn.py TestNN.test_projections_lstm_initial_hidden_state
def test_projections_lstm_initial_hidden_state(nn):
    for bidir in (False, True):
        rnn = nn.LSTM(30, 20, 2, bidirectional=bidir, proj_size=10)
        num_dirs = 2 if bidir else 1
        input = torch.randn(10, 32, 30)
        hidden = (torch.zeros(2 * num_dirs, 32, 10), torch.zeros(2 * num_dirs, 32, 20))
        output1, hidden1 = rnn(input, hidden)
        output2, hidden2 = rnn(input)
        assert_close(output1, output2)
        assert_close(hidden1, hidden2)


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNN.test_RNN_dropout (torch runs it with and without cuDNN; here the CPU)
def test_RNN_dropout(nn, default_double):
    # dropout sits between the layers: with all weights 1, the second layer sums the first's output
    for p in (0, 0.276, 0.731, 1):
        for train in (True, False):
            rnn = nn.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu")
            rnn.train(train)
            with torch.no_grad():
                for w in (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.weight_ih_l1, rnn.weight_hh_l1):
                    w.fill_(1)
            output, hy = rnn(torch.ones(1, 1, 10), torch.zeros(2, 1, 1000))
            assert output.min() == output.max()
            output_val = output[0][0][0]
            if p == 0 or not train:
                assert output_val == 10000
            elif p == 1:
                assert output_val == 0
            else:
                assert 8000 < output_val < 12000
                denorm_mod = (output_val * (1 - p)) % 10
                assert min(denorm_mod, 10 - denorm_mod) < 1e-2
            assert hy[0].min() == hy[0].max()
            assert hy[1].min() == hy[1].max()
            assert hy[0][0][0] == 10
            assert hy[1][0][0] == output_val


# test/test_nn.py TestNN.test_RNN_dropout_state
def test_RNN_dropout_state(nn):
    for p in (0, 0.1234):
        for train in (True, False):
            rnn = nn.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu")
            rnn.train(train)
            input, hx = torch.rand(1, 1, 100), torch.rand(2, 1, 100)
            output1, hy1 = rnn(input, hx)
            output2, hy2 = rnn(input, hx)
            buf = io.BytesIO()
            torch.save(rnn, buf)
            buf.seek(0)
            rnn2 = torch.load(buf, weights_only=False)
            rnn2.flatten_parameters()
            output3, hy3 = rnn2(input, hx)
            if p == 0 or not train:
                assert_close(output1, output2)
                assert_close(output1, output3)
                assert_close(hy1, hy2)
                assert_close(hy1, hy3)
            else:
                assert_not_close(output1, output2)
                assert_not_close(output1, output3)
                assert_not_close(hy1, hy2)
                assert_not_close(hy1, hy3)


# test/test_nn.py TestNN.test_RNN_change_dropout
def test_RNN_change_dropout(nn, default_double):
    for train in (True, False):
        rnn = nn.RNN(100, 100, 2, dropout=0, nonlinearity="relu")
        input = torch.rand(3, 2, 100)
        rnn.train(train)
        prev_output = None
        for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
            rnn.dropout = p
            output1, hy1 = rnn(input)
            output2, hy2 = rnn(input)
            if p == 0 or p == 1 or not train:
                assert_close(output1, output2)
                assert_close(hy1, hy2)
            else:
                assert_not_close(output1, output2)
                assert_not_close(hy1, hy2)
            if prev_output is not None:
                if not train:
                    assert_close(output1, prev_output)
                    assert_close(output2, prev_output)
                else:
                    assert_not_close(output1, prev_output)
                    assert_not_close(output2, prev_output)
            prev_output = output1.detach()


# ---------------------------------------------------------------------------------------------
# Against the reference implementation (cuDNN vs CPU in torch; here torch.nn vs rnnlab.nn)
# ---------------------------------------------------------------------------------------------

def _make_noncontig(tensor):
    ndim = tensor.dim()
    return torch.stack([tensor.clone().zero_(), tensor], ndim).select(ndim, 1)


def _forward_backward(rnn, input_val, grad_output, weights_val, hx_val, grad_hy, cx_val=None, grad_cy=None):
    """test_nn.py's forward_backward helper: copy the weights in through all_weights, run, backward."""
    is_lstm = isinstance(rnn, (torch.nn.LSTM, rn.LSTM))
    for x_layer, y_layer in zip(rnn.all_weights, weights_val):
        for x, y in zip(x_layer, y_layer):
            x.data.copy_(y.data)
    if isinstance(input_val, rnn_utils.PackedSequence):
        input = rnn_utils.PackedSequence(input_val.data.data.clone().requires_grad_(True), input_val.batch_sizes)
        input_var = input.data
    else:
        input = input_val.clone().requires_grad_(True)
        input_var = input
    if is_lstm:
        c = hx_val.add(1) if cx_val is None else cx_val.add(1)
        hx = (hx_val.clone().requires_grad_(True), c.requires_grad_(True))
    else:
        hx = hx_val.clone().requires_grad_(True)
    output, hy = rnn(input, hx)
    if isinstance(output, rnn_utils.PackedSequence):
        output = output.data
    if is_lstm:
        grad_c = grad_hy + 1 if grad_cy is None else grad_cy + 1
        torch.autograd.backward([output, hy[0], hy[1]], [grad_output, grad_hy, grad_c])
    else:
        torch.autograd.backward([output, hy], [grad_output, grad_hy])
    return {"output": output.data, "hy": hy[0].data if is_lstm else hy.data, "weights": rnn.all_weights,
            "grad_input": input_var.grad.data, "grad_hx": hx[0].grad.data if is_lstm else hx.grad.data,
            "cy": hy[1].data if is_lstm else None, "grad_cx": hx[1].grad.data if is_lstm else None}


def _compare(outputs_ref, outputs_ours):
    assert list(outputs_ref) == list(outputs_ours)
    for key in outputs_ref:
        if key != "weights":
            assert_close(outputs_ours[key], outputs_ref[key], atol=5e-5, rtol=0, msg=key)
    for ref_layer, our_layer in zip(outputs_ref["weights"], outputs_ours["weights"]):
        for ref_w, our_w in zip(ref_layer, our_layer):
            assert_close(our_w.grad.data, ref_w.grad.data, atol=5e-5, rtol=0)


def _test_RNN_torch_vs_rnnlab(dropout, dtype=torch.double, every_combination=True):
    """test_nn.py TestNN._test_RNN_cpu_vs_cudnn with torch.nn's CPU kernels as 'cpu' and rnnlab.nn as
    'cudnn': every combination of bias, direction, batch_first, contiguity, packed variable lengths
    (as a list or a tensor), for RNN/LSTM/GRU, both nonlinearities, and LSTM with projections.
    Without every_combination, 8 of the 64 combinations in which each flag takes both values."""
    combinations = [f for f in product((True, False), repeat=6)
                    if every_combination or (f[0] == f[3] and f[1] == f[4] and f[2] == f[5])]
    input_size, hidden_size, proj_size, num_layers, seq_length, batch = 10, 6, 3, 2, 7, 6

    def run(name, bias, bidirectional, batch_first, contig, variable_len, lens_as_tensor, proj=0, **kw):
        num_directions = 2 if bidirectional else 1
        out_size = proj or hidden_size
        shape = (batch, seq_length) if batch_first else (seq_length, batch)
        input_val = torch.randn(*shape, input_size, dtype=dtype)
        grad_output = torch.randn(*shape, out_size * num_directions, dtype=dtype)
        hx_val = torch.randn(num_layers * num_directions, batch, out_size, dtype=dtype)
        grad_hy = torch.randn(num_layers * num_directions, batch, out_size, dtype=dtype)
        cx_val = grad_cy = None
        if proj:
            cx_val = torch.randn(num_layers * num_directions, batch, hidden_size, dtype=dtype)
            grad_cy = torch.randn(num_layers * num_directions, batch, hidden_size, dtype=dtype)
        if not contig:
            grad_output, grad_hy, input_val, hx_val = map(_make_noncontig, (grad_output, grad_hy, input_val, hx_val))
            if proj:
                cx_val, grad_cy = _make_noncontig(cx_val), _make_noncontig(grad_cy)
        if variable_len:
            lengths = [7, 5, 5, 2, 1, 1]
            if lens_as_tensor:
                lengths = torch.tensor(lengths, dtype=torch.long)
            input_val = rnn_utils.pack_padded_sequence(input_val, lengths, batch_first=batch_first)
            grad_output = rnn_utils.pack_padded_sequence(grad_output, lengths, batch_first=batch_first).data
        if proj:
            kw["proj_size"] = proj
        args = (input_size, hidden_size, num_layers)
        kw.update(bias=bias, dropout=dropout, bidirectional=bidirectional, batch_first=batch_first)
        ref = getattr(torch.nn, name)(*args, **kw).to(dtype)
        ours = getattr(rn, name)(*args, **kw).to(dtype)
        out_ref = _forward_backward(ref, input_val, grad_output, ref.all_weights, hx_val, grad_hy, cx_val, grad_cy)
        out_ours = _forward_backward(ours, input_val, grad_output, ref.all_weights, hx_val, grad_hy, cx_val, grad_cy)
        _compare(out_ref, out_ours)

    for name in ("RNN", "LSTM", "GRU"):
        for flags in combinations:
            run(name, *flags)
    for nonlinearity in ("tanh", "relu"):
        run("RNN", True, False, False, True, False, False, nonlinearity=nonlinearity)
    for flags in combinations:  # LSTM with projections
        run("LSTM", *flags, proj=proj_size)


# test/test_nn.py TestNN.test_RNN_cpu_vs_cudnn_no_dropout
def test_RNN_torch_vs_rnnlab_no_dropout():
    _test_RNN_torch_vs_rnnlab(0)


# test/test_nn.py TestNN.test_RNN_cpu_vs_cudnn_with_dropout
def test_RNN_torch_vs_rnnlab_with_dropout():
    # Because of dropout randomness, can only compare dropout=0 and dropout=1. Dropout acts between
    # the layers whatever the flags: 8 combinations (every flag both ways) check it.
    _test_RNN_torch_vs_rnnlab(1, every_combination=False)


# test/test_nn.py TestNNDeviceType.test_rnn_fused (CPU vs CUDA there; torch.nn vs rnnlab.nn here)
@pytest.mark.parametrize("dtype", [torch.float, torch.double])
def test_rnn_fused(dtype):
    input_size, hidden_size, num_layers, seq_length, batch = 10, 6, 2, 7, 6
    input_val = torch.randn(seq_length, batch, input_size, dtype=dtype)
    grad_output = torch.randn(seq_length, batch, hidden_size, dtype=dtype)
    hx_val = torch.randn(num_layers, batch, hidden_size, dtype=dtype)
    grad_hy = torch.randn(num_layers, batch, hidden_size, dtype=dtype)
    for name in ("GRU", "LSTM"):
        for bias in (True, False):
            rnn = getattr(torch.nn, name)(input_size, hidden_size, num_layers, bias=bias).to(dtype)
            ours = getattr(rn, name)(input_size, hidden_size, num_layers, bias=bias).to(dtype)
            for x_layer, y_layer in zip(ours.all_weights, rnn.all_weights):  # copy_rnn
                for x, y in zip(x_layer, y_layer):
                    x.data.copy_(y.data)
            is_lstm = name == "LSTM"
            if is_lstm:
                hx = (hx_val.clone().requires_grad_(True), hx_val.clone().add(1).requires_grad_(True))
                hx2 = (hx_val.clone().requires_grad_(True), hx_val.clone().add(1).requires_grad_(True))
            else:
                hx = hx_val.clone().requires_grad_(True)
                hx2 = hx_val.clone().requires_grad_(True)
            inp = input_val.clone().requires_grad_(True)
            inp2 = input_val.clone().requires_grad_(True)
            output1, hy1 = rnn(inp, hx)
            output2, hy2 = ours(inp2, hx2)
            if is_lstm:
                torch.autograd.backward([output1, hy1[0], hy1[1]], [grad_output, grad_hy, grad_hy + 1])
                torch.autograd.backward([output2, hy2[0], hy2[1]], [grad_output, grad_hy, grad_hy + 1])
            else:
                torch.autograd.backward([output1, hy1], [grad_output, grad_hy])
                torch.autograd.backward([output2, hy2], [grad_output, grad_hy])
            assert_close(output2, output1)
            assert_close(hy2, hy1)
            for x_layer, y_layer in zip(rnn.all_weights, ours.all_weights):  # check_rnn_grads
                for x, y in zip(x_layer, y_layer):
                    assert_close(y.grad, x.grad, atol=5e-5, rtol=0)
            assert_close(inp2.grad, inp.grad)
            if is_lstm:
                assert_close(hx2[0].grad, hx[0].grad)
                assert_close(hx2[1].grad, hx[1].grad)
            else:
                assert_close(hx2.grad, hx.grad)


# ---------------------------------------------------------------------------------------------
# Packed / variable-length sequences
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNNDeviceType.test_variable_sequence (via _test_variable_sequence)
@pytest.mark.parametrize("enforce_sorted,lengths", [
    (True, [5]), (False, [5]), (True, [10, 10, 6, 2, 2, 1, 1]), (False, [10, 10, 6, 2, 2, 1, 1]),
    (False, [2, 1, 3, 2, 10, 5, 3]),
])
def test_variable_sequence(nn, enforce_sorted, lengths):
    dtype, prec = torch.float, 1e-5  # dtype2prec_DONTUSE[torch.float]

    def pad(var, length):
        if var.size(0) == length:
            return var
        return torch.cat([var, var.new_zeros(length - var.size(0), *var.size()[1:])])

    def maybe_index_tuple(maybe_tuple_of_tensors, index):
        if maybe_tuple_of_tensors is None:
            return None
        return tuple(maybe_tuple_of_tensors[j][:, index:index + 1, :].contiguous() for j in range(2))

    def check_lengths(use_default_hiddens, proj_size):
        input_size, hidden_size, num_layers, bidirectional = 3, 4, 2, True
        max_length = max(lengths)
        x_leaf = torch.randn(max_length, len(lengths), input_size, dtype=dtype, requires_grad=True)
        num_directions = 2 if bidirectional else 1
        lstm = nn.LSTM(input_size, hidden_size, bidirectional=bidirectional, num_layers=num_layers,
                       proj_size=proj_size).to(dtype)
        lstm2 = copy.deepcopy(lstm).to(dtype)
        x = x_leaf
        hidden0 = None
        if not use_default_hiddens:
            real_hidden_size = hidden_size if proj_size == 0 else proj_size
            hidden0 = (torch.randn(num_directions * num_layers, len(lengths), real_hidden_size, dtype=dtype),
                       torch.randn(num_directions * num_layers, len(lengths), hidden_size, dtype=dtype))
        # Compute sequences separately
        seq_outs, seq_hiddens = [], []
        for i, n in enumerate(lengths):
            out, hid = lstm2(x[:n, i:i + 1], maybe_index_tuple(hidden0, i))
            seq_outs.append(pad(out, max_length))
            seq_hiddens.append(hid)
        seq_out = torch.cat(seq_outs, 1)
        seq_hidden = tuple(torch.cat(hids, 1) for hids in zip(*seq_hiddens))
        # Use packed format
        packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        packed_out, packed_hidden = lstm(packed, hidden0)
        unpacked, unpacked_len = rnn_utils.pad_packed_sequence(packed_out)
        # Check forward
        assert_close(packed_hidden, seq_hidden, atol=prec, rtol=0)
        assert_close(unpacked, seq_out, atol=prec, rtol=0)
        assert unpacked_len.tolist() == lengths
        # Check backward
        seq_out.sum().backward()
        grad_x = x_leaf.grad.data.clone()
        x_leaf.grad.data.zero_()
        unpacked.sum().backward()
        assert_close(x_leaf.grad, grad_x, atol=prec, rtol=0)
        for p1, p2 in zip(lstm.parameters(), lstm2.parameters()):
            assert_close(p1.grad, p2.grad, atol=prec, rtol=0)

    for use_default_hiddens in (True, False):
        for proj_size in (0, 2):
            check_lengths(use_default_hiddens, proj_size)


# ---------------------------------------------------------------------------------------------
# Gradients: retained graphs, grad and gradgrad, differentiable backward
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNNDeviceType.test_rnn_retain_variables (via _test_rnn_retain_variables)
def test_rnn_retain_variables(nn):
    dtype = torch.double
    for rnn in (nn.LSTM(10, 20, num_layers=2).to(dtype), nn.GRU(10, 20, num_layers=2).to(dtype),
                nn.RNN(10, 20, num_layers=2).to(dtype)):
        input = torch.randn(5, 6, 10, dtype=dtype, requires_grad=True)
        output = rnn(input)
        output[0].sum().backward(retain_graph=True)
        grads = [input.grad.data.clone()] + [p.grad.data.clone() for p in rnn.parameters()]
        for _ in range(4):
            rnn.zero_grad()
            input.grad.data.zero_()
            output[0].sum().backward(retain_graph=True)
            grads2 = [input.grad.data] + [p.grad.data for p in rnn.parameters()]
            assert_close(grads2, grads)


def _test_rnn_mod(mod, inp):
    """test_nn.py TestNNDeviceType._test_rnn_mod: gradcheck and gradgradcheck of every output
    (output, h_n[, c_n]) with respect to the input, through all parameters."""
    def flatten_out(mod, inp):
        out = mod(inp)
        return tuple([t if isinstance(t, torch.Tensor) else tt for t in out for tt in t])

    gradcheckfunc = partial(flatten_out, mod)
    assert gradcheck(gradcheckfunc, inp, check_batched_grad=False)
    assert gradgradcheck(gradcheckfunc, inp, check_batched_grad=False)


# test/test_nn.py TestNNDeviceType.test_LSTM_grad_and_gradgrad
def test_LSTM_grad_and_gradgrad(nn):
    hsize = 4
    inp = torch.rand(1, 3, hsize, dtype=torch.double, requires_grad=True)
    for bias in (True, False):
        _test_rnn_mod(nn.LSTM(hsize, hsize, bias=bias).double(), inp)


# test/test_nn.py TestNNDeviceType.test_GRU_grad_and_gradgrad
def test_GRU_grad_and_gradgrad(nn):
    hsize = 4
    inp = torch.rand(1, 3, hsize, dtype=torch.double, requires_grad=True)
    for bias in (True, False):
        _test_rnn_mod(nn.GRU(hsize, hsize, bias=bias).double(), inp)


# test/test_nn.py TestNNDeviceType.test_LSTM_differentiable_backward_using_oneDNN
# (oneDNN off vs on there; torch.nn vs rnnlab.nn here). Twenty layers: the double backward
# crosses every layer's replayed recurrence.
def test_LSTM_differentiable_backward():
    batch, seq_len, input = 10, 12, 3
    net = torch.nn.LSTM(input, 3, 20, batch_first=True)
    ours = copy_weights(rn.LSTM(input, 3, 20, batch_first=True), net)
    x = torch.rand(batch, seq_len, input)
    results = []
    for model in (net, ours):
        x1 = x.clone().requires_grad_(True)
        out, _ = model(x1)
        der_out = torch.autograd.grad(out, x1, grad_outputs=torch.ones_like(out), retain_graph=True,
                                      create_graph=True)[0]
        der_out.sum().backward(retain_graph=True)
        results.append((der_out, x1.grad))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Parameters: weight norm, weight tying, partial flat weights, weight format, pickles
# ---------------------------------------------------------------------------------------------

# test/test_nn.py TestNN.test_rnn_weight_norm
def test_rnn_weight_norm(nn):
    def check_weight_norm(m, name, num_params):
        # Applying weight norm on one of the 4 or 5 parameters makes it a plain tensor
        m = torch.nn.utils.weight_norm(m, name=name)
        assert sum(isinstance(p, torch.nn.Parameter) for p in m._flat_weights) == num_params - 1
        # Removing the weight norm reparametrization restores the Parameter
        m = torch.nn.utils.remove_weight_norm(m, name=name)
        assert sum(isinstance(p, torch.nn.Parameter) for p in m._flat_weights) == num_params
        # ... in _parameters and named_parameters, without the reparametrization's parts
        assert name in m._parameters and m._parameters[name] is not None
        assert name + "_v" not in m._parameters and name + "_g" not in m._parameters
        named = dict(m.named_parameters())
        assert name in named and named[name] is not None
        assert name + "_v" not in named and name + "_g" not in named

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # weight_norm is deprecated in favour of parametrizations
        check_weight_norm(nn.LSTM(32, 32), "weight_ih_l0", 4)
        check_weight_norm(nn.LSTM(32, 32, proj_size=16), "weight_hr_l0", 5)


# test/test_nn.py TestNN.test_RNN_cudnn_weight_norm (CUDA there: on the CPU here)
def test_RNN_weight_norm_keeps_the_function(nn):
    input_size, hidden_size, num_layers, seq_length, batch = 10, 6, 2, 7, 6

    def check_weight_norm(m, name):
        input = torch.randn(seq_length, batch, input_size)
        expected_output = m(input)
        m = torch.nn.utils.weight_norm(m, name=name)  # adds weight normalization
        assert_close(m(input), expected_output)
        m = torch.nn.utils.remove_weight_norm(m, name=name)
        assert_close(m(input), expected_output)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        check_weight_norm(nn.LSTM(input_size, hidden_size, num_layers), "weight_hh_l0")
        check_weight_norm(nn.LSTM(input_size, hidden_size, num_layers, proj_size=3), "weight_hr_l0")


# test/test_nn.py TestNN.test_partial_flat_weights (CUDA there: a dtype move here)
def test_partial_flat_weights(nn):
    m = nn.LSTM(10, 6, 2)
    inp = torch.randn(3, 2, 10)
    out_expected = m(inp)
    weight_orig = m.weight_hh_l0
    del m.weight_hh_l0  # deletes an attribute of the original LSTM
    assert not hasattr(m, "weight_hh_l0")
    m.double()  # moving with only some attributes defined does not throw
    m.weight_hh_l0 = weight_orig.double()  # recompute the weight; the module is usable again
    assert_close(m(inp.double())[0].float(), out_expected[0])


# test/test_nn.py TestNN.test_cudnn_weight_format (CUDA there). The weights stop sharing one
# buffer (torch warns on cuDNN only); outputs and gradients do not change.
def test_weight_format(nn):
    rnns = [nn.LSTM(10, 20, batch_first=True), nn.LSTM(10, 20, batch_first=True, proj_size=10),
            nn.GRU(10, 20, batch_first=True), nn.RNN(10, 20, batch_first=True)]
    for rnn in rnns:
        input = torch.randn(5, 4, 10, requires_grad=True)
        hx = torch.randn(1, 5, 20, requires_grad=True)
        all_vars = [input, hx] + list(rnn.parameters())
        if rnn.mode == "LSTM":
            if rnn.proj_size > 0:  # LSTM with projections has a different hx size
                hx = torch.randn(1, 5, 10, requires_grad=True)
                all_vars[1] = hx
            cx = torch.randn(1, 5, 20, requires_grad=True)
            all_vars[2:2] = [cx]
            hx = (hx, cx)
        output = rnn(input, hx)
        output[0].sum().backward()
        grads = [v.grad.data.clone() for v in all_vars]
        for v in all_vars:
            v.grad.data.zero_()
        weight = all_vars[4]  # weights will no longer view onto the same chunk of memory
        weight_data = weight.data.clone()
        with torch.no_grad():
            weight.set_(weight_data)
        for _ in range(2):
            output_noncontig = rnn(input, hx)
            output_noncontig[0].sum().backward()
            grads_noncontig = [v.grad.data.clone() for v in all_vars]
            for v in all_vars:
                v.grad.data.zero_()
            assert_close(output, output_noncontig)
            assert_close(grads_noncontig, grads)
        weight_data[:] = 4  # these still share storage
        assert_close(weight_data, all_vars[4].data)


# test/test_nn.py TestNN.test_cudnn_weight_tying (CUDA vs CPU there; torch.nn vs rnnlab.nn here)
def test_weight_tying():
    configs = [("LSTM", {}), ("LSTM", {"proj_size": 10}), ("GRU", {}), ("RNN", {})]
    for name, kw in configs:
        results = []
        ref = getattr(torch.nn, name)(10, 20, batch_first=True, bidirectional=True, **kw)
        ours = copy_weights(getattr(rn, name)(10, 20, batch_first=True, bidirectional=True, **kw), ref)
        input = torch.randn(5, 4, 10)
        hx = torch.randn(2, 5, kw.get("proj_size", 20))
        if name == "LSTM":
            hx = (hx, torch.randn(2, 5, 20))
        for rnn in (ref, ours):
            rnn.bias_ih_l0_reverse = rnn.bias_ih_l0
            assert len(list(rnn.parameters())) == len(rnn._flat_weights) - 1  # the tied one is listed once
            opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
            opt.zero_grad()
            output = rnn(input, hx)
            output[0].sum().backward()
            opt.step()
            results.append((output, rnn(input, hx), [p.detach().clone() for p in rnn.parameters()]))
        assert_close(results[1], results[0], atol=1e-5, rtol=1e-5)


# test/test_nn.py TestNNDeviceType.test_save_lstm_compatibility
def test_save_lstm_compatibility(nn):
    # An LSTM pickled before proj_size existed (PyTorch 1.7) still loads.
    model = nn.LSTM(2, 3)
    x = torch.randn(32, 5, 2)
    expected = model(x)
    assert model.proj_size == 0
    state_dict = model.__dict__
    del state_dict["proj_size"]
    loaded_model = nn.LSTM(2, 3)
    loaded_model.__setstate__(state_dict)
    assert_close(loaded_model(x), expected)


# test/test_nn.py TestNN.test_pickle_module_no_weights_only_warning, for the recurrent modules
def test_pickle_without_warnings(nn):
    for module in (nn.LSTM(3, 4, proj_size=2), nn.GRU(3, 4, bidirectional=True), nn.RNN(3, 4), nn.LSTMCell(3, 4)):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            copy_ = pickle.loads(pickle.dumps(module))
        assert len(w) == 0
        assert type(copy_) is type(module)


# ---------------------------------------------------------------------------------------------
# Deliberate differences: rnnlab.nn departs from torch.nn here on purpose, each for a reason.
# ---------------------------------------------------------------------------------------------

def _both(fn):
    """fn run on torch.nn and on rnnlab.nn: (torch's outcome, rnnlab's outcome)."""
    outcomes = []
    for lib in (torch.nn, rn):
        try:
            outcomes.append(fn(lib))
        except Exception as e:  # noqa: BLE001 - the outcome is what is compared
            outcomes.append(type(e))
    return tuple(outcomes)


def test_difference_sigmoid_rnn():
    """The lab's third activation: h_t = sigmoid(...) shows the vanishing gradient (sigmoid' <= 1/4).
    torch.nn.RNN refuses it (ValueError); rnnlab.nn.RNN and RNNCell compute it."""
    torch_outcome, ours = _both(lambda lib: lib.RNN(3, 4, nonlinearity="sigmoid")(torch.randn(2, 1, 3))[0])
    assert torch_outcome is ValueError
    assert isinstance(ours, torch.Tensor) and bool(((ours > 0) & (ours < 1)).all())
    torch_outcome, ours = _both(lambda lib: lib.RNNCell(3, 4, nonlinearity="sigmoid")(torch.randn(2, 3)))
    assert torch_outcome is RuntimeError and isinstance(ours, torch.Tensor)


def test_difference_rnn_cell_checks_nonlinearity_when_built():
    """torch.nn.RNNCell accepts any nonlinearity and fails at the first forward (RuntimeError);
    rnnlab's fails when the model is built (ValueError, as torch.nn.RNN does), so a typo in a
    configuration is reported before training starts."""
    assert _both(lambda lib: lib.RNNCell(3, 4, nonlinearity="garbage") and "built") == ("built", ValueError)


def test_difference_rnn_repr_shows_nonlinearity():
    """torch.nn.RNN's repr omits nonlinearity='relu' (its RNNCell prints it): a relu network prints
    like a tanh one. rnnlab prints it, in the cells' wording, for every non-tanh RNN."""
    torch_repr, ours = _both(lambda lib: repr(lib.RNN(3, 4, nonlinearity="relu")))
    assert torch_repr == "RNN(3, 4)" and ours == "RNN(3, 4, nonlinearity=relu)"
    assert _both(lambda lib: repr(lib.RNN(3, 4))) == ("RNN(3, 4)", "RNN(3, 4)")


def test_difference_bidirectional_must_be_a_bool():
    """torch takes bidirectional="False" as True (a truthy string): a silently different model.
    rnnlab raises TypeError for anything but a bool (or 0/1), like torch does for bias and
    batch_first."""
    assert _both(lambda lib: lib.LSTM(3, 4, bidirectional="False").bidirectional) == ("False", TypeError)
    assert _both(lambda lib: lib.GRU(3, 4, bidirectional=1).bidirectional) == (1, 1)


def test_difference_hx_of_the_wrong_kind():
    """A tensor where the LSTM wants (h_0, c_0), or a tuple where the GRU wants h_0: torch trips
    over it inside (IndexError, AttributeError); rnnlab says what it expected (TypeError)."""
    x = torch.randn(5, 2, 3)
    assert _both(lambda lib: lib.LSTM(3, 4)(x, torch.zeros(1, 2, 4))) == (IndexError, TypeError)
    assert _both(lambda lib: lib.GRU(3, 4)(x, (torch.zeros(1, 2, 4),))) == (AttributeError, TypeError)


def test_difference_lengths_argument():
    """rnnlab's forward also takes lengths= (the padded batch's lengths) as an alternative to a
    PackedSequence; torch.nn's forward has no such argument. Both give the packed result."""
    torch.manual_seed(1)
    ref = torch.nn.GRU(3, 4, bidirectional=True)
    ours = copy_weights(rn.GRU(3, 4, bidirectional=True), ref)
    x, lengths = torch.randn(5, 3, 3), torch.tensor([5, 2, 4])
    with pytest.raises(TypeError):
        ref(x, lengths=lengths)
    packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_ref, h_ref = ref(packed)
    out, h = ours(x, lengths=lengths)
    assert_close(out, rnn_utils.pad_packed_sequence(out_ref)[0])
    assert_close(h, h_ref)
