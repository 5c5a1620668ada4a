"""A student's cell in rnnlab's layer machinery: ``rnnlab train names --lab DIR --cell lstm`` trains
with the ``lstm_step`` (``rnn_step``, ``gru_step``) of the workspace's ``lstm_cell.py``, stepped over
time by autograd inside rnnlab.nn's layer (packing, both directions, stacked layers, torch's
parameter names), and writes an ordinary run folder and report.

The workspace's code runs in this process (it is the student's own code on their own machine); it
must pass its part's check first."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import UserError
from ..nn import GRU, LSTM, RNN
from ..nn.base import replay


def load_cell(folder: str, cell: str):
    """The workspace's module for ``cell`` (rnn, lstm, gru), after its part's check passed."""
    from .checks import run_checks, run_here
    from .workspace import read_manifest

    part = f"{cell}_cell"
    if part not in read_manifest(Path(folder))["parts"]:
        raise UserError(f"--lab {folder}: the workspace has no {part} part")
    (verdict,) = run_checks(Path(folder), [part], seed=0, runner=run_here)
    if verdict.score < 1.0:
        raise UserError(f"--lab {folder}: {part}.py does not pass its check yet ({verdict.lines[0]}); "
                        f"see rnnlab lab check {folder} {part}")
    spec = importlib.util.spec_from_file_location(f"lab_{part}", Path(folder) / f"{part}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def student_layer(cell: str, folder: str, input_size: int, hidden_size: int, **kwargs):
    """rnnlab.nn's RNN/LSTM/GRU whose recurrence is the student's step function."""
    mod = load_cell(folder, cell)
    base = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[cell]

    class StudentLayer(base):
        def recurrence(self, xg, state, w_hh, b_hh, mask, w_hr=None):
            if cell == "lstm":
                step = lambda x, h, c: tuple(mod.lstm_step(x, h, c, w_hh, b_hh))  # noqa: E731
            elif cell == "gru":
                step = lambda x, h: (mod.gru_step(x, h, w_hh, b_hh),)  # noqa: E731
            else:
                step = lambda x, h: (mod.rnn_step(x, h, w_hh, b_hh, self.nonlinearity),)  # noqa: E731
            out, *final = replay(step, xg, state, mask)
            return out, tuple(final)

    StudentLayer.__name__ = StudentLayer.__qualname__ = f"Lab{base.__name__}"
    StudentLayer.lab_functions = mod  # what traces step through (a class attribute: a copied model shares it)
    return StudentLayer(input_size, hidden_size, **kwargs)


def flow_kind(name: str) -> str:
    """rnn, lstm or gru: the part a lab flow cell (``lab-lstm`` ...) comes from."""
    return name.removeprefix("lab-").split("-")[0]


def flow_cell(mod, name: str, input_size: int, hidden: int, horizon: int = 100):
    """A one-step cell for ``rnnlab.gradflow`` (``name``: ``lab-`` and a gradflow cell: ``lab-lstm``, ``lab-rnn-relu`` ...) whose step is the
    workspace module ``mod``'s ``rnn_cell`` / ``lstm_cell`` / ``gru_cell`` (``load_cell``), with the
    parameters (and initialisation) of rnnlab's cell of that name, so that a correct cell measures
    exactly what rnnlab's does."""
    from .. import gradflow

    own = gradflow.make_cell(name.removeprefix("lab-"), input_size, hidden, horizon)
    kind = flow_kind(name)

    class StudentCell(type(own)):
        def forward(self, input, hx=None):
            if kind == "lstm":
                return tuple(mod.lstm_cell(input, *hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
            if kind == "gru":
                return mod.gru_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
            return mod.rnn_cell(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)

    own.__class__ = StudentCell
    return own
