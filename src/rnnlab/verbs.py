"""A task's actions, declared once: what a trained model can do, with what input and which options.

A task's predictor lists its verbs::

    class NamesPredictor:
        verbs = (Verb("predict", "the likeliest languages of each name", PredictOptions,
                      Input("names", "surnames", max_chars=100), text="format"),
                 Verb("trace", "the answer and the gates character by character", TraceOptions,
                      Input("name", "one surname", many=False)))

        def predict(self, names: list[str], opts: PredictOptions) -> list[dict]: ...

where ``PredictOptions`` is an ``Options`` dataclass of ``option()`` fields (type, default, range, help in
English and Chinese). Every front door is derived from that one declaration:

=================  =================================================================================
door               what it derives
=================  =================================================================================
command line       ``rnnlab VERB --run RUN [INPUT ...] [--option ...]``: the input as arguments (or
                   lines of standard input), one flag per option with its default and range in --help
Python API         ``rnnlab.load_run(RUN).VERB(input, **options)``: keyword arguments by field name
web API            ``POST /api/TASK/VERB`` with ``{"INPUT": ..., "option": ..., "run": ...}``: the
                   request body and its JSON schema (``/api/openapi.json``), and ``GET /api/tasks``
the page           each task's forms: defaults, ranges and choices (a task without a tab of its own
                   gets a generic one, built from ``/api/tasks``)
=================  =================================================================================

so a default or a range is written once (``tests/test_verbs.py`` checks the doors agree). Torch-free.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UserError
from .options import declared, describe_range, field_kind, flag_of


@dataclass(frozen=True)
class Input:
    """The main input of a verb: texts (``many``) or one text, each at most ``max_chars`` characters.
    ``check`` is a content rule (text -> text, or ValueError saying what is wrong); ``per_request``
    bounds the items of one web request (the command line and Python batch any number)."""

    name: str
    help: str
    many: bool = True
    max_chars: int = 2000
    per_request: int = 64
    check: Callable[[str], str] | None = None
    zh: str = ""

    def validate(self, value) -> list[str] | str:
        """The input, checked as every door checks it (a UserError naming the item otherwise)."""
        if self.many:
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise UserError(f"{self.name}: give a list of texts, not {type(value).__name__}")
            if not value:
                raise UserError(f"{self.name}: give at least one")
            return [self._one(v, f"{self.name}[{i}]") for i, v in enumerate(value)]
        return self._one(value, self.name)

    def _one(self, text, where: str) -> str:
        if not isinstance(text, str):
            raise UserError(f"{where}: expected text, not {type(text).__name__}")
        if not text.strip():
            raise UserError(f"{where}: empty; give at least one character")
        if len(text) > self.max_chars:
            raise UserError(f"{where}: at most {self.max_chars:,} characters (got {len(text):,})")
        if self.check is not None:
            try:
                return self.check(text)
            except ValueError as e:
                raise UserError(f"{where}: {e}") from None
        return text


@dataclass(frozen=True)
class Verb:
    """One action of a trained model: ``predictor.<name>(input, options)`` (or ``(options)`` without
    input). ``text`` names the predictor's method that words one result for the terminal (None: the
    command line prints JSON); ``example`` is what the server warms the model up with: an input, or
    for a verb without input its options (None: no warm-up); ``per_item``: the answer is a list with
    one result per input item, each the same whatever the other items are (the server may then join
    requests that arrive together into one call: micro-batching); ``under_load``: (option, value)
    pairs the server uses instead of the defaults when requests of the task are already waiting (a
    lighter answer sooner; options the request sets itself are kept, and the answer says which were
    lightened); ``joined_by``: for a verb without input, the options in which requests may differ and
    still run as one call of the predictor's ``<name>_joined(list of options)``, which answers each
    request as it would be answered alone (the server joins requests that arrive together: poems
    decoded in one batch, each with its own seed)."""

    name: str
    help: str
    options: type
    input: Input | None = None
    zh: str = ""
    text: str | None = None
    example: Any = None
    per_item: bool = False
    under_load: tuple = ()
    joined_by: tuple = ()

    def __post_init__(self) -> None:
        if self.joined_by and self.input is not None:
            raise ValueError(f"verb {self.name}: joined_by is for a verb without input (an input list: per_item)")


def top_options(name: str, default: int, most: int, help: str, zh: str = ""):
    """The options of a verb whose one option is how many answers to show (``top``)."""
    from .options import Options, option

    field = ("top", int, option(default, help, min=1, max=most, zh=zh))
    return dataclasses.make_dataclass(name, [field], bases=(Options,), frozen=True)


def verbs_of(task_cls) -> dict[str, Verb]:
    """The verbs a task's trained models answer, by name."""
    return {v.name: v for v in getattr(task_cls.predictor_cls, "verbs", ())}


