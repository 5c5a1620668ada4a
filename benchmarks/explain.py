"""Sentiment explanations: how far the cheap measures agree with occlusion, the exact one.

For bundled hotel reviews (drawn with ``--seed``) and the bundled sentiment model, every word is
taken out once (occlusion: the drop in the predicted label's probability), and one backward pass
gives, per word, the norm of the gradient of the label's log-probability with respect to the word's
input vectors (both views, every member) and gradient x input. Printed:

* ranking: the share of occlusion's five strongest words (by |effect|) among the K words of largest
  gradient norm -- what ``--explain auto`` takes out for a review longer than ``OCCLUSION_UP_TO``
  words (K = ``RANKED``) -- for K = 8, 12, 16, 24, over reviews of 10 words or more and over the
  reviews longer than ``OCCLUSION_UP_TO`` words;
* gradient x input (``--explain gradient``): on occlusion's five strongest words, how often its sign
  is occlusion's, and how many of its three strongest words are occlusion's three;
* attention weights (the model pools by attention): how many of its five largest are occlusion's five.

These are the figures behind the default (``rnnlab.tasks.sentiment.Explainer``); there is no target.

    python benchmarks/explain.py [--reviews 60] [--long 40] [--seed 1] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import torch

from benchutil import machine_info, print_table
from rnnlab.tasks.sentiment import OCCLUSION_UP_TO, RANKED, encode_views

ROOT = Path(__file__).resolve().parent.parent
KS = (8, 12, 16, 24)


def share(a, b, n: int) -> float:
    """|top n of a ∩ top n of b| / n, both ranked by absolute value, largest first."""
    return len(set(a.abs().argsort(descending=True)[:n].tolist()) & set(b.abs().argsort(descending=True)[:n].tolist())) / n


def measure(explainer, tokens: list[str]) -> dict:
    """One review: occlusion of every word, and the gradient's norm and gradient x input per word."""
    effects = explainer._occlusion([tokens], "occlusion")[1][0]  # word -> its effect, every word
    occlusion = torch.tensor([effects[i] for i in range(len(tokens))])
    _, [(norm, gxi)] = explainer._gradients([tokens])
    top5 = set(occlusion.abs().argsort(descending=True)[:5].tolist())
    row = {f"top {k}": len(top5 & set(norm.argsort(descending=True)[:k].tolist())) / 5 for k in KS}
    strong = occlusion.abs().argsort(descending=True)[:5]
    row["gxi sign"] = float(((occlusion[strong] > 0) == (gxi[strong] > 0)).float().mean())
    row["gxi top 3"] = share(gxi, occlusion, 3)
    inputs = encode_views(explainer.vocab, [tokens], 1)
    attention = explainer._attention(inputs["ids"], inputs["lengths"])
    if attention:
        row["attention top 5"] = share(torch.tensor(attention[0]), occlusion, 5)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reviews", type=int, default=60, help="reviews of 10 words or more")
    p.add_argument("--long", type=int, default=40, help="reviews longer than OCCLUSION_UP_TO words")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="10 and 5 reviews: a smoke check")
    args = p.parse_args(argv)
    if args.quick:
        args.reviews, args.long = 10, 5
    torch.set_num_threads(args.threads)
    from rnnlab import load_run

    started = time.perf_counter()
    explainer = load_run("sentiment").predictor.explainer
    with open(ROOT / "data" / "sentiment" / "ChnSentiCorp_htl_all.csv", encoding="utf-8") as f:
        texts = [r["review"] for r in csv.DictReader(f)]
    random.Random(args.seed).shuffle(texts)
    groups = {"10 words or more": (10, args.reviews), f"over {OCCLUSION_UP_TO} words": (OCCLUSION_UP_TO + 1, args.long)}
    rows = []
    with torch.inference_mode():
        for label, (least, wanted) in groups.items():
            measured = []
            for text in texts:
                tokens = explainer.pipeline.all_tokens(text)[: explainer.pipeline.max_tokens]
                if len(tokens) >= least:
                    measured.append(measure(explainer, tokens))
                if len(measured) == wanted:
                    break
            mean = {key: sum(m[key] for m in measured) / len(measured) for key in measured[0]}
            rows.append({"reviews": f"{len(measured)} of {label}",
                         **{f"occlusion's top 5 in the gradient's top {k}": f"{mean[f'top {k}']:.0%}" for k in KS},
                         "gradient x input: sign on occlusion's top 5": f"{mean['gxi sign']:.0%}",
                         "gradient x input: top 3 shared": f"{mean['gxi top 3']:.0%}",
                         **({"attention: top 5 shared": f"{mean['attention top 5']:.0%}"} if "attention top 5" in mean else {})})
    print(f"sentiment explanations against occlusion; the bundled model; reviews drawn with seed {args.seed}; "
          f"--explain auto takes out every word up to {OCCLUSION_UP_TO} words, beyond that the {RANKED} of largest "
          f"gradient norm")
    print()
    for row in rows:  # one block a group: the columns are long
        print_table([{"measure": k, "value": v} for k, v in row.items()], ["measure", "value"])
        print()
    print(f"machine: {machine_info()}; seed {args.seed}; wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
