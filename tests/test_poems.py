"""Poems: corpus cleaning, forms and rhyme, the n-gram baseline, masked language-model loss,
constrained decoding on a tiny trained model, and bad input. Every training here is tiny."""

import json
import math
from pathlib import Path

import pytest
import torch

from rnnlab.cli import main
from rnnlab.experiment import run_training
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.ngram import KneserNey
from rnnlab.poetry import form_of, format_poem, lines_of, quality, rhymes
from rnnlab.runs import load_checkpoint
from rnnlab import load_run
from rnnlab.tasks.poems import PoemsConfig, PoemsTask, clean
from rnnlab.vocab import BOS, EOS, LM_SPECIALS
from rnnlab.train import TrainConfig

QUIET = dict(log=lambda *a: None)
JING_YE_SI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
# A few real quatrains (traditional characters, as chinese-poetry stores them), repeated in the tiny corpus.
TRADITIONAL = [
    ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"],
    ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"],
    ["春眠不覺曉，處處聞啼鳥。", "夜來風雨聲，花落知多少。"],
    ["千山鳥飛絕，萬徑人蹤滅。", "孤舟蓑笠翁，獨釣寒江雪。"],
    ["朝辭白帝彩雲間，千里江陵一日還。", "兩岸猿聲啼不住，輕舟已過萬重山。"],
]


