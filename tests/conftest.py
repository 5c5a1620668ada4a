import os

import pytest
from hypothesis import settings

# Reproducible property tests: the same examples on every run and machine.
settings.register_profile("rnnlab", derandomize=True, print_blob=True)
settings.load_profile("rnnlab")

# One thread per test process: two processes each using two threads fight on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory):
    """A folder of tiny trained runs for the web app's tests (a few seconds at 1 thread): names with
    each cell (BiLSTM, GRU, RNN), poems, sentiment, and a comparison folder holding a copy of one."""
    import json
    import shutil

    import torch
    from rnnlab.api import train_task as train
    from test_names import tiny_folder
    from test_poems import poem_folder
    from test_sentiment import review_csv

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve")
    runs = root / "runs"
    quiet = dict(log=lambda *a: None, progress=False, baseline=False)
    names = tiny_folder(root / "names")
    for cell, extra in (("lstm", dict(hidden=16, bidirectional=True)), ("gru", dict(hidden=12)), ("rnn", dict(hidden=12))):
        train("names", out=runs / f"names-{cell}", data=str(names), cell=cell, embed_dim=8, epochs=3, **extra, **quiet)
    train("poems", out=runs / "poems-lstm", data=str(poem_folder(root / "poems")), samples=4, cell="lstm", embed_dim=16,
          hidden=32, epochs=3, batch_size=8, lr=0.02, schedule="none", **quiet)
    train("sentiment", out=runs / "sentiment-gru", data=str(review_csv(root / "reviews.csv")), tokenizer="jieba",
          vectors="random", cell="gru", embed_dim=8, hidden=16, bidirectional=True, pool="attention", epochs=6,
          batch_size=8, lr=0.02, **quiet)
    compare = runs / "names-compare"
    shutil.copytree(runs / "names-gru", compare / "gru")
    (compare / "compare.json").write_text(json.dumps({"task": "names", "runs": {"gru": "gru"}}), encoding="utf-8")
    return runs
