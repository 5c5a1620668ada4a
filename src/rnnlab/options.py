"""Options declared once: each configuration field states its type (from its default), valid range or
choices, and help text, and everything else is derived from that one declaration -- the command
line's flags and ``--help``, the range checks (one-line messages naming the flag and the value), the
web API's limits, ``config.json`` and the Python API.

A configuration is a frozen dataclass whose fields are made with ``option()``::

    @dataclass(frozen=True)
    class TrainConfig(Options):
        epochs: int = option(10, "passes over the training data", min=1)

``Options.__post_init__`` checks every field, so a bad value fails where it is made, whether it came
from a flag, a JSON body, a notebook or an edited ``config.json``.

Torch-free on purpose (``rnnlab --help`` answers at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
from dataclasses import dataclass, fields
from typing import Any, Callable

from .nn.spec import NONLINEARITIES, RECURRENT_CELLS  # noqa: F401 (re-exported; the cell facts live with the cells)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("none", "cosine", "plateau")
DEVICES = ("auto", "cpu", "cuda")
CELLS = ("tutorial",) + RECURRENT_CELLS
BACKENDS = ("scratch", "torch")
POOLS = ("last", "max", "mean", "attention")
POEM_FORMS = ("5x4", "7x4", "5x8", "7x8", "free")


@dataclass(frozen=True)
class Opt:
    """What a field declares: help text, range or choices, its flag, and where it may be given."""

    help: str
    min: float | None = None  # inclusive bounds (for a tuple: of every element)
    max: float | None = None
    above: float | None = None  # exclusive lower bound (e.g. a learning rate: > 0)
    below: float | None = None  # exclusive upper bound
    choices: tuple | None = None
    flag: str | None = None  # default: --field-name
    cli: bool = True  # False: derived from the data or fixed by the task, not a user option
    resume: bool = False  # may be changed when resuming a run (--epochs, --max-time, ...)
    parse: Callable[[str], Any] | None = None  # text -> value, for tuple fields ("0.5,1,1.5")
    metavar: str | None = None
    max_chars: int | None = None  # text: at most this many characters
    zh: str = ""  # the help in Chinese (the page shows it in Chinese mode)
    typical: tuple[float, float] | None = None  # the span a slider offers (values outside it stay allowed)


def option(default, help: str, **kwargs) -> Any:
    """A dataclass field that declares itself (see ``Opt``)."""
    return dataclasses.field(default=default, metadata={"option": Opt(help, **kwargs)})


def declared(cls_or_obj) -> list[tuple[dataclasses.Field, Opt]]:
    """The fields of a configuration that carry a declaration."""
    return [(f, f.metadata["option"]) for f in fields(cls_or_obj) if "option" in f.metadata]


def flag_of(field_name: str, opt: Opt | None = None) -> str:
    return (opt.flag if opt and opt.flag else "--" + field_name.replace("_", "-"))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def describe_range(opt: Opt) -> str:
    if opt.choices:
        return "one of " + ", ".join(map(str, opt.choices))
    parts = []
    if opt.min is not None:
        parts.append(f">= {_num(opt.min)}")
    if opt.above is not None:
        parts.append(f"> {_num(opt.above)}")
    if opt.max is not None:
        parts.append(f"<= {_num(opt.max)}")
    if opt.below is not None:
        parts.append(f"< {_num(opt.below)}")
    return " and ".join(parts)


def check_value(name: str, opt: Opt, value, kind) -> None:
    """Raise ValueError naming the flag when ``value`` breaks the declaration."""
    flag = flag_of(name, opt)
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{flag} {shown!r}: expected true or false")
        return
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if kind in (int, float) or isinstance(v, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
                raise TypeError(f"{flag} {shown!r}: expected {'an integer' if kind is int else 'a number'}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{flag} {shown}: must be a finite number")
            if ((opt.min is not None and v < opt.min) or (opt.max is not None and v > opt.max)
                    or (opt.above is not None and v <= opt.above) or (opt.below is not None and v >= opt.below)):
                raise ValueError(f"{flag} {shown}: must be {describe_range(opt)}")
        elif kind is str and not isinstance(v, str):
            raise TypeError(f"{flag} {shown!r}: expected text")
        elif kind is str and opt.max_chars is not None and len(v) > opt.max_chars:
            raise ValueError(f"{flag} {v[:20]!r}: at most {opt.max_chars} character{'s' if opt.max_chars != 1 else ''}")
        if opt.choices and v not in opt.choices:
            raise ValueError(f"{flag} {v!r}: choose one of {', '.join(map(str, opt.choices))}")


def field_kind(f: dataclasses.Field):
    """int, float, str, bool or tuple -- from the default value (annotations are strings here)."""
    default = f.default
    if isinstance(default, tuple):
        return type(default[0]) if default else str
    return type(default)


class Options:
    """Mixin for frozen configuration dataclasses whose fields are made with ``option()``: every value
    is checked against its declaration when the configuration is made."""

    def __post_init__(self) -> None:
        for f, opt in declared(self):
            value = getattr(self, f.name)
            if isinstance(f.default, tuple) and isinstance(value, list):  # from JSON
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if isinstance(value, int) and not isinstance(value, bool) and field_kind(f) is float:
                object.__setattr__(self, f.name, float(value))  # JSON and flags may give 3 for 3.0
                value = float(value)
            check_value(f.name, opt, value, field_kind(f))
        self.check()

    def check(self) -> None:
        """Checks that involve several fields (subclasses add theirs; raise ValueError)."""

    def implied(self, given: set[str]):
        """This configuration after the rules that depend on what the user chose (``given``: the
        field names set explicitly): defaults that follow from a choice, and options that the choice
        does not use, which are an error rather than silently ignored."""
        return self

    @classmethod
    def from_dict(cls, data: dict, where: str = ""):
        """A configuration from JSON. An unknown key is an error (with the closest known key), not
        silently dropped: a typo in a config must not train something else."""
        renamed = getattr(cls, "RENAMED", {})  # older runs' field names
        data = {renamed.get(k, k): v for k, v in data.items()}
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where + ': ' if where else ''}unknown {cls.__name__} key {unknown[0]!r}{hint}")
        return cls(**data)



def subset(cls, names: tuple[str, ...], name: str):
    """A configuration of some of ``cls``'s declared fields (the same declarations: defaults, ranges,
    help), e.g. the sampling options a report takes from the sampler's."""
    picked = [(f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata))
              for f in fields(cls) if f.name in names]
    return dataclasses.make_dataclass(name, picked, bases=(Options,), frozen=True)


class BadValue(ValueError, argparse.ArgumentTypeError):
    """A value a parser cannot read: a ValueError for Python callers, and argparse shows its message."""


def parse_list(kind: type) -> Callable[[str], tuple]:
    """'0.5,1,1.5' -> (0.5, 1.0, 1.5): the parser of a tuple option."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise BadValue(f"{text!r}: give comma-separated {'integers' if kind is int else 'numbers'}") from None
        if not values:
            raise BadValue(f"{text!r}: give at least one value")
        return values

    parse.__name__ = f"{kind.__name__} list"
    return parse


def parse_names(choices: tuple[str, ...]) -> Callable[[str], tuple]:
    """'lstm,gru' -> ('lstm', 'gru'), each checked against ``choices``."""

    def parse(text: str) -> tuple:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in choices]
        if not values or bad:
            raise BadValue(f"{text!r}: give a comma-separated list from {', '.join(choices)}")
        return values

    parse.__name__ = "list"
    return parse
