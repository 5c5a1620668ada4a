"""Sentiment: CSV edge cases, stop words that keep negations, the three word-vector choices, training,
predict-and-explain, another CSV of another shape, and bad input. Every training here is tiny."""

import csv
import json
from pathlib import Path

import pytest
import torch

from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.experiment import run_training
from rnnlab.models import ClassifierConfig, members_of
from rnnlab.tasks.sentiment import (KEEP_WORDS, SentimentConfig, SentimentTask, TextPipeline, load_stopwords,
                                    read_labeled_csv, MAX_TEXT_CHARS)
from rnnlab.vocab import UNK
from rnnlab.train import TrainConfig

QUIET = dict(log=lambda *a: None)
GOOD = ["房间很干净，服务也很热情", "早餐丰富，位置方便，下次还来", "环境安静，床很舒服", "前台热情，性价比高"]
BAD = ["房间不干净，服务很差", "隔音太差，一晚没睡好", "早餐没有什么可吃的，不推荐", "卫生间有异味，设施陈旧"]


def review_csv(path: Path, n: int = 30, header=("label", "review"), encoding="utf-8") -> Path:
    rows = [(1, GOOD[i % 4] + "。" * (i % 3)) for i in range(n)] + [(0, BAD[i % 4] + "！" * (i % 3)) for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_edge_cases(tmp_path):
    path = tmp_path / "edge.csv"
    huge = "很好" * 100_000  # a 200,000-character field: over the csv module's default limit
    path.write_text('\ufefflabel,review\n1,"有逗号,也有""引号"""\n0,"多\n行"\n,没有标签\n1,\n1,' + huge + "\n\n",
                    encoding="utf-8")
    labels, items, report = read_labeled_csv(path, "label", "review")
    assert labels == ["0", "1"] and report["rows"] == 3 and report["empty"] == 3  # no label, no text, a blank line
    assert items[0] == ('有逗号,也有"引号"', 1) and items[1] == ("多\n行", 0)
    assert len(items[2][0]) == MAX_TEXT_CHARS and report["texts_cut"] == 1  # read in full, cut to the cap


def test_other_columns_utf16_and_string_labels_and_gbk_refused(tmp_path):
    """UTF-16 with its byte-order mark is read and said; GBK and Big5 are refused at their first line
    that is not UTF-8 (guessing them would train on mojibake: Big5 read as GB18030 decodes, wrongly)."""
    path = review_csv(tmp_path / "u16.csv", header=("情感", "text"), encoding="utf-16")
    text = path.read_text(encoding="utf-16").replace("\n1,", "\npositive,").replace("\n0,", "\nnegative,")
    path.write_text(text, encoding="utf-16")  # utf-16: a byte-order mark, then little-endian
    labels, items, report = read_labeled_csv(path, "情感", "review")  # no "review": falls back to "text"
    assert labels == ["negative", "positive"] and report["encoding"] == "utf-16" and report["text_column"] == "text"
    assert items[0][0] == GOOD[0]
    for encoding in ("gbk", "big5"):
        bad = tmp_path / f"{encoding}.csv"
        bad.write_bytes("label,review\n1,good\n".encode() + "0,房間很乾淨\n".encode(encoding))
        with pytest.raises(UserError, match=rf"{encoding}\.csv:3: not UTF-8 .*iconv -f GBK"):
            read_labeled_csv(bad, "label", "review")


def test_stop_words_keep_negations_and_degree_words():
    stop = load_stopwords("default")
    assert len(stop) > 500 and "的" in stop
    for word in ("不", "没有", "很", "太", "但是", "无", "别"):
        assert word not in stop and word in KEEP_WORDS
    tokens = TextPipeline("jieba", "", stop, 400)("这家酒店的房间不干净，服务也很差")
    assert tokens[-6:] == ["不", "干净", "服务", "也", "很", "差"] and "的" not in tokens
    assert TextPipeline("char", "", frozenset(), 3)("不 好吃的") == ["不", "好", "吃"]


def test_user_stopword_file_and_user_dict(tmp_path):
    (tmp_path / "stop.txt").write_text("房间\n服务\n", encoding="utf-8")
    (tmp_path / "dict.txt").write_text("性价比高 10 n\n", encoding="utf-8")
    pipe = TextPipeline("jieba", str(tmp_path / "dict.txt"), load_stopwords(str(tmp_path / "stop.txt")), 400)
    tokens = pipe("房间干净，服务好，性价比高")
    assert "房间" not in tokens and "服务" not in tokens and "性价比高" in tokens


def small_word2vec_file(path: Path, binary: bool) -> Path:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=8)
    words = ["房间", "干净", "很差", "热情", "服务"]
    kv.add_vectors(words, [[float(i + j) for j in range(8)] for i in range(len(words))])
    kv.save_word2vec_format(str(path), binary=binary)
    return path


