"""The lab's parts: what a student writes, taken from rnnlab's own code.

Each part is a file of the student's workspace holding some of rnnlab's own functions: the module's
docstring (the equations, the shapes, torch's parameter layout), the imports, and the functions with
their signatures and docstrings. In the skeleton the bodies of the functions to write raise
``NotImplementedError``; in the key (``rnnlab lab new --with-solution``) they are rnnlab's own
bodies, read from its source with ``inspect`` -- the key is not a second copy of the answers.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str  # also the file: <name>.py
    module: str  # the rnnlab module the part is taken from
    names: tuple[str, ...]  # its functions (and helpers) the file holds, in order
    blank: tuple[str, ...]  # those the student writes (functions, or Class.method)
    imports: str
    en: str
    zh: str


TORCH = "import torch\nimport torch.nn.functional as F\nfrom torch import Tensor\n"
NUMPY = "import numpy as np\n"
PARTS: dict[str, Part] = {p.name: p for p in (
    Part("tutorial_rnn", "rnnlab.nn.tutorial", ("TutorialRNN",), ("TutorialRNN.__init__", "TutorialRNN.forward"),
         "import torch\nfrom torch import Tensor, nn\n", "the PyTorch tutorial's RNN: i2h and i2o on concat(input, hidden)",
         "PyTorch 教程中的 RNN：i2h 与 i2o 作用于 concat(输入, 隐藏状态)"),
    Part("rnn_cell", "rnnlab.nn.rnn", ("_PHI", "rnn_step", "rnn_cell"), ("rnn_step", "rnn_cell"), TORCH,
         "the vanilla RNN cell (tanh, sigmoid, relu)", "普通 RNN 单元（tanh、sigmoid、relu）"),
    Part("lstm_cell", "rnnlab.nn.lstm", ("lstm_gates", "lstm_step", "lstm_cell"), ("lstm_gates", "lstm_step", "lstm_cell"),
         TORCH, "the LSTM cell from its gate equations", "按门控公式实现 LSTM 单元"),
    Part("gru_cell", "rnnlab.nn.gru", ("gru_gates", "gru_step", "gru_cell"), ("gru_gates", "gru_step", "gru_cell"),
         TORCH, "the GRU cell from its gate equations", "按门控公式实现 GRU 单元"),
    Part("bptt_rnn", "rnnlab.reference", ("PHI", "softmax", "output_layer_backward", "rnn_forward", "rnn_backward"),
         ("rnn_forward", "rnn_backward"), NUMPY, "backpropagation through time for the vanilla RNN, in NumPy",
         "用 NumPy 实现普通 RNN 的随时间反向传播（BPTT）"),
    Part("bptt_lstm", "rnnlab.reference", ("sigmoid", "softmax", "output_layer_backward", "lstm_forward",
                                           "lstm_backward"), ("lstm_forward", "lstm_backward"), NUMPY,
         "backpropagation through time for the LSTM, in NumPy", "用 NumPy 实现 LSTM 的随时间反向传播"),
    Part("sampling", "rnnlab.sampling", ("draw",), ("draw",), "import torch\n",
         "drawing the next character: temperature, top-k, top-p and the mask of what the form allows",
         "抽取下一个字：温度、top-k、top-p，以及体裁允许哪些字的掩码"),
    Part("preprocessing", "rnnlab.reviews", ("review_tokens",), ("review_tokens",), "",
         "a review's tokens: jieba's words without whitespace and stop words, the negations kept",
         "评论的分词结果：jieba 分出的词，去掉空白和停用词，但保留否定词等"),
)}


def _node_source(module_source: str, tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return ast.get_source_segment(module_source, node, padded=True)
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return ast.get_source_segment(module_source, node)
    raise LookupError(f"{name} is not a top-level name of the module")


def _blanked(source: str, blank: set[str], prefix: str = "") -> str:
    """``source`` with the bodies of the functions named in ``blank`` replaced by a docstring (kept)
    and ``raise NotImplementedError``."""
    tree = ast.parse(textwrap.dedent(source))
    lines = textwrap.dedent(source).splitlines()
    cuts = []  # (first body line, last body line, indent, name) of the bodies to replace
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            qual = next((f"{c.name}.{node.name}" for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                         and node in c.body), node.name)
            if isinstance(node, ast.FunctionDef) and (qual in blank or node.name in blank):
                body = node.body
                doc = 1 if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                                  ast.Constant) else 0
                start = body[doc].lineno if doc < len(body) else None
                if start is not None:
                    cuts.append((start, node.end_lineno, " " * body[doc].col_offset, node.name))
    for start, end, indent, name in sorted(cuts, reverse=True):
        lines[start - 1 : end] = [f'{indent}raise NotImplementedError("{name}: your code here (see the docstring)")']
    return "\n".join(lines) + "\n"


def source(part: Part, solution: bool) -> str:
    """The part's file: the equations, the imports, and the functions (blank bodies unless ``solution``)."""
    module = importlib.import_module(part.module)
    text = inspect.getsource(module)
    tree = ast.parse(text)
    doc = ast.get_docstring(tree) or ""
    pieces = [_node_source(text, tree, name) for name in part.names]
    body = "\n\n\n".join(pieces)
    if not solution:
        body = _blanked(body, set(part.blank))
    header = f'r"""{part.en}.\n\n{doc}\n"""\n\nfrom __future__ import annotations\n\n{part.imports}\n\n'
    return header + body.rstrip() + "\n"
