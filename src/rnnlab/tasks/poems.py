"""Tang poems: a character-level recurrent language model that writes poems.

Data: the bundled Tang poems (simplified), or ``--data`` pointing at a chinese-poetry JSON file or
folder (``[{"author", "title", "paragraphs": [...]}]``, Tang, Song, ci ...; traditional characters
are converted to simplified with OpenCC), or at a ``.jsonl``/``.jsonl.gz`` of such poems.

Cleaning follows the classic course corpus: a poem's content is its paragraphs joined; poems with
odd characters (brackets, underscores, missing-character marks, digits ...) are dropped, and so
are those outside ``min_chars``..``max_chars`` characters, or -- with ``forms`` -- not of a kept form.
Each poem becomes ``<s>`` + characters + ``</s>``; characters seen fewer than ``min_count`` times in
training become ``<unk>``. The split is by poem, seeded.

Batches are whole poems. Sorting them by length into buckets keeps padding near zero (most poems
are 24, 32, 48 or 64 characters long), where course code pads each batch to its longest poem.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..bundle import POEMS_FILE, default_data_dir, read_poem_json
from ..datafiles import check_file, detect_encoding, iter_jsonl
from ..errors import UserError
from ..generate import CANDIDATES, PoemSampler, SampleOptions
from ..models import LanguageModel, LanguageModelConfig
from ..nn.trace import named, step_through
from ..options import Options, option, subset
from ..poetry import (FORMS, LINE_MARKS, PUNCTUATION, corpus_reference, form_of, format_poem, lines_of, odd_characters,
                      quality)
from ..train import TrainConfig
from ..verse import check_poem
from ..verbs import Input, Verb, top_options
from ..vocab import BOS, EOS, LM_SPECIALS, PAD, UNK, Vocab
from .base import Task, register

CONVERSIONS = ("auto", "t2s", "none")
MAX_LINE_CHARS = 40  # a line of a poem given line by line, in free form
REGULAR_FORMS = ",".join(FORMS)  # quatrains (绝句) and regulated verse (律诗) of 5 and 7 characters

# What `rnnlab train poems` uses when no option says otherwise.
# Speed is the lever (see benchmarks/poems.py): bucketed batches, torch's fused LSTM, and an adaptive
# softmax, so that many epochs fit in an hour on 2 cores. --backend scratch runs rnnlab's own cells.
DEFAULT_MODEL = LanguageModelConfig(cell="lstm", backend="torch", embed_dim=128, hidden=384, layers=1, dropout=0.1,
                                    tie_weights=False, softmax="adaptive")
DEFAULT_TRAIN = TrainConfig(epochs=30, batch_size=64, lr=2e-3, patience=3, max_time=3600)


@dataclass(frozen=True)
class PoemsConfig(Options):
    """The poems task's data options."""

    data: str = option("", "chinese-poetry JSON file or folder, or .jsonl(.gz) (default: the bundled Tang poems)",
                       metavar="PATH")
    convert: str = option("auto", "traditional -> simplified with OpenCC (auto: for --data, not for the bundled, "
                          "already simplified set)", choices=CONVERSIONS)
    min_chars: int = option(5, "shortest poem kept (characters with punctuation)", min=1, max=2000)
    max_chars: int = option(80, "longest poem kept", min=1, max=2000)
    # The four regular forms of 近体诗 are 81 % of the bundled poems; trained on them alone, a model's free
    # samples keep a form far more often (2 epochs: 68 % well-formed against 46 % on every poem).
    forms: str = option(REGULAR_FORMS, "keep only these forms (all: every poem, 古体 and 乐府 too)", metavar="FORMS")
    min_count: int = option(2, "rarer characters become <unk>", min=1)
    val_fraction: float = option(0.05, "share of the poems for validation", above=0, below=1)
    test_fraction: float = option(0.05, "share of the poems for the test", above=0, below=1)
    limit: int = option(0, "use only this many training poems (0 = all): quick runs and tests", min=0)
    samples: int = option(200, "unconstrained samples scored in the final report", min=0, max=10_000)

    def check(self) -> None:
        if self.min_chars > self.max_chars:
            raise ValueError(f"--min-chars {self.min_chars} is above --max-chars {self.max_chars}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("--val-fraction and --test-fraction must sum below 1")
        _parse_forms(self.forms)


def _poem_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        if path.exists() or path.is_symlink():
            check_file(path, "poems file")  # a broken link, a special file ...
        raise UserError(f"{path}: no such file or folder")
    files = sorted(f for f in path.rglob("*") if f.name.endswith((".json", ".jsonl", ".jsonl.gz")) and not f.is_dir())
    if not files:
        raise UserError(f"{path}: no chinese-poetry .json (or .jsonl/.jsonl.gz) files here")
    return files


def _records(f: Path) -> list[tuple[str, object]]:
    """(where, item) for every poem record of a file: ``FILE:LINE`` for JSON lines, ``FILE: poem N`` for
    a JSON list. Decode, gzip and JSON problems are errors naming the file and line."""
    if f.name.endswith((".jsonl", ".jsonl.gz")):
        return [(f"{f}:{lineno}: poem", item) for lineno, item in iter_jsonl(f, "poems file")]
    return [(f"{f}: poem {i}", item) for i, item in enumerate(read_poem_json(f))]


def read_poems(path: Path, convert: bool) -> tuple[list[dict], dict]:
    """All poems of the files under ``path`` -> ([{title, author, content}], report)."""
    t2s = None
    if convert:
        import opencc

        t2s = opencc.OpenCC("t2s")
    poems, files, encodings = [], _poem_files(path), {}
    for f in files:
        records = _records(f)  # UTF-8, or UTF-16/32 as a byte-order mark declares: said in the report
        if not f.name.endswith(".gz") and (enc := _bom_encoding(f)) != "utf-8":
            encodings[f.name] = enc
        for where, item in records:
            paragraphs = item.get("paragraphs") if isinstance(item, dict) else None
            if not isinstance(paragraphs, list) or not all(isinstance(p, str) for p in paragraphs):
                raise UserError(f"{where} has no 'paragraphs' list of strings (a poem is "
                                '{"title": ..., "author": ..., "paragraphs": ["line", ...]})')
            content = "".join(p.strip() for p in paragraphs)
            title, author = str(item.get("title", "")), str(item.get("author", ""))
            if t2s is not None:
                content, title, author = t2s.convert(content), t2s.convert(title), t2s.convert(author)
            poems.append({"title": title, "author": author, "content": content})
    return poems, {"files": len(files), "poems_read": len(poems), **({"encodings": encodings} if encodings else {})}


def _bom_encoding(f: Path) -> str:
    with open(f, "rb") as fh:
        return detect_encoding(fh.read(4))


def clean(poems: list[dict], min_chars: int, max_chars: int, forms: tuple[str, ...]) -> tuple[list[dict], dict]:
    """Keep the poems the model should learn from; count every drop by its reason."""
    kept, dropped, examples = [], Counter(), Counter()
    for p in poems:
        c = p["content"]
        odd = odd_characters(c)
        reason = ("empty" if not c else "odd characters" if odd else f"shorter than {min_chars}" if len(c) < min_chars
                  else f"longer than {max_chars}" if len(c) > max_chars else "form not kept" if forms and form_of(c) not in forms
                  else "")
        if reason:
            dropped[reason] += 1
            examples.update(odd)
        else:
            kept.append(p)
    return kept, {"kept": len(kept), "dropped": dict(dropped.most_common()),
                  "odd_characters_seen": "".join(c for c, _ in examples.most_common(30))}


def encode_poem(vocab: Vocab, content: str) -> list[int]:
    """Content -> ids of its characters and the end token (the start token is the model's first input)."""
    return vocab.encode(content) + [EOS]


def _parse_forms(text: str) -> tuple[str, ...]:
    """The forms to keep; () keeps every poem (``all``, or an empty text in runs made before the default)."""
    if text.strip() == "all":
        return ()
    forms = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in forms if f not in FORMS]
    if bad:
        raise ValueError(f"--forms {text!r}: give all, or a comma-separated list from {', '.join(FORMS)}")
    return forms


