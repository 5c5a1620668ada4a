"""``rnnlab lab new DIR``: a student's workspace -- the handout (README, Chinese or English), one file
per part with the equations in its docstring and blanks to fill, ``answers.md`` for the written
questions, a manifest, and with ``--notebook`` the same as a Jupyter notebook. ``--with-solution``
writes the teacher's key instead (rnnlab's own code, rnnlab.lab.parts)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..files import folder_for_writing
from .parts import PARTS, source

FORMAT = "rnnlab-lab-1"
MANIFEST = ".rnnlab-lab.json"
QUESTIONS = {
    "en": ["Which gradient problem does each activation cause in a vanilla RNN -- sigmoid, tanh, ReLU -- and why "
           "(write dL_T/dh_k as a product of Jacobians)? Cite the figures `rnnlab gradients` measures.",
           "Why does the LSTM's cell path carry a gradient across many steps (what is dC_t/dC_{t-1})? Cite "
           "`rnnlab longrange`'s results for the forget-gate bias or chrono initialisation.",
           "What does the temperature do to the poems your sampler writes? Give two poems of the same seed."],
    "zh": ["普通 RNN 中 sigmoid、tanh、ReLU 三种激活函数分别会引起哪种梯度问题？为什么（把 dL_T/dh_k 写成雅可比矩阵的乘积）？"
           "引用 `rnnlab gradients` 测得的数据。",
           "为什么 LSTM 的细胞路径能把梯度传过很多步（dC_t/dC_{t-1} 是什么）？引用 `rnnlab longrange` 中遗忘门偏置或 chrono "
           "初始化的结果。",
           "温度对你的采样器写出的诗有什么影响？给出同一随机种子下的两首诗。"],
}
HANDOUT = {
    "en": ("# Recurrent networks lab\n\nWrite the recurrent cells, backpropagation through time and the poem sampler from "
           "their equations. Each file below holds one part: its docstring gives the equations, the shapes and torch's "
           "parameter layout; replace each `raise NotImplementedError` with your code. You may use torch's tensor "
           "operations (`F.linear`, `torch.sigmoid`, ...) and NumPy, never a ready-made recurrent layer "
           "(`torch.nn.LSTM`, `rnnlab.nn`, ...): a part that calls one is refused.\n\n## Steps\n\n{parts}\n\n"
           "## How to check\n\n    rnnlab lab check .            # every part\n    rnnlab lab check . lstm_cell  # one part\n\n"
           "Each check runs your code on random sizes and inputs, compares every output and gradient with the "
           "reference, names the first thing that differs and, when it recognises it, the mistake. The cells also "
           "train a short names -> language model. Then answer the questions in `answers.md`.\n\n"
           "## Your cell, trained and in the page\n\nOnce a cell passes its check:\n\n"
           "    rnnlab train names --lab . --cell lstm --out runs/my-lstm   # trains with your lstm_cell.py\n"
           "    rnnlab serve --lab .                                         # the page at http://127.0.0.1:8000/\n\n"
           "The page then shows your run in the Names tab (its gates, step by step, computed by your code) and your "
           "cells in the Gradients tab, beside rnnlab's.\n"),
    "zh": ("# 循环神经网络实验\n\n按公式实现循环神经单元、随时间反向传播和写诗的采样器。下面每个文件是一个部分：文档字符串给出公式、"
           "张量形状和 torch 的参数排列；把每个 `raise NotImplementedError` 换成你的代码。可以使用 torch 的张量运算"
           "（`F.linear`、`torch.sigmoid` 等）和 NumPy，不能调用现成的循环层（`torch.nn.LSTM`、`rnnlab.nn` 等）：调用了的部分不予评分。\n\n"
           "## 步骤\n\n{parts}\n\n## 如何检查\n\n    rnnlab lab check .            # 检查所有部分\n"
           "    rnnlab lab check . lstm_cell  # 只检查一个部分\n\n检查会用随机的尺寸和输入运行你的代码，与参考实现比较每个输出和梯度，"
           "指出第一个不同之处，能识别时还会说出可能的错误。各个单元还会用姓名数据做一次简短的训练。最后回答 `answers.md` 中的问题。\n\n"
           "## 用你的单元训练，并在网页里看\n\n某个单元通过检查后：\n\n"
           "    rnnlab train names --lab . --cell lstm --out runs/my-lstm   # 用你的 lstm_cell.py 训练\n"
           "    rnnlab serve --lab .                                         # 网页：http://127.0.0.1:8000/\n\n"
           "网页的“姓名”标签页会列出你的运行（逐步查看的门由你的代码算出），“梯度”标签页里你的单元与 rnnlab 的并列。\n"),
}


def parse_parts(text: str | None) -> list[str]:
    if not text:
        return list(PARTS)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise UserError(f"--parts {text!r}: give a comma-separated list from {', '.join(PARTS)}")
    return parts


def new_workspace(folder: Path, lang: str = "zh", parts: list[str] | None = None, notebook: bool = False,
                  solution: bool = False) -> Path:
    """Write a workspace into ``folder`` (new or empty) and return it."""
    folder = Path(folder)
    folder_for_writing(folder, "DIR", create=False)
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"{folder}: the folder holds files already; give a new or empty folder")
    folder_for_writing(folder, "DIR")
    parts = parts or list(PARTS)
    for name in parts:
        (folder / f"{name}.py").write_text(source(PARTS[name], solution), encoding="utf-8")
    steps = "\n".join(f"{i}. `{p}.py`: {getattr(PARTS[p], lang)}" for i, p in enumerate(parts, 1))
    (folder / "README.md").write_text(HANDOUT[lang].format(parts=steps), encoding="utf-8")
    answers = "\n\n".join(f"## {i}. {q}\n\n" for i, q in enumerate(QUESTIONS[lang], 1))
    (folder / "answers.md").write_text(("# Answers\n\n" if lang == "en" else "# 回答\n\n") + answers, encoding="utf-8")
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "parts": parts, "lang": lang,
                                                "solution": solution}, indent=2), encoding="utf-8")
    if notebook:
        _notebook(folder, parts, lang)
    return folder


def _notebook(folder: Path, parts: list[str], lang: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell((folder / "README.md").read_text(encoding="utf-8")))
    for p in parts:
        code = (folder / f"{p}.py").read_text(encoding="utf-8")
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {p}: {getattr(PARTS[p], lang)}"))
        nb.cells.append(nbformat.v4.new_code_cell(f"%%writefile {p}.py\n{code}"))
        nb.cells.append(nbformat.v4.new_code_cell(f"!rnnlab lab check . {p}"))
    nbformat.write(nb, str(folder / "lab.ipynb"))


def read_manifest(folder: Path) -> dict:
    """The workspace's manifest, checked: a one-line error for a folder that is not a workspace of this
    version."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such folder")
    if not path.is_file():
        raise UserError(f"{folder}: not an rnnlab lab workspace (no {MANIFEST}; rnnlab lab new DIR makes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: damaged ({type(e).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: a workspace of another version ({data.get('format') if isinstance(data, dict) else '?'}"
                        f"); this rnnlab checks {FORMAT}")
    parts = data.get("parts")
    if not isinstance(parts, list) or not all(p in PARTS for p in parts):
        raise UserError(f"{path}: its parts {parts!r} are not parts of this lab ({', '.join(PARTS)})")
    return data
