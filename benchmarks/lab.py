"""The lab's checks and grading, timed and verified: ``rnnlab lab check`` of the key (every part, in
its box; target < 60 s on 2 cores), and ``rnnlab lab grade`` of N mixed submissions -- the key, each
typical mistake, the skeleton, an endless loop, a process that dies, a zip -- (target: 100 in under
15 minutes on 2 cores, every verdict right, every mistake named).

    python benchmarks/lab.py             # 100 submissions
    python benchmarks/lab.py --n 12      # a quick run
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import machine_info  # noqa: E402

from rnnlab.lab.checks import run_checks  # noqa: E402
from rnnlab.lab.grade import grade  # noqa: E402
from rnnlab.lab.mistakes import MISTAKES, apply  # noqa: E402
from rnnlab.lab.parts import PARTS  # noqa: E402
from rnnlab.lab.workspace import new_workspace  # noqa: E402


def make_class(root: Path, key: Path, n: int) -> dict[str, tuple[str, object]]:
    """n submissions cycling through the kinds -> name -> (kind, what its verdict must say)."""
    kinds = ["key", *[f"mistake {i}" for i in range(len(MISTAKES))], "skeleton", "loop", "dies", "zip"]
    expected = {}
    for i in range(n):
        kind = kinds[i % len(kinds)]
        name = f"s{i:03d}"
        ws = root / name
        if kind == "skeleton":
            new_workspace(ws, "en")
        else:
            shutil.copytree(key, ws)
        if kind.startswith("mistake"):
            m = MISTAKES[int(kind.split()[1])]
            f = ws / f"{m.part}.py"
            f.write_text(apply(f.read_text(encoding="utf-8"), m), encoding="utf-8")
            expected[name] = (kind, m)
        elif kind == "loop":
            f = ws / "gru_cell.py"
            f.write_text(f.read_text(encoding="utf-8").replace('"""One GRU step, written', 'while True:\n        pass\n    """'),
                         encoding="utf-8")
        elif kind == "dies":
            f = ws / "sampling.py"
            f.write_text(f.read_text(encoding="utf-8") + "\nimport os\nos._exit(9)\n", encoding="utf-8")
        elif kind == "zip":
            with zipfile.ZipFile(root / f"{name}.zip", "w") as z:
                for f in ws.iterdir():
                    z.write(f, f"{name}/{f.name}")
            shutil.rmtree(ws)
        expected.setdefault(name, (kind, None))
    return expected


def right(kind: str, m, row: dict, parts: list[str]) -> bool:
    scores = {p: float(row[p]) for p in parts}
    if kind in ("key", "zip"):
        return all(s == 1.0 for s in scores.values())
    if kind == "skeleton":
        return all(s == 0.0 for s in scores.values()) and "not written yet" in row[f"{parts[0]} feedback"]
    if kind == "loop":
        return scores["gru_cell"] == 0.0 and "longer than" in row["gru_cell feedback"] and scores["lstm_cell"] == 1.0
    if kind == "dies":
        return all(s == 0.0 for s in scores.values()) and "exit code" in row["sampling feedback"]
    others = all(s == 1.0 for p, s in scores.items() if p != m.part)
    return others and scores[m.part] < 1.0 and m.en in row[f"{m.part} feedback"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100, help="submissions to grade (default %(default)s)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--time-limit", type=int, default=20, help="seconds a part may run (the endless loops wait this)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the checking process (the boxes use one)")
    p.add_argument("--quick", action="store_true", help="16 submissions (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.n = 16
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_info()}")
    root = Path(tempfile.mkdtemp(prefix="rnnlab-lab-bench-"))
    try:
        key = new_workspace(root / "key", "en", solution=True)
        start = time.perf_counter()
        verdicts = run_checks(key, list(PARTS), seed=1)
        check_s = time.perf_counter() - start
        key_ok = all(v.ok for v in verdicts)
        subs = root / "class"
        subs.mkdir()
        expected = make_class(subs, key, args.n)
        start = time.perf_counter()
        grade(subs, root / "book", jobs=args.jobs, log=lambda *a: None, part_seconds=args.time_limit)
        grade_s = time.perf_counter() - start
        rows = {r["student"]: r for r in csv.DictReader(open(root / "book" / "gradebook.csv", encoding="utf-8"))}
        wrong = [name for name, (kind, m) in expected.items() if not right(kind, m, rows[name], list(PARTS))]
        mistakes = [name for name, (kind, m) in expected.items() if m is not None]
        named = [n for n in mistakes if n not in wrong]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    budget = 15 * 60 * args.n / 100
    print(f"lab check of the key, {len(PARTS)} parts: {check_s:.1f} s; every part passes: {key_ok}")
    print(f"lab grade of {args.n} submissions ({args.jobs} at once, {args.time_limit} s a part): {grade_s:.1f} s "
          f"({grade_s / args.n:.1f} s each); verdicts right: {args.n - len(wrong)} of {args.n}"
          + (f" (wrong: {', '.join(wrong[:8])})" if wrong else ""))
    print(f"mistakes named: {len(named)} of {len(mistakes)}")
    for what, ok in (("lab check of a whole workspace < 60 s", check_s < 60 and key_ok),
                     (f"lab grade of {args.n} < {budget / 60:.1f} min with every verdict right", grade_s < budget and not wrong),
                     ("every mistake caught with its named hint", len(named) == len(mistakes))):
        print(f"target: {what}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
