"""Train, export and describe the bundled models (``make models``).

Each model is a normal ``rnnlab train`` run with a fixed command and seed (no time limits: the result
depends on the seed alone, not on the machine's speed), exported with ``rnnlab export`` to
``models/<name>/`` (float16 safetensors + run.json), whose test figures are measured on the exported
weights. ``models/MODELS.md`` records the command, seed, commit, data and figures of each.

    python tools/make_models.py [--only names,poems] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--seed", "0", "--max-time", "0", "--no-progress"]
# name -> (what it is, the training command's arguments after `rnnlab train`)
MODELS = {
    # One network each (the default trains an ensemble of 5): the page traces it step by step, and the
    # three compare the cells.
    "names": ("names -> language, one network of the default BiLSTM (our cells; the default `rnnlab train names` "
              "trains an ensemble of 5, hence `--ensemble 1`)", ["names", "--ensemble", "1", *COMMON]),
    "names-rnn": ("names -> language, the same network with a vanilla tanh RNN",
                  ["names", "--cell", "rnn", "--ensemble", "1", *COMMON]),
    "names-gru": ("names -> language, the same network with a GRU", ["names", "--cell", "gru", "--ensemble", "1", *COMMON]),
    # The default sentiment model (words + characters, two BiGRUs with attention on word2vec vectors); rarer
    # tokens pruned (--min-count 3) to keep the download small.
    "sentiment": ("hotel-review sentiment, the default two-view ensemble", ["sentiment", "--min-count", "3", *COMMON]),
    # The default poems model for 8 epochs (what 15 minutes of training on 2 cores gives), no early stop,
    # on every poem: the bundled model was made before --forms kept the four regular forms by default.
    "poems": ("Tang poems language model, the default LSTM 384 with adaptive softmax, 8 epochs on every poem "
              "(`--forms all`; the default keeps the four regular forms)",
              ["poems", "--epochs", "8", "--patience", "0", "--forms", "all", *COMMON]),
}


def git(*args: str) -> str:
    r = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", default="runs/models", help="where the training runs go (default %(default)s)")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    bad = [n for n in names if n not in MODELS]
    if bad:
        print(f"make_models: unknown model(s) {', '.join(bad)}", file=sys.stderr)
        return 2
    rnnlab = [sys.executable, "-m", "rnnlab"]
    models = ROOT / "models"
    for name in names:
        what, train_args = MODELS[name]
        run_dir = ROOT / args.runs / name
        if run_dir.exists():
            subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        cmd = [*rnnlab, "train", *train_args, "--threads", str(args.threads), "--out", str(run_dir)]
        # models/ itself is what this command rewrites: only changes elsewhere make the commit unfaithful
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)models")
        commit = git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if changed else "")
        print(f"== {name}: rnnlab train {' '.join(train_args)}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        subprocess.run([*rnnlab, "export", "--run", str(run_dir), "--to", str(models / name)], check=True, cwd=ROOT)
        meta = json.loads((models / name / "run.json").read_text(encoding="utf-8"))
        meta["made_by"] = {"what": what, "command": "rnnlab train " + shlex.join(train_args), "commit": commit,
                           "date": time.strftime("%Y-%m-%d %H:%M"), "training_wall_s": round(seconds, 1),
                           "threads": args.threads}
        (models / name / "run.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_index(models)
    return 0


def _figures(test: dict) -> str:
    if "accuracy" in test:
        extra = f", ROC-AUC {test['roc_auc']:.4f}" if "roc_auc" in test else ""
        return f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}{extra}"
    s = test.get("samples", {})
    return (f"test perplexity {test['test_perplexity']:.2f}; free samples {s.get('well_formed', 0):.1%} well-formed, "
            f"distinct lines {s.get('distinct_lines', 0):.3f}, copied lines {s.get('copy_rate', 0):.1%}")


def _curves(folder: Path) -> str:
    """What the model's metrics.jsonl (its training curves, shipped beside it) holds."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return "not shipped (exported before `rnnlab export` copied them)"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return f"`metrics.jsonl`, {len(rows)} epochs (the Runs tab of `rnnlab serve` draws them)"


def write_index(models: Path) -> None:
    rows = []
    for folder in sorted(p for p in models.iterdir() if (p / "run.json").is_file()):
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        made = meta.get("made_by", {})
        size = (folder / "model.safetensors").stat().st_size
        rows.append(f"## {folder.name}\n\n{made.get('what', meta['task'])}.\n\n"
                    f"- command: `{made.get('command', '?')}` then `rnnlab export --run RUN --to models/{folder.name}`\n"
                    f"- seed 0, commit {made.get('commit', '?')} (HEAD of main when recorded), {made.get('date', '?')}, "
                    f"training {made.get('training_wall_s', '?')} s with {made.get('threads', '?')} threads\n"
                    f"- data: the bundled `data/` (see data/SOURCES.md), the task's default split\n"
                    f"- weights: {meta.get('weights')}, {size / 1e6:.1f} MB\n"
                    f"- training curves: {_curves(folder)}\n"
                    f"- measured on the exported weights: {_figures(meta.get('test', {}))}\n")
    text = ("# Bundled models\n\nMade by `make models` (`tools/make_models.py`): each is an `rnnlab train` run with "
            "a fixed command and seed, exported as float16 safetensors weights plus `run.json` (task, configs, "
            "vocabulary, labels, and the test figures of the exported weights, which `tests/test_models.py` "
            "re-checks). `--run NAME` in any command means `models/NAME`.\n\n" + "\n".join(rows))
    (models / "MODELS.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
