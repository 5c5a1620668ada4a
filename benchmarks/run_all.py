"""Run every benchmark one after another (never in parallel: they time the same cores) and write
``benchmarks/RESULTS.md`` with what each printed, the date, the machine and the commit.

    python benchmarks/run_all.py [--quick] [--only cells,contention,names,poems,sentiment,explain,serve,distributed,lab]
                                 [--poems-budget SECONDS | --poems-run RUN_DIR]
    python benchmarks/run_all.py --rebuild      # rewrite RESULTS.md from the sections, running nothing

Each benchmark's section is kept in ``benchmarks/results/<name>.md`` with its own date and commit,
and RESULTS.md is rebuilt from all of them, so ``--only`` refreshes one section and keeps the others.
``benchmarks/results/readme-tables.md`` (the measured tables that left the README, kept by hand) is
appended as it is.

``make bench`` runs it in full (40 minutes on 2 CPU cores); ``make bench-quick`` is the
smoke check (a few minutes). Every script prints its baseline(s), rnnlab, the ratio, wall time,
machine, seed, and each target of its issue as met or not met.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("cells", "contention", "names", "poems", "sentiment", "explain", "serve", "distributed", "lab")
KEPT = ("poems-30min", "names-folds", "names-awd", "sentiment-seeds", "sentiment-wd", "sentiment-snownlp-seeds", "pretrain", "awd", "readme-tables")  # kept sections (hand-run or by hand), after the benchmarks'


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               cwd=HERE, check=True).stdout.strip()
        return rev.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=",".join(SCRIPTS))
    p.add_argument("--poems-budget", type=float, default=900.0,
                   help="poems training seconds (default %(default)s, which keeps make bench near 45 minutes; 3600: the full target)")
    p.add_argument("--poems-run", help="measure the poems samples of this trained run (benchmarks/poems.py --run) "
                   "instead of training for --poems-budget")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="results file (default: benchmarks/RESULTS.md; with --quick RESULTS-quick.md, not kept in git)")
    p.add_argument("--rebuild", action="store_true", help="only rewrite the results file from the kept sections")
    args = p.parse_args(argv)
    args.out = args.out or str(HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md"))
    if args.rebuild:
        Path(args.out).write_text(assemble(Path(args.out).parent / ("results-quick" if args.quick else "results"), args.quick),
                                  encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    names = [s for s in args.only.split(",") if s]
    bad = [s for s in names if s not in SCRIPTS]
    if bad:
        print(f"run_all: unknown benchmark(s) {', '.join(bad)}; choose from {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from benchutil import machine_info

    import torch

    torch.set_num_threads(args.threads)
    sections, failed = [], []
    started, run_start = time.strftime("%Y-%m-%d %H:%M"), time.perf_counter()
    for name in names:
        # The server's --threads is per request (several run at once): one each keeps it from oversubscribing.
        # contention sets each policy's threads itself.
        cmd = [sys.executable, str(HERE / f"{name}.py")]
        cmd += [] if name == "contention" else ["--threads", "1" if name == "serve" else str(args.threads)]
        cmd += ["--all"] if name == "serve" else []  # serve: the mix, a classroom, a burst (--quick: small sizes)
        cmd += ["--quick"] if args.quick else []
        if name == "poems" and not args.quick:
            cmd += ["--run", args.poems_run] if args.poems_run else ["--budget", str(args.poems_budget)]
        print(f"== {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
        t, when = time.perf_counter(), f"{time.strftime('%Y-%m-%d %H:%M')}, commit {_commit()}"
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:  # show it as it comes, keep it for the file
            print(line, end="", flush=True)
            lines.append(line)
        code = proc.wait()
        if code:
            failed.append(name)
        sections.append((name, " ".join(["python", f"benchmarks/{name}.py", *cmd[2:]]), "".join(lines).rstrip(),
                         time.perf_counter() - t, code, when))
    sections_dir = Path(args.out).parent / ("results-quick" if args.quick else "results")
    sections_dir.mkdir(exist_ok=True)
    for name, cmd, text, seconds, code, when in sections:
        status = "" if code == 0 else f" -- FAILED with exit code {code}"
        (sections_dir / f"{name}.md").write_text("\n".join([
            f"## {name}{status}", "", f"`{cmd}` ({seconds / 60:.1f} min), run on {when}, "
            f"machine: {machine_info()}.", "", "```", text, "```", ""]), encoding="utf-8")
    if names == list(SCRIPTS):  # a whole run: its wall time is the suite's (issue: about 45 minutes)
        cmd = " ".join(["python benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)])
        (sections_dir / "suite.md").write_text(
            f"Whole suite: `{cmd}` took {(time.perf_counter() - run_start) / 60:.1f} min, started {started}, "
            f"commit {_commit()}{f', {len(failed)} failed' if failed else ''}.\n", encoding="utf-8")
    Path(args.out).write_text(assemble(sections_dir, args.quick), encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if failed else 0


def assemble(sections_dir: Path, quick: bool) -> str:
    """The results file: a header, then the kept sections (suite, each benchmark, the hand-kept ones)."""
    body = [f"# Benchmark results{' (QUICK smoke run: not the targets)' if quick else ''}", "",
            "Written by `benchmarks/run_all.py` (`make bench`) from the sections in "
            f"`benchmarks/{sections_dir.name}/`, each with the date, commit and machine it was measured on.", "",
            "Each section is what the script printed: baselines and rnnlab measured in the same run, ratios, and "
            "each issue target as met or not met.", ""]
    # poems-training: the poems section of the last run that trained (kept when --poems-run measures a trained run).
    for name in ("suite", "cells", "contention", "names", "poems-training", *SCRIPTS[3:], *KEPT):
        part = sections_dir / f"{name}.md"
        if part.is_file():
            body.append(part.read_text(encoding="utf-8"))
    return "\n".join(body)


if __name__ == "__main__":
    sys.exit(main())