def poem_folder(root: Path, copies: int = 12) -> Path:
    """A chinese-poetry style folder: good poems, plus ones the cleaning must drop."""
    root.mkdir(parents=True, exist_ok=True)
    good = [{"author": "李白", "title": f"詩{i}", "paragraphs": TRADITIONAL[i % len(TRADITIONAL)]}
            for i in range(copies * len(TRADITIONAL))]
    bad = [{"author": "x", "title": "缺字", "paragraphs": ["床前□月光，疑是地上霜。"]},
           {"author": "x", "title": "括號", "paragraphs": ["床前明月光（一作看），疑是地上霜。"]},
           {"author": "x", "title": "短", "paragraphs": ["月光"]},
           {"author": "x", "title": "長", "paragraphs": ["床前明月光，疑是地上霜。" * 8]}]
    (root / "poet.tang.0.json").write_text(json.dumps(good[: len(good) // 2], ensure_ascii=False), encoding="utf-8")
    (root / "poet.tang.1.json").write_text(json.dumps(good[len(good) // 2 :] + bad, ensure_ascii=False), encoding="utf-8")
    return root


def test_forms_lines_and_rhyme():
    assert form_of(JING_YE_SI) == "5x4"
    assert form_of("朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。") == "7x4"
    assert form_of("床前明月光，疑是地上霜。举头望明月。低头思故乡。") is None  # 。 where ， belongs
    assert form_of("床前明月光，疑是地上霜。举头望明，低头思故乡。") is None  # a short line
    assert form_of("床前明月光，疑是地上霜。") is None  # two lines only
    assert lines_of(JING_YE_SI) == ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"]
    assert rhymes(JING_YE_SI)  # 霜 shuang / 乡 xiang: both -ang
    assert not rhymes("床前明月光，疑是地上霜。举头望明月，低头思故人。")
    assert format_poem(JING_YE_SI) == "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    q = quality([JING_YE_SI, JING_YE_SI, "山山山"], {"床前明月光"})
    assert q["well_formed"] == pytest.approx(2 / 3) and q["rhyme_rate"] == 1.0
    assert q["distinct_lines"] == pytest.approx(5 / 9) and q["copy_rate"] == pytest.approx(2 / 9)


def test_cleaning_converts_to_simplified_and_reports_drops(tmp_path):
    task = PoemsTask(PoemsConfig(data=str(poem_folder(tmp_path / "p"))), seed=0)
    report = task.data_report
    assert report["files"] == 2 and report["poems_read"] == 64 and report["kept"] == 60
    assert report["dropped"] == {"odd characters": 2, "shorter than 5": 1, "longer than 80": 1}
    assert "□" in report["odd_characters_seen"] and "（" in report["odd_characters_seen"]
    contents = {p["content"] for split in task.splits.values() for p in split}
    assert JING_YE_SI in contents  # 舉頭 ... 故鄉 came back simplified
    assert sum(len(v) for v in task.splits.values()) == 60
    kept, rep = clean([{"content": c} for c in contents], 5, 80, ("7x4",))
    assert len(kept) == 1 and rep["dropped"] == {"form not kept": 4}


def test_the_regular_forms_are_kept_by_default_and_all_keeps_every_poem(tmp_path):
    root = poem_folder(tmp_path / "p", copies=2)
    free = [{"author": "x", "title": f"古{i}", "paragraphs": ["君不见黄河之水天上来，", "奔流到海不复回。"]} for i in range(6)]
    (root / "poet.tang.2.json").write_text(json.dumps(free, ensure_ascii=False), encoding="utf-8")
    regular = PoemsTask(PoemsConfig(data=str(root)), seed=0).data_report
    every = PoemsTask(PoemsConfig(data=str(root), forms="all"), seed=0).data_report
    assert regular["dropped"]["form not kept"] == 6 and every["kept"] == regular["kept"] + 6
    assert "form not kept" not in every["dropped"]
    assert PoemsTask(PoemsConfig(data=str(root), forms=""), seed=0).data_report["kept"] == every["kept"]  # older runs


def test_kneser_ney_is_a_distribution_and_uses_context():
    seqs = [[5, 6, 7, 8, EOS], [5, 6, 7, 9, EOS], [6, 7, 8, 5, EOS], [9, 9, 8, EOS]] * 5
    v = 10
    for order in (1, 2, 4):
        kn = KneserNey(order, v, BOS).fit(seqs)
        for seq in seqs[:4]:
            hist = kn._padded(seq)[: order - 1]
            assert sum(kn.prob(hist, chr(0x100 + t)) for t in range(v)) == pytest.approx(1.0, abs=1e-9)
    ppl = [KneserNey(order, v, BOS).fit(seqs).perplexity(seqs) for order in (1, 2, 3)]
    assert ppl[0] > ppl[1] > ppl[2]


def test_language_model_loss_ignores_padding_and_ties_weights():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=12, cell="gru", embed_dim=8, hidden=16)).eval()
    assert model.out.weight is model.embed.weight
    a, b = [4, 5, 6, 7, EOS], [8, 9, EOS]
    padded = torch.tensor([a, b + [0, 0]])
    ids = torch.cat([torch.full((2, 1), BOS), padded[:, :-1]], dim=1)
    _, loss = model(ids, None, padded)
    total = 0.0
    for seq in (a, b):
        t = torch.tensor([seq])
        _, single = model(torch.cat([torch.tensor([[BOS]]), t[:, :-1]], dim=1), None, t)
        total += single.item() * len(seq)
    assert loss.item() == pytest.approx(total / 8, rel=1e-6)


def test_adaptive_softmax_trains_on_the_targets_and_scores_like_a_softmax():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=40, cell="lstm", backend="torch", embed_dim=8, hidden=16,
                                              tie_weights=False, softmax="adaptive", cutoffs=(10, 20)))
    targets = torch.tensor([[5, 12, 30, EOS], [25, 7, EOS, 0]])
    ids = torch.cat([torch.full((2, 1), BOS), targets[:, :-1]], dim=1)
    logits, loss = model.train()(ids, None, targets)
    assert logits is None and loss.requires_grad  # training never builds the full softmax
    logits, eval_loss = model.eval()(ids, None, targets)
    assert torch.allclose(logits.exp().sum(-1), torch.ones(2, 4), atol=1e-5)  # log-probabilities over the vocabulary
    h, _ = model.hidden_states(ids)
    real = targets > 0
    assert eval_loss.item() == pytest.approx(model.adaptive(h[real], targets[real]).loss.item(), rel=1e-5)
    with pytest.raises(ValueError, match="no-tie-weights"):
        LanguageModelConfig(vocab_size=40, softmax="adaptive")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("poems")
    run = run_training("poems", PoemsConfig(data=str(poem_folder(root / "data")), samples=8),
                       LanguageModelConfig(cell="lstm", embed_dim=16, hidden=32),
                       TrainConfig(epochs=3, batch_size=8, lr=0.02, schedule="none", progress=False),
                       out=root / "run", **QUIET)
    return run


def test_training_writes_a_run_with_perplexity_and_sample_quality(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    test = summary["test"]
    assert 1 < test["test_perplexity"] < 60  # far below the ~60-character vocabulary's uniform guess after 3 epochs
    assert test["samples"]["samples"] == 8 and 0 <= test["samples"]["well_formed"] <= 1
    assert test["corpus"]["well_formed"] == 1.0  # every kept poem is a quatrain
    html = (tiny_run / "report.html").read_text(encoding="utf-8")
    assert "Unconstrained samples" in html and (tiny_run / "perplexity.png").is_file()
    ckpt = load_checkpoint(tiny_run / "best.pt")
    assert ckpt["meta"]["model_config"]["vocab_size"] == len(ckpt["meta"]["task_state"]["chars"]) + len(LM_SPECIALS)


@pytest.mark.parametrize("form", ["5x4", "7x4", "5x8", "7x8"])
def test_constrained_samples_are_always_well_formed(tiny_run, form):
    predictor = load_run(tiny_run)
    poems = predictor.generate(n=20, form=form, temperature=1.5, seed=1)
    assert [form_of(p) for p in poems] == [form] * 20
    begun = predictor.generate(n=5, form=form, begin="山", seed=2)
    assert all(p[0] == "山" and form_of(p) == form for p in begun)


def test_acrostic_free_sampling_and_seeds(tiny_run):
    predictor = load_run(tiny_run)
    heads = "山月花江"
    for poem in predictor.generate(n=5, acrostic=heads, form="5x4", seed=3):
        assert "".join(line[0] for line in lines_of(poem)) == heads and form_of(poem) == "5x4"
    assert form_of(predictor.generate(acrostic=heads)[0]) == "7x4"  # no --form: 7-character lines
    free = predictor.generate(n=6, seed=4, top_k=5, top_p=0.9)
    assert free == predictor.generate(n=6, seed=4, top_k=5, top_p=0.9) and free != predictor.generate(n=6, seed=5)
    assert all(p and "<" not in p for p in free)


def test_generate_and_evaluate_commands(tiny_run, capsys):
    assert main(["generate", "--run", str(tiny_run), "--begin", "山", "--form", "7x4", "-n", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out.strip().split("\n\n")
    assert len(out) == 2 and all(form_of(p.replace("\n", "")) == "7x4" and p[0] == "山" for p in out)
    assert main(["evaluate", "--run", str(tiny_run), "--samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"]["samples"] == 4 and math.isfinite(report["test_perplexity"])
    assert main(["predict", "--run", str(tiny_run), "床前明月光，", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["perplexity"] > 1


@pytest.mark.parametrize("args, message", [
    (["--acrostic", "春夏秋冬山", "--form", "5x4"], "has 5 characters but --form 5x4 has 4 lines"),
    (["--acrostic", "春夏秋"], "4 or 8"),
    (["--begin", "鳥"], "did you mean the simplified '鸟'"),
    (["--begin", "龘"], "not in the model's vocabulary"),
    (["--begin", "，"], "give one Chinese character"),
    (["--temperature", "0"], "--temperature"),
    (["-n", "0"], "-n 0"),
    (["--begin", "月", "--acrostic", "山月花江"], "disagree"),
])
def test_bad_generation_requests_get_one_line_errors(tiny_run, capsys, args, message):
    assert main(["generate", "--run", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_corpora_get_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.json").write_text("", encoding="utf-8")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "b.json").write_text('[{"paragraphs": ["床前', encoding="utf-8")
    (tmp_path / "noparas").mkdir()
    (tmp_path / "noparas" / "c.json").write_text('[{"title": "x"}]', encoding="utf-8")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "d.json").write_text(json.dumps([{"paragraphs": ["月光"]}] * 5), encoding="utf-8")
    cases = {"empty": "a.json: malformed JSON", "broken": "b.json: malformed JSON", "noparas": "c.json: poem 0 has no",
             "nothing": "0 poems left after filtering", "missing": "no such file or folder"}
    for folder, message in cases.items():
        code = main(["train", "poems", "--data", str(tmp_path / folder), "--epochs", "1", "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (folder, err)
    assert main(["train", "poems", "--pool", "max", "--epochs", "1"]) == 2
    assert "--pool: not an option of the poems task" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--forms"):
        PoemsConfig(data=str(tmp_path / "nothing"), forms="6x4")


def test_poems_runs_resume_and_compare(tmp_path, capsys):
    from rnnlab.experiment import resume_training
    from rnnlab.runs import read_jsonl

    data = str(poem_folder(tmp_path / "data", copies=4))
    common = ["--data", data, "--hidden", "16", "--embed-dim", "8", "--batch-size", "8", "--samples", "4", "--no-progress"]
    assert main(["train", "poems", *common, "--epochs", "1", "--softmax", "adaptive", "--no-tie-weights",
                 "--out", str(tmp_path / "run")]) == 0
    resume_training(tmp_path / "run", epochs=2, **QUIET)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2]
    assert main(["compare", "poems", "--cells", "rnn,gru", *common, "--epochs", "1", "--out", str(tmp_path / "cmp")]) == 0
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert "test perplexity" in html and (tmp_path / "cmp" / "compare_perplexity.png").is_file()


def test_trace_steps_through_a_line_with_the_models_own_numbers(tiny_run, capsys):
    """poems trace: <s> then each character; the states are the model's own (torch's LSTM over the same
    inputs gives the same h_t), the last step's next characters are predict's."""
    run = load_run(tiny_run)
    r = run.trace("床前明月光，", top=4)
    assert r["chars"] == ["<s>", *"床前明月光，"] and r["cell"] == "lstm"
    assert set(r["gates"]) == {"input", "forget", "output"} and len(r["cell_state"]) == 7 == len(r["next"])
    assert all(0 <= v <= 1 for m in r["gates"].values() for row in m for v in row)
    model = run.model
    ids = torch.tensor([[BOS] + run.predictor.vocab.encode("床前明月光，")])
    with torch.no_grad():
        h, _ = model.rnn(model.embed(ids))  # (1, T + 1, H): one layer, so its output is h_t
    assert torch.allclose(torch.tensor(r["hidden"]), h[0].float(), atol=1e-3)
    assert r["next"][-1] == run.predict(["床前明月光，"], top=4)[0]["next"] and len(r["next"][0]) == 4
    assert r["actual"][1] == next((n["probability"] for n in r["next"][1] if n["char"] == "前"), r["actual"][1])
    assert r["actual"][-1] is None and all(0 <= p <= 1 for p in r["actual"][:-1])
    assert main(["trace", "--run", str(tiny_run), "床前明月光，"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 7
    assert main(["trace", "--run", str(tiny_run), "床前明月光，疑是地上霜。举头望明月，低头思故乡。" * 2]) == 2
    assert "at most 32 characters (got 48)" in capsys.readouterr().err