def samples_section(test: dict) -> str:
    """The report's samples part: free samples and regulated ones (each form written under the rules)
    beside the training corpus."""
    import html
    import json

    from ..poetry import format_poem
    from ..report import table

    s, c, r = test["samples"], test["corpus"], test.get("regulated")
    reg = r.get("all", {}) if r else {}

    def pct(d: dict, key: str) -> str:
        return f"{d[key]:.1%}" if key in d else ""

    measures = [("well-formed 5/7-character quatrain or regulated verse", "well_formed"),
                ("even lines rhyme, same Mandarin final (of the well-formed)", "rhyme_rate"),
                ("even lines rhyme, Pingshui 平水韵 level-tone group", "rhyme_rate_pingshui"),
                ("even lines rhyme, 中华新韵 level-tone group", "rhyme_rate_xinyun"),
                ("2-4-6 tone pattern kept (平仄, Pingshui)", "tone_pattern_rate"),
                ("every rule: rhyme, pattern, line ends (Pingshui)", "regulated_rate")]
    rows = [[label, pct(s, key), pct(reg, key), pct(c, key)] for label, key in measures]
    rows += [["distinct lines", f"{s['distinct_lines']:.3f}", f"{reg['distinct_lines']:.3f}" if reg else "",
              f"{c['distinct_lines']:.3f}" if "distinct_lines" in c else ""],
             ["lines copied from the training poems", f"{s['copy_rate']:.1%}", pct(reg, "copy_rate"), ""],
             ["model's log-probability per token", f"{s['logprob']:.3f}" if "logprob" in s else "",
              f"{reg['logprob']:.3f}" if reg else "", ""],
             ["how many", s["samples"], reg.get("samples", ""), c["poems"]]]
    rows = table(["", "free samples", "regulated samples", "training poems"], rows)
    poems = "".join(f"<pre>{html.escape(format_poem(p))}</pre>" for p in test.get("examples", []))
    settings = ", ".join(f"{k} {v}" for k, v in s.get("settings", {}).items())
    out = (f"<h2>Unconstrained samples, and regulated ones</h2><p>{s['samples']} poems sampled freely "
           f"({html.escape(settings)}), beside the training corpus.</p>{rows}"
           f"<p>Forms of the free samples: {html.escape(json.dumps(s['forms']))}</p>")
    if r and r.get("not_written"):
        out += ("<h3>Regulated samples not written</h3><p>The sampler could not meet the rules of these forms with "
                "this model; the free samples above stand alone for them.</p><ul>"
                + "".join(f"<li>{html.escape(f)}: {html.escape(m)}</li>" for f, m in r["not_written"].items()) + "</ul>")
    if r and reg:
        forms = table(["form", "rhyme (Pingshui)", "rhyme (新韵)", "tone pattern", "every rule", "distinct lines",
                       "copied lines", "log-probability"],
                      [[f, pct(q, "rhyme_rate_pingshui"), pct(q, "rhyme_rate_xinyun"), pct(q, "tone_pattern_rate"),
                        pct(q, "regulated_rate"), f"{q['distinct_lines']:.3f}", pct(q, "copy_rate"), f"{q['logprob']:.3f}"]
                       for f, q in r["forms"].items()])
        out += (f"<h3>Regulated samples</h3><p>{r['per_form']} poems of each form written under the rules "
                f"({html.escape(r['rhyme_scheme'])} rhyme groups and tones, as <code>rnnlab generate --form</code> "
                f"writes them). What the rules cost in fluency: negative log-probability per token "
                f"{r['nll_ratio']:.2f}x the free samples'.</p>{forms}"
                + "".join(f"<pre>{html.escape(format_poem(p))}</pre>" for p in r.get("examples", [])))
    return out + f"<h3>Some free samples</h3>{poems}"


