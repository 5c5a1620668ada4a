"""Routes of the lab that belong to no task: the gradient flow measured live.

``POST /api/gradients/flow`` with ``{"cell", "T", "radius", "hidden", "seed"}`` unrolls one freshly
initialised cell (``rnnlab.gradflow``'s cells, spectral radius and measurement) over T random
symbols and answers ||dL_T/dh_k|| for k = 0..T (and ||dL_T/dC_k|| for the LSTM), with the fitted
per-step rate. ``GET /api/gradients`` describes the options (default, range, choices, help in both
languages) as ``GET /api/tasks`` does a verb's: the page's form is built from it, declared once in
``FlowOptions``.

With ``rnnlab serve --lab DIR`` the cells include the student's own (``lab-lstm`` ...: the workspace's
``lstm_cell`` and the rest, each once its check passes, reloaded when its file changes), initialised
as rnnlab's cell of that name, so that the two curves can be laid over each other.
"""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from fastapi import FastAPI
from pydantic import create_model

from ..errors import UserError
from ..options import Options, declared, option
from ..verbs import describe_option
from .errors import ApiError
from .routes import Body, _option_field

# The cells the page offers (rnnlab.gradflow.CELL_SPECS names): the vanilla RNN's three
# nonlinearities, the LSTM with torch's default initialisation, a forget bias of +2, or chrono, the GRU.
FLOW_CELLS = ("rnn-tanh", "rnn-sigmoid", "rnn-relu", "lstm", "lstm-f2", "lstm-chrono", "gru")
# A student's own cells (``rnnlab serve --lab DIR``): the workspace's rnn_cell, lstm_cell, gru_cell.
LAB_FLOW_CELLS = ("lab-rnn-tanh", "lab-rnn-sigmoid", "lab-rnn-relu", "lab-lstm", "lab-gru")


class LabWorkspace:
    """The student's workspace a server shows (``--lab DIR``): each cell part's module, loaded after
    its check passes, and again when its file changes (the student edits it while the server runs)."""

    def __init__(self, folder: str) -> None:
        from ..lab.workspace import read_manifest

        self.folder = str(folder)
        self.parts = read_manifest(Path(folder))["parts"]  # UserError: not a workspace
        self._loaded: dict[str, tuple] = {}

    def cells(self) -> list[str]:
        from ..lab.layers import flow_kind

        return [c for c in LAB_FLOW_CELLS if f"{flow_kind(c)}_cell" in self.parts]

    def module(self, kind: str):
        from ..lab.layers import load_cell

        path = Path(self.folder) / f"{kind}_cell.py"
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            raise ApiError(400, f"cell lab-{kind}: {path} is missing") from None
        if self._loaded.get(kind, (None,))[0] != stamp:
            try:
                self._loaded[kind] = (stamp, load_cell(self.folder, kind))
            except UserError as e:
                raise ApiError(400, f"cell lab-{kind}: {e}") from None
        return self._loaded[kind][1]


@dataclass(frozen=True)
class FlowOptions(Options):
    """One live gradient-flow measurement."""

    cell: str = option("rnn-tanh", "the cell (-f2: forget gate bias +2; -chrono: chrono initialisation; lab-: "
                       "the student's own, rnnlab serve --lab)", choices=FLOW_CELLS + LAB_FLOW_CELLS,
                       zh="单元（-f2：遗忘门偏置 +2；-chrono：chrono 初始化；lab-：学生自己写的，rnnlab serve --lab）")
    T: int = option(100, "sequence length T", min=2, max=200, zh="序列长度 T")
    radius: float = option(1.0, "spectral radius of every recurrent weight block", min=0.1, max=3.0,
                           zh="每个循环权重块的谱半径")
    hidden: int = option(32, "hidden size", min=1, max=64, zh="隐藏层大小")
    seed: int = option(0, "random seed", min=0, max=2**31 - 1, zh="随机种子")


def measure_flow(opts: FlowOptions, lab: LabWorkspace | None = None) -> dict:
    """||dL_T/dh_k|| for k = 0..T of one cell at initialisation (mean over a batch of 8), by
    ``rnnlab.gradflow``'s own functions; ``distance`` is T - k. A ``lab-`` cell is the student's
    (``lab``), initialised as rnnlab's cell of that name."""
    import torch
    from torch import nn

    from .. import gradflow
    from ..lab.layers import flow_cell, flow_kind

    start = time.perf_counter()
    student = None
    if opts.cell in LAB_FLOW_CELLS:
        if lab is None:
            raise ApiError(400, f"cell {opts.cell}: this server shows no lab workspace (start it with rnnlab serve "
                                "--lab DIR)")
        if opts.cell not in lab.cells():
            raise ApiError(400, f"cell {opts.cell}: the workspace {lab.folder} has no {flow_kind(opts.cell)}_cell part")
        student = lab.module(flow_kind(opts.cell))  # before the seed: its check draws random numbers
    cfg = gradflow.GradFlowConfig(cells=(opts.cell.removeprefix("lab-"),), steps=opts.T, hidden=opts.hidden,
                                  batch=8, seeds=1, scales=(opts.radius,), seed=opts.seed)
    with torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(opts.seed)
        gen = torch.Generator().manual_seed(opts.seed)
        if student is not None:
            cell = flow_cell(student, opts.cell, cfg.symbols, opts.hidden, opts.T).double()
        else:
            cell = gradflow.make_cell(opts.cell, cfg.symbols, opts.hidden, opts.T).double()
        head = nn.Linear(opts.hidden, cfg.symbols).double()
        gradflow.set_spectral_radius(cell, opts.radius)
        x, y = gradflow.recall_batch(cfg, gen, torch.float64)
        norms = gradflow.gradient_norms(cell, head, x, y)
    rate = gradflow.fitted_rate(norms["h"])
    out = {**dataclasses.asdict(opts), "distance": list(range(opts.T, -1, -1)), "h": norms["h"].tolist(),
           "rate": rate, "verdict": gradflow.verdict(rate)}
    if "C" in norms:
        out["C"] = norms["C"].tolist()
        out["rate_C"] = gradflow.fitted_rate(norms["C"])
    out["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return out


def add_lab_routes(app: FastAPI, lab: LabWorkspace | None = None) -> None:
    """``GET /api/gradients`` and ``POST /api/gradients/flow`` (one measurement at a time: they are
    small, and a class pressing the button together queues instead of sharing the cores)."""
    fields = {f.name: _option_field(f, opt) for f, opt in declared(FlowOptions)}
    FlowBody = create_model("GradientsFlowBody", __base__=Body, **fields)
    lane = anyio.CapacityLimiter(1)

    @app.get("/api/gradients")
    async def gradient_options():
        """The options of the live gradient flow, as GET /api/tasks describes a verb's."""
        return {"options": [describe_option(f, opt) for f, opt in declared(FlowOptions)],
                "cells": list(FLOW_CELLS) + (lab.cells() if lab is not None else []),
                "lab": lab.folder if lab is not None else None}

    @app.post("/api/gradients/flow", summary="||dL_T/dh_k|| against T - k, measured now")
    async def gradient_flow(body: FlowBody):
        opts = FlowOptions(**body.model_dump())
        return await anyio.to_thread.run_sync(measure_flow, opts, lab, limiter=lane)
