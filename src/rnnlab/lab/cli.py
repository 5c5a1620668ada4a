"""``rnnlab lab``: ``new`` (a student's workspace, or the key), ``check`` (a workspace's parts, with
feedback), ``grade`` (a class's submissions -> a gradebook)."""

from __future__ import annotations

import json
import random
from pathlib import Path


def add_lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="the lab as a lab: a workspace to complete, checks that teach, a gradebook")
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=type(lab))
    new = lsub.add_parser("new", help="a student workspace (skeletons with the equations; --with-solution: the key)")
    new.add_argument("dir")
    new.add_argument("--lang", choices=("zh", "en"), default="zh", help="the handout's language (default zh)")
    new.add_argument("--parts", help="comma-separated parts (default: all)")
    new.add_argument("--notebook", action="store_true", help="also the parts as a Jupyter notebook (lab.ipynb)")
    new.add_argument("--with-solution", action="store_true", help="the teacher's key: rnnlab's own code filled in")
    new.set_defaults(func=cmd_new)
    check = lsub.add_parser("check", help="check a workspace's parts: what differs and the likely mistake")
    check.add_argument("dir", nargs="?", default=".")
    check.add_argument("part", nargs="?", help="one part (default: every part of the workspace)")
    check.add_argument("--seed", type=int, help="the inputs' seed (default: a new one each time, printed)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)
    grade = lsub.add_parser("grade", help="grade a folder of submissions (folders or .zip files), each in a box")
    grade.add_argument("submissions")
    grade.add_argument("--out", required=True, help="the gradebook's folder")
    grade.add_argument("--jobs", type=int, help="submissions checked at once (default: up to 2 cores)")
    grade.add_argument("--time-limit", type=int, default=60, metavar="S",
                       help="seconds each part of a submission may run (default %(default)s)")
    grade.set_defaults(func=cmd_grade)
    lab.set_defaults(func=lambda a: (lab.print_help(), 0)[1])


def cmd_new(args) -> int:
    from .workspace import new_workspace, parse_parts

    folder = new_workspace(Path(args.dir), args.lang, parse_parts(args.parts), args.notebook, args.with_solution)
    print(f"wrote {folder} ({'the key' if args.with_solution else 'a workspace'}); next: rnnlab lab check {folder}")
    return 0


def cmd_check(args) -> int:
    from ..errors import UserError
    from .checks import run_checks
    from .workspace import read_manifest

    folder = Path(args.dir)
    parts = read_manifest(folder)["parts"]
    if args.part:
        if args.part not in parts:
            raise UserError(f"{args.part!r}: not a part of this workspace ({', '.join(parts)})")
        parts = [args.part]
    if args.seed is not None and not 0 <= args.seed < 2**31:
        raise UserError(f"--seed {args.seed}: give a number from 0 to {2**31 - 1}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    verdicts = run_checks(folder, parts, seed)
    if args.json:
        print(json.dumps({"seed": seed, "parts": [{"part": v.part, "score": round(v.score, 3), "ok": v.ok,
                                                   "mistake": v.mistake, "feedback": v.lines} for v in verdicts]},
                         ensure_ascii=False, indent=2))
    else:
        for v in verdicts:
            print(f"{'PASS' if v.ok else 'FAIL'} {v.part} ({v.score:.2f})")
            for line in v.lines:
                print(f"    {line}")
        total = sum(v.score for v in verdicts)
        print(f"score {total:.2f} of {len(verdicts)} (seed {seed}; rnnlab lab check --seed {seed} repeats these inputs)")
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_grade(args) -> int:
    from .grade import grade

    from ..errors import UserError

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give 1 or more")
    if not 1 <= args.time_limit <= 3600:
        raise UserError(f"--time-limit {args.time_limit}: give 1 to 3600 seconds")
    print(f"gradebook: {grade(Path(args.submissions), Path(args.out), args.jobs, part_seconds=args.time_limit)}")
    return 0