AT_EACH = ("the model's likeliest characters at each position", "每个位置的候选字数")


@dataclass(frozen=True)
class GenerateOptions(SampleOptions):
    n: int = option(1, "how many poems", min=1, max=100, flag="-n", zh="写几首")
    details: bool = option(False, "each poem with its lines, rhyme group, tone pattern and log-probability",
                           zh="附上每首诗的行、韵部、平仄格式和对数概率")
    top: int = option(0, "with details: the model's likeliest characters at each position (0 = none)", min=0,
                      max=20, zh="附上每个位置模型最可能的几个字（0 = 不附）")


@dataclass(frozen=True)
class RegenerateOptions(SampleOptions):
    line: int = option(0, "the line to write again (0: the first); the others are kept", min=0, max=15,
                       zh="重写第几行（0 = 第一行），其余保留")
    top: int = option(5, *AT_EACH[:1], min=1, max=20, zh=AT_EACH[1])
    choices: int = option(1, "how many different rewrites of the line to offer, the poem the model finds likeliest "
                          "first (as Jiuge offers several lines)", min=1, max=8, zh="给出几种不同的重写（模型认为最通顺的在前）")


# A server with poems waiting draws half the candidate lines (unless the request asks for a number).
LIGHTER = (("candidates", CANDIDATES // 2),)
ScoreOptions = top_options("ScoreOptions", 5, 20, *AT_EACH)
AlternativesOptions = top_options("AlternativesOptions", 5, 100, *AT_EACH)
NextOptions = top_options("NextOptions", 3, 1000, "how many likely next characters to show", "显示几个可能的下一个字")
TraceOptions = top_options("TraceOptions", 3, 20, "how many likely next characters to show at each step",
                           "每一步显示几个可能的下一个字")
UnitsOptions = top_options("UnitsOptions", 4, 20, "how many units to show for each thing counted", "每种计数显示几个单元")
# What the units' states are compared with (Karpathy's counters): each character's place in its line
# (0 = first, its mark last) and the number of its line (0 = first).
COUNTED = {"position": ("the character's place in its line", "字在本行中的位置"),
           "line": ("the number of the character's line", "字所在的行号")}
UNITS_FIT = (("5x4", 40), ("7x4", 40))  # the poems the model writes (seed 0) that the fit reads


MAX_POEM_CHARS = 200  # a poem to score (the longest regular form, 7x8, has 64)
TRACE_CHARS = 32  # a text to step through: a line or two (every step's gates and states come back)
LINE_RE = re.compile(f"[^{LINE_MARKS}]+[{LINE_MARKS}]?|[{LINE_MARKS}]")


def _counted(text: str) -> dict[str, list[int]]:
    """For each character of a poem: its place in its line (the mark last) and its line's number."""
    position, line = [], []
    for k, piece in enumerate(poem_lines(text) or [text]):
        position += list(range(len(piece)))
        line += [k] * len(piece)
    rest = len(text) - len(position)  # characters after the last mark
    return {"position": position + list(range(rest)), "line": line + [len(poem_lines(text))] * rest}


def poem_lines(content: str) -> list[str]:
    """A poem's lines, each with the mark that ends it: 床前明月光，|疑是地上霜。|..."""
    return LINE_RE.findall(content)


def _no_space(text: str) -> str:
    """A poem as every door takes it: without whitespace, and without control or unassigned characters."""
    control = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and not c.isspace()),
                   None)
    if control is not None:
        raise ValueError(f"holds the control or unassigned character U+{ord(control):04X}: give the text of a poem")
    return "".join(text.split())


