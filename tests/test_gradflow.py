"""The gradient-flow experiment: its measurements agree with the theory on cases where it is exact."""

import json

import numpy as np
import torch

from rnnlab import gradflow
from rnnlab.cli import main


def test_spectral_radius_is_set_per_gate_block():
    cell = gradflow.make_cell("gru", 4, 6).double()
    gradflow.set_spectral_radius(cell, 0.7)
    for g in range(3):
        block = cell.weight_hh[g * 6 : (g + 1) * 6].detach()
        assert abs(torch.linalg.eigvals(block).abs().max().item() - 0.7) < 1e-9


def test_linear_regime_rate_matches_the_jacobian_product():
    """With tiny inputs a tanh RNN is almost linear: dL/dh_k = (W^T)^(T-k) dL/dh_T, so the norm
    ratio over the run must follow the powers of W exactly."""
    torch.manual_seed(0)
    cell = gradflow.make_cell("rnn-tanh", 3, 5).double()
    with torch.no_grad():
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    gradflow.set_spectral_radius(cell, 0.8)
    head = torch.nn.Linear(5, 3).double()
    x = torch.zeros(20, 1, 3, dtype=torch.float64)  # h stays 0: tanh'(0) = 1, Jacobian = W exactly
    norms = gradflow.gradient_norms(cell, head, x, torch.tensor([1]))["h"]
    hs, _ = gradflow.unroll(cell, x)
    g = torch.autograd.grad(torch.nn.functional.cross_entropy(head(hs[-1]), torch.tensor([1]), reduction="sum"), hs[-1])[0]
    expected = torch.linalg.matrix_power(cell.weight_hh.detach().T, 20) @ g[0]
    assert np.isclose(norms[0], expected.norm().item(), rtol=1e-9)


def test_sigmoid_vanishes_faster_than_tanh_and_relu_explodes_above_radius_one():
    cfg = gradflow.GradFlowConfig(cells=("rnn-tanh", "rnn-sigmoid", "rnn-relu"), steps=30, hidden=16, batch=8,
                                  seeds=1, train_steps=0, scales=(0.5, 1.5))
    rows = {(r["cell"], r["scale"]): r for r in gradflow.run(cfg, progress=lambda *a: None)["rows"] if r["phase"] == "init"}
    assert rows[("rnn-sigmoid", 0.5)]["rate_h"] < rows[("rnn-tanh", 0.5)]["rate_h"] < 1
    assert rows[("rnn-sigmoid", 0.5)]["verdict"] == "vanishes"
    assert rows[("rnn-relu", 1.5)]["verdict"] == "explodes" and rows[("rnn-relu", 0.5)]["verdict"] == "vanishes"


def test_cli_quick_writes_plots_table_and_report(tmp_path, capsys):
    assert main(["gradients", "--quick", "--cells", "rnn-sigmoid,lstm", "--out", str(tmp_path)]) == 0
    for f in ("gradients_init.png", "gradients_trained.png", "gradients.json", "report.html"):
        assert (tmp_path / f).is_file()
    data = json.loads((tmp_path / "gradients.json").read_text())
    assert any("rate_C" in r for r in data["rows"]) and len(data["findings"]) == 2
    assert "vanishes" in (tmp_path / "report.html").read_text()


def test_gate_bias_variants_start_with_the_gate_open():
    for name, block in (("lstm-f2", 1), ("gru-z2", 1)):
        cell = gradflow.make_cell(name, 3, 4)
        plain = gradflow.make_cell(name.split("-")[0], 3, 4)
        assert cell.bias_ih[block * 4 : (block + 1) * 4].mean() > plain.bias_ih[block * 4 : (block + 1) * 4].mean() + 1.5


def test_chrono_initialisation_spreads_memory_spans_up_to_the_horizon():
    cell = gradflow.make_cell("lstm-chrono", 3, 64, horizon=200)
    forget = cell.bias_ih[64:128]
    assert 0 <= forget.min() and forget.max() <= torch.log(torch.tensor(199.0)) and forget.std() > 0.5
    assert torch.equal(cell.bias_ih[:64], -forget)  # input gate: the negative
    gru = gradflow.make_cell("gru-chrono", 3, 64, horizon=200)
    assert gru.bias_ih[64:128].mean() > 3


def test_longrange_quick_runs_on_the_shared_loop_and_reports(tmp_path):
    from rnnlab.longrange import RecallTask

    task = RecallTask(length=6, symbols=4, distractors=3, steps_per_epoch=3, eval_size=50, seed=0)
    batch = next(task.batches("train", 5, True, torch.Generator().manual_seed(0)))
    assert torch.equal(batch["targets"], batch["ids"][:, 0] - 2) and batch["ids"].shape == (5, 6)
    assert (batch["ids"][:, 1:] >= 2 + 4).all() and (batch["ids"] < 2 + 4 + 3).all()  # distractors: their own symbols
    assert main(["longrange", "--quick", "--cells", "rnn-tanh,gru-z2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "longrange.json").read_text())
    assert {(r["cell"], r["length"]) for r in data["rows"]} == {(c, t) for c in ("rnn-tanh", "gru-z2") for t in (5, 30)}
    assert (tmp_path / "longrange.png").is_file() and (tmp_path / "report.html").is_file()
    assert (tmp_path / "rnn-tanh-T5" / "best.pt").is_file()  # trained through rnnlab.train.fit
