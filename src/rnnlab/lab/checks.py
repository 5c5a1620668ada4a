"""Checking a workspace: each part's file read (syntax, and no call of a ready-made recurrent layer),
run in the box on inputs drawn from a seed, and compared with the key -- rnnlab's own functions,
run here, never in the box. A part that differs is compared with each typical mistake of it
(rnnlab.lab.mistakes), and the feedback names the first output, step or parameter that differs, by
how much, and the mistake it matches. The cells also train a short names -> language model."""

from __future__ import annotations

import ast
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import probes, sandbox
from .mistakes import apply, mistakes_of
from .parts import PARTS, source

# What a part may not call: the ready-made layers that would do the lesson for it.
FORBIDDEN = {"LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "lstm", "gru", "rnn_tanh", "rnn_relu", "_VF",
             "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}
TRAIN_ACCURACY = 0.75  # the short names training with a student's cell must reach this (3 languages)
PART_SECONDS = 60


@dataclass
class Verdict:
    part: str
    score: float = 0.0  # 0..1
    lines: list[str] = field(default_factory=list)
    mistake: str | None = None

    @property
    def ok(self) -> bool:
        return self.score >= 1.0


def static_problem(path: Path, part: str) -> str | None:
    """A file that cannot be checked, in one line: missing, not Python, or calling a ready-made layer."""
    if not path.is_file():
        return f"{path.name}: missing (rnnlab lab new writes it; restore it from a fresh workspace)"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError) as e:
        line = getattr(e, "lineno", None)
        return f"{path.name}{f', line {line}' if line else ''}: not valid Python ({getattr(e, 'msg', e)})"
    for node in ast.walk(tree):
        used = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(m and m.split(".")[0] == "rnnlab" for m in mods):
                return f"{path.name}, line {node.lineno}: imports rnnlab; write the equations yourself"
        elif used in FORBIDDEN and part not in ("sampling", "preprocessing") and not _defined_here(tree, used):
            return (f"{path.name}, line {node.lineno}: calls {used}, a ready-made recurrent layer; compute the "
                    "equations yourself (refused)")
    return None


def _defined_here(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in tree.body)


def names_data(seed: int) -> dict[str, np.ndarray]:
    """Three languages of the bundled names (seeded split): what the cells' short training reads."""
    from ..files import default_data_dir

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, language in enumerate(("Japanese", "Russian", "Italian")):
        lines = sorted({n.strip() for n in (default_data_dir() / "names" / f"{language}.txt").read_text(
            encoding="utf-8").splitlines() if n.strip()})
        picked = rng.permutation(len(lines))[:400]
        texts += [lines[i][:12] for i in picked]
        labels += [label] * len(picked)
    chars = sorted({c for t in texts for c in t})
    order = rng.permutation(len(texts))
    ids = np.zeros((len(texts), 12), dtype=np.int64)
    for row, i in enumerate(order):
        ids[row, : len(texts[i])] = [chars.index(c) for c in texts[i]]
    lengths = np.array([len(texts[i]) for i in order])
    labels = np.array([labels[i] for i in order])
    cut = len(texts) * 3 // 4
    return {"ids": ids[:cut], "lengths": lengths[:cut], "labels": labels[:cut], "test_ids": ids[cut:],
            "test_lengths": lengths[cut:], "test_labels": labels[cut:],
            "sizes": np.array([len(chars), 3, 32, 5]), "seed": np.array([seed])}


def key_module(part: str, text: str | None = None):
    """The key (or a mistake made in it) as a module, run here: rnnlab's own code."""
    import types

    mod = types.ModuleType(f"key_{part}")
    exec(compile(text or source(PARTS[part], True), f"<key {part}>", "exec"), mod.__dict__)  # noqa: S102
    return mod


def run_checks(workspace: Path, parts: list[str], seed: int, hidden: bool = False,
               limits: sandbox.Limits = sandbox.Limits(), part_seconds: int = PART_SECONDS, runner=None) -> list[Verdict]:
    """Every part of ``parts`` checked -> a verdict each (also for parts that could not run).
    ``runner(workspace, parts, inputs, jobs, limits)`` runs the student's code: in the box (default)."""
    verdicts, runnable = {}, []
    for part in parts:
        problem = static_problem(workspace / f"{part}.py", part)
        if problem:
            verdicts[part] = Verdict(part, 0.0, [problem])
        else:
            runnable.append(part)
    inputs, jobs = {}, []
    for i, part in enumerate(runnable):
        x = probes.inputs(part, seed + i, hidden)
        inputs.update({f"{part}/{k}": v for k, v in x.items()})
        jobs.append({"part": part, "kind": "probe", "prefix": f"{part}/", "seconds": part_seconds})
        if part == "sampling" and _have_poems_model():
            inputs[f"{part}.poem/seed"] = np.array([seed + 7])
            jobs.append({"part": part, "kind": "poem", "prefix": f"{part}.poem/", "seconds": part_seconds})
        if part in probes.CELL_GATES:
            data = names_data(seed + 100 + i)
            inputs.update({f"{part}.train/{k}": v for k, v in data.items() if not k.startswith("test_labels")})
            jobs.append({"part": part, "kind": "train", "prefix": f"{part}.train/", "seconds": part_seconds})
    results, errors, crashed = (runner or run_in_box)(workspace, runnable, inputs, jobs, limits)
    for part in runnable:
        verdicts[part] = _judge(part, results, errors, crashed, probes.inputs(part, seed + runnable.index(part), hidden),
                                seed + 100 + runnable.index(part))
    return [verdicts[p] for p in parts]