def every_verb(tasks: dict) -> dict[str, list[str]]:
    """verb name -> the tasks that have it (in registration order)."""
    out: dict[str, list[str]] = {}
    for name, cls in tasks.items():
        for verb in verbs_of(cls):
            out.setdefault(verb, []).append(name)
    return out


def find_verb(task_cls, name: str) -> Verb:
    verbs = verbs_of(task_cls)
    if name not in verbs:
        known = ", ".join(verbs) or "none"
        raise UserError(f"a {task_cls.name} model cannot {name} (it can: {known})")
    return verbs[name]


def request(verb: Verb, options: dict):
    """The verb's options from keyword arguments (or a JSON body): an unknown name is an error with the
    closest known one, and every value is checked against its declaration."""
    names = [f.name for f in dataclasses.fields(verb.options)]
    unknown = [k for k in options if k not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{verb.name}: unknown option {unknown[0]!r}{hint}; its options: {', '.join(names) or 'none'}")
    return verb.options(**options)


def call(predictor, verb: Verb, value=None, options: dict | None = None):
    """What every door runs: the input and options checked, then the predictor's method."""
    opts = request(verb, options or {})
    method = getattr(predictor, verb.name)
    if verb.input is None:
        if value is not None:
            raise UserError(f"{verb.name} takes no input, only options")
        return method(opts)
    return method(verb.input.validate(value), opts)


def call_joined(predictor, verb: Verb, options: list[dict]) -> list:
    """Several requests of a verb with ``joined_by`` as one call (each one's options checked as in
    ``call``) -> each request's answer."""
    return getattr(predictor, f"{verb.name}_joined")([request(verb, o) for o in options])


def warm_up(predictor, verb: Verb):
    """The verb on its example (the server's first call, so that no user waits for it)."""
    if verb.input is None:
        return call(predictor, verb, None, verb.example)
    return call(predictor, verb, verb.example)


def describe_option(f: dataclasses.Field, opt) -> dict:
    """One option as the page and ``GET /api/tasks`` see it."""
    kind = field_kind(f)
    out = {"name": f.name, "type": kind.__name__, "default": f.default, "help": opt.help, "zh": opt.zh or opt.help,
           "flag": flag_of(f.name, opt), "range": describe_range(opt)}
    for key in ("min", "max", "above", "below", "max_chars", "typical"):
        if getattr(opt, key) is not None:
            out[key] = getattr(opt, key)
    if opt.choices:
        out["choices"] = list(opt.choices)
    return out


def describe(task_cls) -> dict:
    """A task's verbs, their input and options: what ``GET /api/tasks`` answers for one task."""
    verbs = {}
    for name, verb in verbs_of(task_cls).items():
        inp = verb.input
        verbs[name] = {
            "help": verb.help, "zh": verb.zh or verb.help,
            "input": None if inp is None else {"name": inp.name, "many": inp.many, "max_chars": inp.max_chars,
                                               "per_request": inp.per_request, "help": inp.help, "zh": inp.zh or inp.help},
            "options": [describe_option(f, opt) for f, opt in declared(verb.options) if opt.cli]}
    doc = (task_cls.__doc__ or "").strip().splitlines()
    return {"name": task_cls.name, "help": doc[0] if doc else task_cls.name, "monitor": task_cls.monitor,
            "monitor_mode": task_cls.monitor_mode, "verbs": verbs}