class PoemsPredictor:
    """A trained poems model: writes poems, scores given ones, and shows the alternatives at each character."""

    verbs = (
        Verb("generate", "write poems", GenerateOptions, zh="写诗", text="format_poem", example={"form": "5x4"},
             under_load=LIGHTER, joined_by=("seed", "n")),
        Verb("regenerate", "write one line again and keep the others (co-writing)", RegenerateOptions,
             Input("lines", "the poem's lines, each ending in its mark", max_chars=40, per_request=16, check=_no_space,
                   zh="诗的各行，每行以标点结尾"), zh="重写一行，保留其余各行", under_load=LIGHTER),
        Verb("score", "a poem as given: each character's probability and the model's alternatives", ScoreOptions,
             Input("poem", "a poem", many=False, max_chars=MAX_POEM_CHARS, check=_no_space, zh="一首诗"),
             zh="给定的诗：每个字的概率和模型的候选"),
        Verb("alternatives", "each character's probability and the model's likeliest characters there",
             AlternativesOptions, Input("poem", "a text", many=False, check=_no_space, zh="一段文字"),
             zh="每个字的概率和该位置最可能的字"),
        Verb("units", "the units that count: how well each unit of the first layer tracks the position in the line "
             "and the line number (r^2 over poems the model writes), and the poem shaded by the best ones",
             UnitsOptions, Input("poem", "a poem", many=False, max_chars=MAX_POEM_CHARS, check=_no_space, zh="一首诗"),
             zh="计数的单元：第一层每个单元追踪行内位置和行号的程度（在模型写的诗上的 r^2），以及按这些单元着色的诗",
             text="format_units"),
        Verb("trace", "a short text read step by step: the first layer's gates and states after <s> and each "
             "character, and the likeliest next characters at each step", TraceOptions,
             Input("text", "a line or two of a poem", many=False, max_chars=TRACE_CHARS, check=_no_space, zh="一两句诗"),
             zh="逐步读一小段文字：第一层在 <s> 和每个字之后的门和状态，以及每一步最可能的下一个字", text="format_trace"),
        Verb("predict", "each text's perplexity as a poem, and the likeliest next characters", NextOptions,
             Input("texts", "texts", check=_no_space, zh="文字"), zh="每段文字作为诗的困惑度，以及最可能的下一个字",
             text="format", per_item=True),
    )

    def __init__(self, model, model_cfg: LanguageModelConfig, task_cfg: PoemsConfig, state: dict, device) -> None:
        self.model, self.device = model, device
        self.vocab = Vocab(state["chars"], LM_SPECIALS)
        self.sampler = PoemSampler(self.model, self.vocab, device)

    def context(self) -> dict:
        return {}

    def generate(self, opts: GenerateOptions) -> list:
        return self.generate_joined([opts])[0]

    def generate_joined(self, requests: list[GenerateOptions]) -> list[list]:
        """``generate`` for requests that differ only in ``seed`` and ``n`` (the verb's ``joined_by``),
        their poems decoded as one batch: each request's answer, the same as it would be alone."""
        first = requests[0]
        sample = {f.name: getattr(first, f.name) for f in fields(SampleOptions) if f.name != "seed"}
        answers = self.sampler.sample_joined([(o.seed, o.n) for o in requests], details=first.details, **sample)
        for p in (p for poems in answers for p in poems) if first.details else ():
            p["lines"] = poem_lines(p["poem"])  # each with its mark, as every verb gives them
            if first.top:
                p["chars"] = self.characters(p["poem"], first.top)
        return answers

    def regenerate(self, lines: list[str], opts: RegenerateOptions) -> dict:
        """Write line ``opts.line`` again, keeping the others: the lines before it are the prefix the
        model continues; the lines after it are put back unchanged, and with a form the new line keeps
        their tone pattern and rhyme and repeats none of their characters."""
        if opts.line >= len(lines):
            raise UserError(f"line: {opts.line} is past the poem's last line ({len(lines) - 1})")
        lines = self.check_lines(lines, opts.form)
        sample = {f.name: getattr(opts, f.name) for f in fields(SampleOptions)}
        sample["prefix"] = "".join(lines[: opts.line])
        drafts = {}  # a different line -> (the poem with it, the draft it came from)
        after = tuple(lines_of("".join(lines[opts.line + 1 :]))) if opts.form != "free" else ()  # kept: rhymed with
        for made in self.sampler.sample(opts.choices, details=True, after=after, **sample):
            written = poem_lines(made["poem"])
            if len(written) > opts.line and written[opts.line] not in drafts:
                drafts[written[opts.line]] = ("".join(lines[: opts.line] + [written[opts.line]] + lines[opts.line + 1 :]), made)
        if not drafts:
            raise UserError(f"line: the model ended the poem before line {opts.line}; try another seed")
        ranked = list(drafts.items())
        if len(ranked) > 1:  # the likeliest whole poem first
            scores = self.sampler.logprob([content for content, _ in drafts.values()])
            ranked = [r for _, r in sorted(zip(scores, ranked), key=lambda x: -x[0])]
        line, (content, made) = ranked[0]
        out = {"poem": content, "lines": poem_lines(content), "chars": self.characters(content, opts.top),
               "line": opts.line, **{k: made[k] for k in ("rhyme_group", "pattern")}}
        if opts.choices > 1:
            out["choices"] = [written for written, _ in ranked]
        return out

    def score(self, poem: str, opts: ScoreOptions) -> dict:
        """A poem as given (e.g. edited by hand): its perplexity, form and each character's alternatives;
        for a regular poem also what ``rnnlab.verse.check_poem`` (Pingshui) finds: each line's tones, the
        rhyme group, whether the tone pattern (``pattern``, None if broken) and the line ends hold
        (``char_tones``: each character's own tone; generate's ``tones`` are the pattern's, 中 = either)."""
        scored = self.predict([poem], NextOptions())[0]
        content = scored["text"]
        verse = check_poem(content)
        rules = {"char_tones": verse["tones"], "rhyme_group": verse["rhyme_group"], "pattern": verse["pattern_name"],
                 "rhymes": verse["rhymes"], "ends_ok": verse["ends_ok"]} if verse["form"] else {}
        return {"poem": content, "lines": poem_lines(content), "chars": self.characters(content, opts.top),
                "perplexity": scored["perplexity"], "form": scored["form"],
                "unknown_characters": scored["unknown_characters"], **rules}

    def characters(self, content: str, top: int) -> list[list[dict]]:
        """Per line, per character: the character with the model's probability and its top alternatives."""
        alts, out, pos = self._alternatives(content, top), [], 0
        for line in poem_lines(content):
            out.append([{"char": ch, "probability": alts[pos + j]["probability"],
                         "alternatives": alts[pos + j]["alternatives"]} for j, ch in enumerate(line)])
            pos += len(line)
        return out

    @torch.no_grad()
    def _stepped(self, text: str) -> dict[str, torch.Tensor]:
        """The first layer over ``<s>`` and each character of ``text``, step by step from rnnlab.nn's own
        equations (``step_through``, as the names trace reads them): name -> (T + 1, H)."""
        ids = torch.tensor([[BOS] + self.vocab.encode(text)], device=self.device)  # the model reads <s> first
        cfg = self.model.cfg
        return step_through(cfg.cell, self.model.rnn, self.model.embed(ids)[0].float(), cfg.nonlinearity)

    def _states(self, text: str) -> np.ndarray:
        """(T, H): the first layer's state after each character of ``text`` (the LSTM's cell state c_t,
        else h_t)."""
        steps = self._stepped(text)
        return steps.get("c", steps["h"])[1:].cpu().numpy()  # after each character (not after <s>)

    def _counters(self) -> dict:
        """Each unit's r^2 with each COUNTED quantity over the poems the model writes (UNITS_FIT, seed
        0): computed once per model."""
        if getattr(self, "_fit", None) is None:
            states, counted = [], {name: [] for name in COUNTED}
            for form, n in UNITS_FIT:
                for p in self.sampler.sample(n, form=form, seed=0, candidates=1, tones=False, rhyme=False):
                    text = p["poem"] if isinstance(p, dict) else p
                    states.append(self._states(text))
                    for name, values in _counted(text).items():
                        counted[name] += values
            a = np.concatenate(states)  # (N, H): every character of every poem
            a = (a - a.mean(0)) / (a.std(0) + 1e-9)
            r2 = {}
            for name, values in counted.items():
                y = np.asarray(values, dtype=np.float64)
                y = (y - y.mean()) / (y.std() + 1e-9)
                r = (a * y[:, None]).mean(0)  # (H,) each unit's correlation
                r2[name] = (r * r, np.sign(r))
            self._fit = {"r2": r2, "poems": sum(n for _, n in UNITS_FIT), "characters": len(a)}
        return self._fit

    def units(self, poem: str, opts) -> dict:
        """The units that count (Karpathy's finding in char-rnn): for the position in the line and the
        line number, the ``top`` units of the first layer whose state tracks it best (r^2 of a straight
        line through the states of every character of 80 poems the model writes, seed 0) and ``poem``
        shaded by each of them."""
        fit = self._counters()
        states = self._states(self._known(poem, "poem"))  # (T, H)
        out = []
        for name, (en, zh) in COUNTED.items():
            r2, sign = fit["r2"][name]
            best = np.argsort(-r2)[: opts.top]
            out.append({"counts": name, "help": en, "zh": zh,
                        "units": [{"unit": int(u), "r2": round(float(r2[u]), 3), "sign": int(sign[u]),
                                   "values": [round(float(v), 4) for v in states[:, u]]} for u in best]})
        return {"poem": poem, "chars": list(poem), "state": "c" if self.model.cfg.cell == "lstm" else "h",
                "measures": out, "fitted_on": {"poems": fit["poems"], "characters": fit["characters"]}}

    @torch.no_grad()
    def trace(self, text: str, opts) -> dict:
        """``text`` read as the model reads a poem, from ``<s>`` on, one step per character: the first
        layer's gates and states at each step (``rnnlab.nn.step_through``: the cells' own equations, as
        the names trace), the model's ``top`` likeliest next characters after each step and the
        probability it gave the character that came next (None after the last).

            chars          <s>   床    前    明
            gates[g]       (T + 1, H)   -- LSTM: input, forget, output; GRU: reset, update
            cell_state     (T + 1, H)   -- the LSTM's c_t
            next           T + 1 lists of {char, probability}"""
        text = self._known(text, "text")
        targets = self.vocab.encode(text)
        cfg = self.model.cfg
        probs = self._logits(targets + [EOS]).softmax(-1)  # (T + 1, V): after <s>, then after each character
        return {"text": text, "chars": ["<s>", *text], "cell": cfg.cell, **named(cfg.cell, self._stepped(text)),
                "nonlinearity": cfg.nonlinearity,
                "next": [self._choices(row, opts.top) for row in probs],
                "actual": [round(float(probs[t, c]), 4) if ch in self.vocab else None
                           for t, (c, ch) in enumerate(zip(targets, text))] + [None]}

    @staticmethod
    def format_trace(r: dict) -> str:
        """After each step: the character read, the likeliest next ones, the probability of the one that came."""
        rows = []
        for t, ch in enumerate(r["chars"]):
            nxt = " ".join(f"{n['char']} {n['probability']:.3f}" for n in r["next"][t])
            came = f"  (next in the text: {r['chars'][t + 1]} {r['actual'][t]:.3f})" if r["actual"][t] is not None else ""
            rows.append(f"{ch:<4} -> {nxt}{came}")
        return "\n".join(rows)

    def _known(self, text: str, what: str) -> str:
        """A text with at least one character the model knows besides marks (a text of nothing but unknown
        characters has no perplexity worth the name)."""
        if not any(c in self.vocab and c not in PUNCTUATION for c in text):
            unknown = "".join(self.vocab.unknown(text))[:40]
            raise UserError(f"{what} {text[:40]!r}: no character of it is in the model's vocabulary "
                            f"(unknown: {unknown or 'none; only punctuation'}); give Chinese characters of poems")
        return text

    def check_lines(self, lines: list[str], form: str = "free") -> list[str]:
        """The lines of a poem given line by line (to rewrite one of them), checked against ``form``:
        each one line ending in its mark (，。？！；), of the form's width and count, odd lines ending
        in ，, even ones in 。(or ？！); in free form at most ``MAX_LINE_CHARS`` characters a line."""
        shape = FORMS.get(form) if form != "free" else None
        if shape and len(lines) != shape[1]:
            raise UserError(f"lines: a {form} poem has {shape[1]} lines, got {len(lines)}")
        out = []
        for i, raw in enumerate(lines):
            line = "".join(raw.split())
            body, mark = line[:-1], line[-1:]
            if not line or mark not in LINE_MARKS or any(c in LINE_MARKS for c in body) or not body:
                raise UserError(f"lines[{i}]: {raw[:60]!r} is not one line ending in one of {LINE_MARKS}")
            width = shape[0] if shape else MAX_LINE_CHARS
            if (shape and len(body) != width) or len(body) > width:
                raise UserError(f"lines[{i}]: {len(body)} characters; a line of the {form} form has "
                                f"{'at most ' if not shape else ''}{width}")
            want = "，" if i % 2 == 0 else "。"
            if shape and mark != want and not (i % 2 == 1 and mark in "？！"):
                raise UserError(f"lines[{i}]: ends with {mark!r} where the {form} form puts {want!r}")
            out.append(line)
        self._known("".join(out), "lines")
        return out

    def _logits(self, targets: list[int]) -> torch.Tensor:
        """Teacher forcing: the model reads <s> + all targets but the last -> (T, V) scores of each target."""
        target_ids = torch.tensor([targets])  # (1, T)
        ids = torch.cat([torch.tensor([[BOS]]), target_ids[:, :-1]], dim=1)
        logits, _ = self.model(ids.to(self.device))
        return logits[0].float().cpu()

    def _choices(self, probs: torch.Tensor, top: int) -> list[dict]:
        """The ``top`` likeliest characters of one (V,) distribution (special tokens left out)."""
        probs = probs.clone()
        probs[: self.vocab.offset] = 0
        values, indices = probs.topk(min(top, len(self.vocab.tokens)))
        return [{"char": self.vocab.decode([int(i)]), "probability": round(float(p), 4)} for p, i in zip(values, indices)]

    @torch.no_grad()
    def _alternatives(self, text: str, top: int) -> list[dict]:
        targets = self.vocab.encode(text)
        probs = self._logits(targets).softmax(-1)  # (T, V)
        return [{"char": ch, "probability": round(float(probs[t, targets[t]]), 4) if ch in self.vocab else None,
                 "alternatives": self._choices(probs[t], top)}
                for t, ch in enumerate(text)]

    def alternatives(self, poem: str, opts: AlternativesOptions) -> list[dict]:
        """For each character of ``poem``: its probability under the model at that position and the
        model's ``top`` likeliest characters there (what else the poem could have said)."""
        return self._alternatives(self._known(poem, "poem"), opts.top)

    @torch.no_grad()
    def predict(self, texts: list[str], opts: NextOptions) -> list[dict]:
        """For each text: its perplexity as a poem, and the likeliest next characters after it."""
        out = []
        for i, text in enumerate(texts):
            targets = encode_poem(self.vocab, self._known(text, f"texts[{i}]"))  # characters + </s>
            logits = self._logits(targets)  # (T, V); the last row: what follows the whole text
            nll = F.cross_entropy(logits, torch.tensor(targets)).item()
            out.append({"text": text, "perplexity": round(math.exp(nll), 2), "form": form_of(text),
                        "unknown_characters": self.vocab.unknown(text),
                        "next": self._choices(logits[-1].softmax(-1), opts.top)})
        return out

    @staticmethod
    def format(r: dict) -> str:
        nxt = " ".join(f"{n['char']} {n['probability']:.3f}" for n in r["next"])
        note = f"  (unseen characters: {''.join(r['unknown_characters'])})" if r["unknown_characters"] else ""
        return f"{r['text']}: perplexity {r['perplexity']:.1f}, form {r['form'] or 'irregular'}; next: {nxt}{note}"

    @staticmethod
    def format_units(r: dict) -> str:
        """Each counted quantity's best units: r^2, and the unit's state under each character of the poem."""
        rows = [f"the first layer's {'cell state c_t' if r['state'] == 'c' else 'hidden state h_t'}, fitted on "
                f"{r['fitted_on']['poems']} poems ({r['fitted_on']['characters']} characters) the model wrote"]
        for m in r["measures"]:
            rows.append(f"{m['help']}:")
            rows += [f"  unit {u['unit']:>4}  r^2 {u['r2']:.3f}  " + " ".join(f"{c}{v:+.2f}" for c, v in
                                                                          zip(r["chars"], u["values"]))
                     for u in m["units"]]
        return "\n".join(rows)

    @staticmethod
    def format_poem(p) -> str:
        return format_poem(p["poem"] if isinstance(p, dict) else p) or "(empty)"