def run_here(workspace: Path, parts: list[str], inputs: dict, jobs: list, limits) -> tuple[dict, dict, str | None]:
    """The probes run in this process (no box, no training): for code this process may trust -- a
    student's own workspace on their own machine (``train --lab``), or the tests' own mistakes."""
    import importlib.util

    results, errors = {}, {}
    for job in (j for j in jobs if j["kind"] == "probe"):
        x = {k[len(job["prefix"]):]: v for k, v in inputs.items() if k.startswith(job["prefix"])}
        try:
            spec = importlib.util.spec_from_file_location(f"here_{job['part']}", workspace / f"{job['part']}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            results.update({job["prefix"] + k: v for k, v in probes.probe(job["part"], mod, x).items()})
        except Exception as e:  # noqa: BLE001 -- the student's code may raise anything
            errors[job["prefix"]] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return results, errors, None


def run_in_box(workspace: Path, parts: list[str], inputs: dict, jobs: list, limits) -> tuple[dict, dict, str | None]:
    """The jobs run on a scratch copy in the box -> (arrays, errors by job, why the box failed as a whole)."""
    if not jobs:
        return {}, {}, None
    box = sandbox.scratch_copy(workspace, [f"{p}.py" for p in parts])
    try:
        np.savez(box / "request.npz", **inputs)
        (box / "request.json").write_text(json.dumps({"jobs": jobs}))
        code, tail = sandbox.run(box, ["request.npz"], limits)
        crashed = None
        if code is None:
            crashed = f"stopped after {limits.wall:.0f} s: the code did not finish (an endless loop?)"
        elif code != 0 or not (box / "result.json").is_file():
            last = (tail.strip().splitlines() or ["no message"])[-1][:200]
            crashed = f"the checking process ended with exit code {code} ({last})"
        results, errors = {}, {}
        if crashed is None:
            with np.load(box / "result.npz", allow_pickle=False) as f:  # never unpickle what the box wrote
                results = {k: f[k] for k in f.files}
            said = json.loads((box / "result.json").read_text()[:1_000_000])
            errors = {str(k): str(v)[:400] for k, v in (said.get("errors") or {}).items()} if isinstance(said, dict) else {}
        return results, errors, crashed
    except (OSError, ValueError) as e:
        return {}, {}, f"the box's answer could not be read ({type(e).__name__})"
    finally:
        sandbox.remove(box)


def _judge(part: str, results: dict, errors: dict, crashed: str | None, x: dict, train_seed: int) -> Verdict:
    v = Verdict(part)
    prefix = f"{part}/"
    if crashed or prefix in errors:
        why = crashed or errors[prefix]
        v.lines.append(_hint_for_error(why))
        return v
    got = {k[len(prefix):]: val for k, val in results.items() if k.startswith(prefix)}
    want = probes.probe(part, key_module(part), x)
    problems = compare(part, got, want, x)
    if problems:
        v.lines += problems[:3]
        v.mistake = diagnose(part, got, x)
        if v.mistake:
            m = next(m for m in mistakes_of(part) if m.name == v.mistake)
            v.lines.append(f"likely mistake: {m.en} / {m.zh}")
        v.score = 0.25 * _passed_share(part, got, want, x)
        return v
    v.lines.append(PASSED.get(part, "outputs and gradients match the reference (random sizes, seed-drawn inputs)"))
    v.score = 1.0
    if part in probes.CELL_GATES and f"{part}.train/test logits" in results or f"{part}.train/" in errors:
        v.score, line = _training(part, results, errors, train_seed)
        v.lines.append(line)
    if part == "sampling" and (f"{part}.poem/poem" in results or f"{part}.poem/" in errors):
        v.score, line = _poem(results, errors)
        v.lines.append(line)
    return v


PASSED = {"sampling": "the draws follow the distribution the settings give (mask, temperature, top-k, top-p)",
          "preprocessing": "the tokens match the reference on hotel reviews the workspace does not hold"}


def _have_poems_model() -> bool:
    from ..files import models_dir

    return (models_dir() / "poems" / "run.json").is_file()


def _poem(results: dict, errors: dict) -> tuple[float, str]:
    """The poems your sampler wrote under the 5x4 form's rules must keep the form and rhyme."""
    from ..verse import check_poem

    if "sampling.poem/poem" not in results:
        return 0.7, f"a poem with your sampler failed: {errors.get('sampling.poem/', 'no result')}"
    poems = "".join(chr(int(c)) for c in results["sampling.poem/poem"]).split("\n")
    bad = [p for p in poems if not check_poem(p)["regulated"]]
    if bad:
        return 0.7, f"a 5x4 poem written with your sampler breaks the form's rules: {bad[0]}"
    return 1.0, f"5x4 poems written with your sampler keep the form, the rhyme and the tones: {poems[0]}"


def _training(part: str, results: dict, errors: dict, seed: int) -> tuple[float, str]:
    key = f"{part}.train/test logits"
    if key not in results:
        return 0.7, f"names training with your cell failed: {errors.get(f'{part}.train/', 'no result')}"
    labels = names_data(seed)["test_labels"]
    accuracy = float((results[key].argmax(1) == labels).mean())
    if accuracy >= TRAIN_ACCURACY:
        return 1.0, f"a short names training with your cell: test accuracy {accuracy:.2f} (needs {TRAIN_ACCURACY})"
    return 0.7, f"a short names training with your cell reached only {accuracy:.2f} (needs {TRAIN_ACCURACY})"


def compare(part: str, got: dict, want: dict, x: dict) -> list[str]:
    """What differs, first things first: the output (and time step, unit) or parameter gradient, by how much."""
    if part == "sampling":
        return _compare_draws(got, want, x)
    if part == "preprocessing":
        return _compare_tokens(got, want)
    out = []
    for name, w in want.items():
        g = got.get(name)
        if g is None or g.shape != w.shape:
            out.append(f"{name}: shape {None if g is None else tuple(g.shape)}, expected {tuple(w.shape)}")
            continue
        if not np.all(np.isfinite(g)):
            out.append(f"{name}: holds NaN or inf")
            continue
        bad = ~np.isclose(g, w, rtol=1e-5, atol=1e-7)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f" first at time step {first[0]}" if name.endswith(("h", "c")) and len(first) == 3 else \
                f" first at index {first}"
            out.append(f"{name} differs{where}: max |difference| {np.abs(g - w).max():.3g}")
    return out


def _compare_tokens(got: dict, want: dict) -> list[str]:
    """The first review (and token) whose tokens differ from the reference's."""
    if "tokens" not in got:
        return ["no tokens came back"]
    mine, ours = probes.tokens_of(got["tokens"]), probes.tokens_of(want["tokens"])
    for k, (a, b) in enumerate(zip(mine, ours)):
        if a != b:
            at = next((i for i, (p, q) in enumerate(zip(a, b)) if p != q), min(len(a), len(b)))
            shown = lambda t: " ".join(repr(w) for w in t[max(0, at - 2) : at + 3]) or "(nothing)"  # noqa: E731
            return [f"review {k + 1} ({''.join(ours[k])[:30]}...): token {at + 1} on: yours {shown(a)}, expected "
                    f"{shown(b)} ({len(a)} tokens, expected {len(b)})"]
    return [] if len(mine) == len(ours) else [f"{len(mine)} reviews came back, expected {len(ours)}"]


def _compare_draws(got: dict, want: dict, x: dict) -> list[str]:
    out = []
    allowed = x["allowed"]
    for name, w in want.items():
        g = got.get(name)
        if g is None or g.shape != w.shape:
            out.append(f"{name}: no draws of the expected shape")
            continue
        if (g[~allowed] > 0).any():
            out.append(f"{name}: drew characters the mask does not allow")
        elif "top_k=3" in name and ((g > 0).sum(1) > 3).any():
            out.append(f"{name}: drew more than the 3 likeliest characters")
        tv = 0.5 * np.abs(g - w).sum(1).max()
        if tv > 0.1:
            out.append(f"{name}: the frequencies differ from the expected distribution (total variation {tv:.2f})")
    return out


def diagnose(part: str, got: dict, x: dict) -> str | None:
    """The typical mistake whose output matches the student's (on the same inputs), if one does."""
    key = source(PARTS[part], True)
    for m in mistakes_of(part):
        try:
            wrong = probes.probe(part, key_module(part, apply(key, m)), x)
        except Exception:  # noqa: BLE001 -- a mistake that cannot even run on these inputs matches nothing
            continue
        if _same_draws(got, wrong) if part == "sampling" else not compare(part, got, wrong, x):
            return m.name
    return None


def _same_draws(got: dict, wrong: dict) -> bool:
    """Two samplers' frequencies agree (within the noise of 2,000 draws) under every setting."""
    return all(k in got and got[k].shape == w.shape and 0.5 * np.abs(got[k] - w).sum(1).max() <= 0.1
               for k, w in wrong.items())


def _passed_share(part: str, got: dict, want: dict, x: dict) -> float:
    ok = sum(not compare(part, {k: got[k]} if k in got else {}, {k: v}, x) for k, v in want.items())
    return ok / max(len(want), 1)


def _hint_for_error(why: str) -> str:
    if why.startswith("NotImplementedError"):
        return f"not written yet: {why.removeprefix('NotImplementedError: ')}"
    if "shapes cannot be multiplied" in why or "size of tensor" in why or "shapes" in why and "align" in why:
        return f"a shape does not fit: {why} (F.linear(x, W) computes x W^T; W is (out, in))"
    return why


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start