@pytest.mark.parametrize("vectors", ["random", "word2vec", "file-text", "file-bin"])
def test_three_vector_choices_train_and_report_coverage(tmp_path, vectors):
    data = review_csv(tmp_path / "r.csv")
    if vectors.startswith("file"):
        binary = vectors.endswith("bin")
        vectors = str(small_word2vec_file(tmp_path / ("v.bin" if binary else "v.txt"), binary))
    run = run_training("sentiment", SentimentConfig(data=str(data), tokenizer="jieba", vectors=vectors, w2v_epochs=2),
                       ClassifierConfig(cell="gru", embed_dim=8, hidden=16, bidirectional=True, pool="attention"),
                       TrainConfig(epochs=12, batch_size=8, lr=0.02, schedule="none", patience=0, progress=False),
                       out=tmp_path / "run", **QUIET)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["accuracy"] == 1.0 and summary["test"]["roc_auc"] == 1.0  # a trivially separable set
    if vectors != "random":
        coverage = summary["data"]["vectors"]
        assert 0 < coverage["vocabulary_coverage"] <= 1 and 0 < coverage["token_coverage"] <= 1
        if vectors != "word2vec":
            assert coverage["vocabulary_coverage"] < 1  # the file holds five words only
    assert "Which words drove" in (run / "report.html").read_text(encoding="utf-8")


def test_freeze_vectors_keeps_the_embedding(tmp_path):
    import torch

    data = review_csv(tmp_path / "r.csv", n=8)
    task = SentimentTask(SentimentConfig(data=str(data), tokenizer="jieba", vectors="word2vec", w2v_epochs=1), seed=0)
    model = task.build_model(task.model_config(ClassifierConfig(embed_dim=8, hidden=8, freeze_vectors=True)))
    before = model.embed.weight.clone()
    assert not model.embed.weight.requires_grad
    from rnnlab.train import fit
    fit(task, model, TrainConfig(epochs=1, batch_size=4, progress=False), tmp_path / "run", torch.device("cpu"), {},
        log=lambda *a: None)
    assert torch.equal(model.embed.weight, before)


