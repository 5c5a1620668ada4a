"""Routes of the lab that belong to no task: the gradient flow measured live.

``POST /api/gradients/flow`` with ``{"cell", "T", "radius", "hidden", "seed"}`` unrolls one freshly
initialised cell (``rnnlab.gradflow``'s cells, spectral radius and measurement) over T random
symbols and answers ||dL_T/dh_k|| for k = 0..T (and ||dL_T/dC_k|| for the LSTM), with the fitted
per-step rate. ``GET /api/gradients`` describes the options (default, range, choices, help in both
languages) as ``GET /api/tasks`` does a verb's: the page's form is built from it, declared once in
``FlowOptions``.
"""

import dataclasses
import time
from dataclasses import dataclass

import anyio
from fastapi import FastAPI
from pydantic import create_model

from ..options import Options, declared, option
from ..verbs import describe_option
from .routes import Body, _option_field

# The cells the page offers (rnnlab.gradflow.CELL_SPECS names): the vanilla RNN's three
# nonlinearities, the LSTM with torch's default initialisation, a forget bias of +2, or chrono, the GRU.
FLOW_CELLS = ("rnn-tanh", "rnn-sigmoid", "rnn-relu", "lstm", "lstm-f2", "lstm-chrono", "gru")


@dataclass(frozen=True)
class FlowOptions(Options):
    """One live gradient-flow measurement."""

    cell: str = option("rnn-tanh", "the cell (-f2: forget gate bias +2; -chrono: chrono initialisation)",
                       choices=FLOW_CELLS, zh="单元（-f2：遗忘门偏置 +2；-chrono：chrono 初始化）")
    T: int = option(100, "sequence length T", min=2, max=200, zh="序列长度 T")
    radius: float = option(1.0, "spectral radius of every recurrent weight block", min=0.1, max=3.0,
                           zh="每个循环权重块的谱半径")
    hidden: int = option(32, "hidden size", min=1, max=64, zh="隐藏层大小")
    seed: int = option(0, "random seed", min=0, max=2**31 - 1, zh="随机种子")


def measure_flow(opts: FlowOptions) -> dict:
    """||dL_T/dh_k|| for k = 0..T of one cell at initialisation (mean over a batch of 8), by
    ``rnnlab.gradflow``'s own functions; ``distance`` is T - k."""
    import torch
    from torch import nn

    from .. import gradflow

    start = time.perf_counter()
    cfg = gradflow.GradFlowConfig(cells=(opts.cell,), steps=opts.T, hidden=opts.hidden, batch=8, seeds=1,
                                  scales=(opts.radius,), seed=opts.seed)
    with torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(opts.seed)
        gen = torch.Generator().manual_seed(opts.seed)
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


def add_lab_routes(app: FastAPI) -> None:
    """``GET /api/gradients`` and ``POST /api/gradients/flow`` (one measurement at a time: they are
    small, and a class pressing the button together queues instead of sharing the cores)."""
    fields = {f.name: _option_field(f, opt) for f, opt in declared(FlowOptions)}
    FlowBody = create_model("GradientsFlowBody", __base__=Body, **fields)
    lane = anyio.CapacityLimiter(1)

    @app.get("/api/gradients")
    async def gradient_options():
        """The options of the live gradient flow, as GET /api/tasks describes a verb's."""
        return {"options": [describe_option(f, opt) for f, opt in declared(FlowOptions)], "cells": list(FLOW_CELLS)}

    @app.post("/api/gradients/flow", summary="||dL_T/dh_k|| against T - k, measured now")
    async def gradient_flow(body: FlowBody):
        opts = FlowOptions(**body.model_dump())
        return await anyio.to_thread.run_sync(measure_flow, opts, limiter=lane)