@register
class PoemsTask(Task):
    """Tang poems: a character-level language model (the contract: rnnlab.tasks.base.Task)."""

    name = "poems"
    monitor = "perplexity"
    monitor_mode = "min"
    serve_nice = 10  # a poem takes 40-60 ms of CPU, a name or a short review a few: poems yield under load
    config_cls = PoemsConfig
    model_config_cls = LanguageModelConfig
    default_model = DEFAULT_MODEL
    default_train = DEFAULT_TRAIN
    predictor_cls = PoemsPredictor

    def __init__(self, cfg: PoemsConfig, seed: int, state: dict | None = None):
        self.cfg = cfg
        path = Path(cfg.data) if cfg.data else default_data_dir() / POEMS_FILE
        convert = cfg.convert == "t2s" or (cfg.convert == "auto" and bool(cfg.data))
        poems, self.data_report = read_poems(path, convert)
        self.data_files = _poem_files(path)  # what data_fingerprint() hashes
        kept, clean_report = clean(poems, cfg.min_chars, cfg.max_chars, _parse_forms(cfg.forms))
        self.data_report.update(clean_report, data=str(path), converted_t2s=convert)
        if len(kept) < 3:
            raise UserError(f"{path}: {len(kept)} poems left after filtering (dropped: {clean_report['dropped']}); "
                            "loosen --min-chars/--max-chars/--forms")
        # Split by poem, seeded: a poem's lines never appear in two splits.
        order = np.random.default_rng(seed).permutation(len(kept))
        n_test = max(1, int(round(cfg.test_fraction * len(kept))))
        n_val = max(1, int(round(cfg.val_fraction * len(kept))))
        self.splits = {"test": [kept[i] for i in sorted(order[:n_test])],
                       "val": [kept[i] for i in sorted(order[n_test : n_test + n_val])],
                       "train": [kept[i] for i in sorted(order[n_test + n_val :])]}
        if cfg.limit and cfg.limit < len(self.splits["train"]):
            self.splits["train"] = self.splits["train"][: cfg.limit]
        contents = {k: [p["content"] for p in v] for k, v in self.splits.items()}
        # Most frequent first: the adaptive softmax's clusters are ranges of ids.
        self.vocab = (Vocab(state["chars"], LM_SPECIALS) if state
                      else Vocab.build(contents["train"], cfg.min_count, LM_SPECIALS, by_frequency=True))
        self.encoded = {k: [encode_poem(self.vocab, c) for c in v] for k, v in contents.items()}
        # Training loss is re-scored on a fixed sample of training poems as large as the validation split.
        pick = np.random.default_rng(seed + 1).permutation(len(self.encoded["train"]))[: len(self.encoded["val"])]
        self.encoded["train_sample"] = [self.encoded["train"][i] for i in sorted(pick)]
        tokens = sum(len(e) for e in self.encoded["train"])
        unk = sum(e.count(UNK) for e in self.encoded["train"])
        forms = Counter(form_of(c) or "other" for c in contents["train"])
        self.data_report.update({
            "train_items": len(contents["train"]), "val_items": len(contents["val"]), "test_items": len(contents["test"]),
            "vocabulary": len(self.vocab), "train_tokens": tokens, "train_unknown_share": round(unk / max(tokens, 1), 5),
            "regular_share": round(1 - forms.get("other", 0) / max(len(contents["train"]), 1), 4),
            "train_forms": dict(forms.most_common()), "protocol": "by poem"})

    # --- what the model needs ------------------------------------------------------------------
    def model_config(self, model_cfg: LanguageModelConfig) -> LanguageModelConfig:
        return replace(model_cfg, vocab_size=len(self.vocab))

    @classmethod
    def rebuild_model(cls, model_cfg: LanguageModelConfig) -> LanguageModel:
        return LanguageModel(model_cfg)

    def state(self) -> dict:
        return {"chars": self.vocab.tokens}

    def training_lines(self) -> set[str]:
        return {line for p in self.splits["train"] for line in lines_of(p["content"])}

    # --- the loop's interface ------------------------------------------------------------------
    def _buckets(self, split: str, batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
        seqs = self.encoded[split]
        # Sort by length, ties in random order; cut into batches; then shuffle the batches.
        noise = (torch.rand(len(seqs), generator=generator) if generator is not None else torch.zeros(len(seqs))).tolist()
        order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), noise[i]))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if generator is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def num_batches(self, split: str, batch_size: int) -> int:
        return math.ceil(len(self.encoded[split]) / batch_size)

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        seqs = self.encoded[split]
        for idx in self._buckets(split, batch_size, generator if shuffle else None):
            width = max(len(seqs[i]) for i in idx)
            targets = torch.zeros(len(idx), width, dtype=torch.long)  # (B, T); 0 = padding, ignored
            for row, i in enumerate(idx):
                targets[row, : len(seqs[i])] = torch.tensor(seqs[i])
            ids = torch.cat([torch.full((len(idx), 1), BOS), targets[:, :-1]], dim=1)  # inputs: <s> + all but the last
            yield {"ids": ids, "lengths": (targets > 0).sum(1), "targets": targets}

    def loss_weight(self, batch: dict) -> float:
        """The loss is a mean over real target tokens (padding is ignored)."""
        return float((batch["targets"] != PAD).sum())

    @torch.no_grad()
    def evaluate(self, model, split: str, device) -> dict:
        model.eval()
        split = "train_sample" if split == "train" else split
        nll, count = 0.0, 0
        for batch in self.batches(split, 256, shuffle=False):
            logits, _ = model(batch["ids"].to(device))
            targets = batch["targets"].to(device)
            nll += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD,
                                   reduction="sum").item()
            count += int((targets > 0).sum())
        loss = nll / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    def final_report(self, model, device, seed: int = 0, temperature: float = SampleOptions.temperature,
                     rhyme_scheme: str = SampleOptions.rhyme_scheme) -> dict:
        """Test perplexity, and the quality of unconstrained samples (free form, sampled as
        ``rnnlab generate`` samples by default) beside the corpus's own figures; then regulated
        samples of each form (``generate --form``'s defaults: rhyme and tone pattern kept) and what
        the rules cost in fluency (the model's log-probability per token, regulated vs free)."""
        report = {f"test_{k}": v for k, v in self.evaluate(model, "test", device).items()}
        report.update({f"val_{k}": v for k, v in self.evaluate(model, "val", device).items()})
        sampler = PoemSampler(model, self.vocab, device)
        settings = {"temperature": temperature, "top_k": 0, "top_p": 1.0, "seed": seed}
        poems = sampler.sample(self.cfg.samples, **settings) if self.cfg.samples else []
        training_lines = self.training_lines()
        report["samples"] = quality(poems, training_lines)
        report["samples"]["settings"] = settings
        report["corpus"] = corpus_reference([p["content"] for p in self.splits["train"]])
        report["examples"] = poems[:12]
        per_form = min(50, self.cfg.samples)
        if per_form:
            report["samples"]["logprob"] = float(np.mean(sampler.logprob(poems)))
            report["regulated"] = self._regulated_report(sampler, per_form, settings, rhyme_scheme, training_lines,
                                                         report["samples"]["logprob"])
        return report

    def baseline(self) -> dict:
        from ..baselines import ngram_baseline

        e = self.encoded
        return ngram_baseline(e["train"], e["val"], e["test"], len(self.vocab), BOS, order=5)

    def versus_baseline(self, test: dict, baseline: dict) -> dict:
        ours, base = test["test_perplexity"], baseline["test"]["perplexity"]
        return {"metric": "perplexity", "ratio": ours / base,
                "text": f"model test perplexity {ours:.1f} vs baseline {base:.1f} ({baseline['name']}): "
                        f"{abs(1 - ours / base):.0%} {'lower' if ours < base else 'higher'}"}

    def data_line(self) -> str:
        r = self.data_report
        dropped = ", ".join(f"{n} {reason}" for reason, n in r["dropped"].items()) or "none"
        read_as = "".join(f"; {f} read as {e} (its byte-order mark)" for f, e in r.get("encodings", {}).items())
        return (f"data: {r['train_items']} train, {r['val_items']} val, {r['test_items']} test poems (by poem); "
                f"dropped: {dropped}{read_as}")

    @classmethod
    def compare_columns(cls, test: dict) -> dict:
        s = test["samples"]
        return {"test perplexity": test["test_perplexity"], "samples well-formed": s["well_formed"],
                "rhyme": s["rhyme_rate"], "distinct lines": s["distinct_lines"], "copied lines": s["copy_rate"]}

    @classmethod
    def report_section(cls, test: dict) -> str:
        from ..report import table

        return table(["", "value"], [["test perplexity (per character)", test["test_perplexity"]],
                                     ["validation perplexity", test["val_perplexity"]]]) + samples_section(test)

    @staticmethod
    def _regulated_report(sampler, per_form: int, settings: dict, rhyme_scheme: str, training_lines: set,
                          free_logprob: float) -> dict:
        """``per_form`` regulated poems of each form, measured like the free ones."""
        out, every = {"per_form": per_form, "rhyme_scheme": rhyme_scheme, "forms": {}}, []
        for i, form in enumerate(FORMS):
            # A seed of its own per form: with one seed, 5x4 and 5x8 poems would share their first lines.
            try:
                made = sampler.sample(per_form, form=form, rhyme_scheme=rhyme_scheme, details=True,
                                      **{**settings, "seed": (settings["seed"] + 1 + i) % 2**32})
            except ValueError as e:  # the rules cannot be met by this model (a tiny corpus): said in the report
                out.setdefault("not_written", {})[form] = str(e)
                continue
            q = quality([d["poem"] for d in made], training_lines)
            q["logprob"] = float(np.mean([d["logprob"] for d in made]))
            out["forms"][form] = {k: v for k, v in q.items() if k != "forms"}
            every += made
        if not every:
            return out
        out["all"] = quality([d["poem"] for d in every], training_lines)
        out["all"]["logprob"] = float(np.mean([d["logprob"] for d in every]))
        # What the rules cost in fluency: the regulated poems' negative log-probability per token
        # over the free samples' (1.0 = no cost; the free ones set the model's own level).
        out["nll_ratio"] = out["all"]["logprob"] / free_logprob if free_logprob else float("nan")
        out["examples"] = [d["poem"] for d in every[::per_form]]  # the first poem of each form
        return out

    report_options = subset(SampleOptions, ("temperature", "rhyme_scheme"), "PoemsReportOptions")

    @staticmethod
    def report_lines(report: dict) -> list[str]:
        out = [f"{key}: " + json.dumps({k: v for k, v in report[key].items() if k != "settings"}, ensure_ascii=False)
               for key in ("samples", "corpus") if key in report]
        if "regulated" in report:  # the forms written under the rules of regulated verse
            r = report["regulated"]
            cost = (f": negative log-probability per token {r['nll_ratio']:.2f}x the free samples'"
                    if "nll_ratio" in r else "")
            out.append(f"regulated ({r['per_form']} per form, {r['rhyme_scheme']}){cost}")
            out += [f"  {form}: " + json.dumps(q, ensure_ascii=False) for form, q in r["forms"].items()]
            out += [f"  {form}: not written: {why}" for form, why in r.get("not_written", {}).items()]
        return out

    @staticmethod
    def headline(test: dict) -> str:
        s = test["samples"]
        return (f"test perplexity {test['test_perplexity']:.1f}; samples: {s['well_formed']:.0%} well-formed, "
                f"rhyme {s['rhyme_rate']:.0%}, distinct lines {s['distinct_lines']:.2f}, copied lines {s['copy_rate']:.0%}")