def test_predict_explains_and_the_cli_trains_another_csv(tmp_path, capsys):
    data = review_csv(tmp_path / "other.csv", header=("stars", "comment"))
    run = tmp_path / "run"
    assert main(["train", "sentiment", "--data", str(data), "--label-col", "stars", "--text-col", "comment",
                 "--tokenizer", "jieba", "--epochs", "10", "--batch-size", "8", "--lr", "0.02", "--hidden", "16", "--embed-dim", "8",
                 "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--json", "房间很干净，服务也很热情"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["label"] == "1" and result["probability"] > 0.5
    words = {w["word"]: w for w in result["words"]}
    assert set(words) >= {"房间", "干净", "服务", "热情"} and "attention" in words["干净"]
    assert max(result["words"], key=lambda w: w["effect"])["word"] in {"很", "干净", "热情"}
    assert main(["predict", "--run", str(run), "房间不干净"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("0 ") and "drivers (taken out):" in out and "[" in out
    assert main(["predict", "--run", str(run), "--explain", "gradient", "房间不干净"]) == 0
    assert "drivers (gradient x input):" in capsys.readouterr().out
    assert main(["predict", "--run", str(run), "--explain", "none", "--json", "房间不干净"]) == 0
    bare = json.loads(capsys.readouterr().out)[0]
    assert bare["explained_by"] is None and bare["measured"] == 0 and all(w["effect"] is None for w in bare["words"])
    # gradient x input is the first-order change of the label's log-probability: shrinking one word's
    # vector by 1 % moves the log-probability by about 1 % of the word's effect
    from rnnlab import load_run

    loaded = load_run(run)
    text = "房间很干净，服务也很热情"
    answer = loaded.predict([text], explain="gradient")[0]
    assert answer["explained_by"] == "gradient" and answer["measured"] == len(answer["words"])
    model, vocab = loaded.predictor.model, loaded.predictor.vocab
    tokens = [w["word"] for w in answer["words"]]
    label = answer["top"][0]["label"]
    ids = torch.tensor([vocab.encode(tokens)])

    def logp() -> float:
        with torch.no_grad():
            out = model(ids, torch.tensor([len(tokens)]))[0].log_softmax(-1)
        return float(out[0, loaded.predictor.labels.index(label)])

    for i, w in enumerate(answer["words"]):
        if tokens.count(w["word"]) > 1 or w["unknown"]:
            continue
        tables = [m.embed.weight.data for m in members_of(model)]  # the word's vector in every member
        before, rows = logp(), [t[ids[0, i]].clone() for t in tables]
        for t, row in zip(tables, rows):
            t[ids[0, i]] = row * 0.99
        after = logp()
        for t, row in zip(tables, rows):
            t[ids[0, i]] = row
        assert (before - after) == pytest.approx(0.01 * w["effect"], rel=0.05, abs=2e-5), w
    long_text = "房间很干净" * 200
    assert main(["predict", "--run", str(run), "--json", long_text]) == 0
    assert json.loads(capsys.readouterr().out)[0]["truncated_from"] > 400


@pytest.mark.parametrize("content, args, message", [
    ("label,review\n1,好\n0,差\n", ["--text-col", "body"], "no column 'body'; the file has 'label', 'review'"),
    ("label,review\n1,好\n1,不错\n", [], "need at least 2 labels"),
    ("", [], "empty file"),
    (None, [], "not UTF-8"),
    ("label,review\n1,好\n0,差\n", ["--vectors", "nofile.vec"], "--vectors nofile.vec"),
    ("label,review\n1,好\n0,差\n", ["--stopwords", "nofile.txt"], "--stopwords nofile.txt"),
])
def test_bad_input_gets_one_line_errors(tmp_path, capsys, content, args, message):
    path = tmp_path / "bad.csv"
    if content is None:
        path.write_bytes(b"label,review\n1,\xff\xfe\xfa\xff\n")
    else:
        path.write_text(content, encoding="utf-8")
    code = main(["train", "sentiment", "--data", str(path), "--epochs", "1", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_empty_text_at_predict_time(tmp_path, capsys):
    data = review_csv(tmp_path / "r.csv", n=6)
    run_training("sentiment", SentimentConfig(data=str(data), tokenizer="jieba"), ClassifierConfig(embed_dim=8, hidden=8),
                 TrainConfig(epochs=1, batch_size=8, progress=False), out=tmp_path / "run", **QUIET)
    assert main(["predict", "--run", str(tmp_path / "run"), "  "]) == 2
    assert "texts[0]: empty" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path / "run"), "的了"]) == 2
    assert "nothing left to classify" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--max-tokens"):
        SentimentConfig(data=str(data), max_tokens=0)


def test_words_and_characters_ensemble(tmp_path, capsys):
    """jieba+char: even members read the words, odd members the characters of those same words; one
    vocabulary holds both; occluding a word removes its characters from the character view."""
    data = review_csv(tmp_path / "r.csv")
    cfg = SentimentConfig(data=str(data), tokenizer="jieba+char", vectors="random")
    task = SentimentTask(cfg, seed=0)
    words = task.tokens["train"][0]
    inputs = task.encode([words])
    assert inputs["lengths"].item() == len(words) and inputs["char_lengths"].item() == len("".join(words))
    assert [task.vocab.tokens[i - task.vocab.offset] for i in inputs["char_ids"][0].tolist()] == list("".join(words))
    assert task.vocab.encode(["热情"]) != [UNK] and task.vocab.encode(["热"]) != [UNK]
    with pytest.raises(UserError, match="--ensemble 2"):
        run_training("sentiment", cfg, ClassifierConfig(embed_dim=8, hidden=8), TrainConfig(epochs=1, progress=False),
                     out=tmp_path / "one", **QUIET)
    run = run_training("sentiment", cfg, ClassifierConfig(embed_dim=8, hidden=16, ensemble=2, pool="attention"),
                       TrainConfig(epochs=10, batch_size=8, lr=0.02, progress=False), out=tmp_path / "run", **QUIET)
    assert main(["predict", "--run", str(run), "--json", "房间很干净，服务也很热情"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["label"] == "1" and {"干净", "热情"} <= {w["word"] for w in result["words"]}
    assert all("attention" in w for w in result["words"])  # from the members that read words
    # A long review (over OCCLUSION_UP_TO words): only the words the gradient ranks first are measured,
    # each exactly as occlusion of every word measures it; in the server's inference mode too.
    from rnnlab import load_run
    from rnnlab.tasks.sentiment import OCCLUSION_UP_TO, RANKED

    loaded = load_run(run)
    review = "，".join(["房间很干净", "服务也很热情", "早餐太差", "隔音不好", "位置不错"] * 16)
    with torch.inference_mode():
        auto = loaded.predict([review])[0]
    every = loaded.predict([review], explain="occlusion")[0]
    assert len(auto["words"]) > OCCLUSION_UP_TO and auto["measured"] == RANKED == sum(
        w["effect"] is not None for w in auto["words"])
    for a, b in zip(auto["words"], every["words"]):
        assert a["effect"] is None or a["effect"] == pytest.approx(b["effect"], abs=2e-4)
    assert every["measured"] == len(every["words"]) and auto["label"] == every["label"]
    # the run's report draws such a text too (a word not measured: grey, unshaded)
    from rnnlab.tasks.sentiment import explained_section

    html = explained_section([dict(auto, true="1")])
    assert html.count("title='not measured'") == len(auto["words"]) - RANKED and "are grey" in html


def review_folder(root: Path, n: int = 20) -> Path:
    """neg.txt and pos.txt, n distinct reviews each, with duplicates, a text under both labels, a blank
    line and one of ideographic spaces."""
    root.mkdir(parents=True, exist_ok=True)
    pos = [f"{GOOD[i % 4]}{i}" for i in range(n)] + [f"{GOOD[i % 4]}{i}" for i in range(5)] + ["一般般"]
    neg = [f"{BAD[i % 4]}{i}" for i in range(n)] + ["一般般", "一般般", "", "\u3000\u3000"]
    (root / "pos.txt").write_text("\n".join(pos) + "\n", encoding="utf-8")
    (root / "neg.txt").write_text("\ufeff" + "\n".join(neg) + "\n", encoding="utf-8")
    return root


def test_a_folder_of_label_files_drops_duplicates_and_texts_under_both_labels(tmp_path):
    from rnnlab.tasks.sentiment import read_text_folder

    folder = review_folder(tmp_path / "reviews")
    task = SentimentTask(SentimentConfig(data=str(folder), tokenizer="char", vectors="random"), seed=0)
    report = task.data_report
    assert task.labels == ["neg", "pos"] and report["rows"] == 48 and report["empty"] == 1
    # 48 rows, 42 distinct (text, label) pairs; "一般般" is under both labels: 40 items left.
    assert report["duplicates_dropped"] == 6 and report["texts_with_several_labels"] == 1
    items = [item for rows in task.splits.values() for item in rows]
    assert len(items) == len(set(items)) == 40 and all(text != "一般般" for text, _ in items)
    assert "6 duplicates dropped" in task.data_line() and "1 texts with several labels" in task.data_line()
    assert task.data_fingerprint()["files"].keys() == {"neg.txt", "pos.txt"}
    # Labels from file names are ordered as a CSV's: integers by value, then text.
    numbers = tmp_path / "numbers"
    numbers.mkdir()
    for label in ("10", "2", "b", "a"):
        (numbers / f"{label}.txt").write_text(f"评论{label}\n", encoding="utf-8")
    assert read_text_folder(numbers)[0] == ["2", "10", "a", "b"]


@pytest.mark.parametrize("make, args, message", [
    (lambda d: d, [], "no <label>.txt files in this folder"),
    (lambda d: review_folder(d) and (d / "pos.txt").write_bytes(b"ok\n\xff\xfe\n") and d, [], "pos.txt:2: not UTF-8"),
    (lambda d: review_folder(d) / "pos.txt", [], "a .txt file; give the folder of <label>.txt files"),
    (lambda d: review_folder(d) and (d / "pos.txt").write_text("\n", encoding="utf-8") and d, [],
     "need at least 2 labels with items to classify, found 1 (neg)"),
    (lambda d: review_folder(d), ["--label-col", "stars"], "--label-col: --data"),
])
def test_bad_label_folders_get_one_line_errors(tmp_path, capsys, make, args, message):
    (tmp_path / "d").mkdir()
    data = make(tmp_path / "d")
    code = main(["train", "sentiment", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_seeds_train_member_runs_on_a_label_folder(tmp_path, capsys):
    """--seeds 2 on the command line: seed-0 and seed-1 are ordinary runs with their own seed (so their
    own split), and the terminal shows the mean ± std table."""
    folder = review_folder(tmp_path / "reviews")
    parent = tmp_path / "seeds"
    assert main(["train", "sentiment", "--data", str(folder), "--seeds", "2", "--tokenizer", "char", "--vectors",
                 "random", "--ensemble", "1", "--epochs", "1", "--hidden", "8", "--embed-dim", "8", "--no-progress",
                 "--out", str(parent)]) == 0
    out = capsys.readouterr().out
    assert "sentiment, 2 seeds: test figures, mean ± std" in out and "roc auc" in out and " of 2 seeds (" in out
    tests = []
    for seed in (0, 1):
        config = json.loads((parent / f"seed-{seed}" / "config.json").read_text(encoding="utf-8"))
        assert config["train_config"]["seed"] == seed and config["task_config"]["seeds"] == 1
        task = SentimentTask(SentimentConfig.from_dict(config["task_config"]), seed=seed)
        tests.append(task.splits["test"])
    assert tests[0] != tests[1]
    summary = json.loads((parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["kind"] == "seeds" and set(summary["model"]) >= {"accuracy", "macro_f1", "roc_auc"}
