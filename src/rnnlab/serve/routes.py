"""The web API's task routes, derived from the tasks' verbs (rnnlab.verbs): for every registered task
and every verb its predictor declares, ``POST /api/<task>/<verb>`` with a request body made from the
verb's input and option() declarations (strict types, ranges, choices, unknown fields refused; the
JSON schema in ``/api/openapi.json``), and ``GET /api/tasks``, the same declarations for the page.

An answer is ``{"run": id, **predictor.context(), **result}`` for a result that is a dict, and
``{"run": id, **predictor.context(), "results": [...]}`` for a list. A verb whose input is a list is
micro-batched with the requests of the same model and options that arrive with it, and a verb with
``joined_by`` (poems ``generate``) with those that differ from it only in those options (lanes.py).

(No ``from __future__ import annotations`` here: FastAPI reads the generated body classes from the
handlers' annotations at run time.)
"""

import json
import re
from typing import Annotated, Literal, Optional

from fastapi import FastAPI, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..options import declared, field_kind
from ..verbs import Verb, call_joined, describe, verbs_of


def _no_surrogates(s: str) -> str:
    if re.search("[\ud800-\udfff]", s):
        raise ValueError("holds a lone surrogate code point: not valid text")
    return s


def text(max_length: int, min_length: int = 0):
    """A string field of at most ``max_length`` characters (no lone surrogates: they cannot be answered)."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_no_surrogates)]


RunId = text(300, 1)


class Body(BaseModel):
    # Strict types (no "3" for 3), unknown fields refused (a typo is an error, not silently ignored).
    model_config = ConfigDict(strict=True, extra="forbid")


def _option_field(f, opt) -> tuple:
    """(type, Field) of one declared option: its default, range or choices, and help."""
    kind = field_kind(f)
    if opt.choices:
        kind = Literal[tuple(opt.choices)]
    elif kind is str:
        kind = text(opt.max_chars if opt.max_chars is not None else 10_000)
    bounds = {key: getattr(opt, name) for key, name in (("ge", "min"), ("le", "max"), ("gt", "above"), ("lt", "below"))
              if getattr(opt, name) is not None and field_kind(f) in (int, float)}
    return kind, Field(f.default, description=opt.help, **bounds)


def body_model(task: str, verb: Verb) -> type[Body]:
    """The request body of ``POST /api/<task>/<verb>``."""
    fields = {}
    inp = verb.input
    if inp is not None:
        item = text(inp.max_chars, 1)
        if inp.check is not None:
            item = Annotated[item, AfterValidator(inp.check)]
        fields[inp.name] = ((list[item], Field(min_length=1, max_length=inp.per_request, description=inp.help))
                            if inp.many else (item, Field(description=inp.help)))
    for f, opt in declared(verb.options):
        fields[f.name] = _option_field(f, opt)
    fields["run"] = (Optional[RunId], Field(None, description="a bundled model or a run id as GET /api/runs lists it "
                                                              "(default: the task's bundled model)"))
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", f"{task} {verb.name}") if part) + "Body"
    return create_model(name, __base__=Body, **fields)


def answer(rid: str, context: dict, result, said: dict | None = None) -> dict:
    """``{"run", **context, **result}`` (a list result as ``"results"``), and what was lightened."""
    return {"run": rid, **context, **(result if isinstance(result, dict) else {"results": result}), **(said or {})}


def _handler(task: str, verb: Verb, lane, lookup):
    model = body_model(task, verb)
    batchable = verb.per_item and verb.input is not None and verb.input.many

    async def handler(body: model, request: Request):
        data = body.model_dump()
        run_id = data.pop("run")
        value = data.pop(verb.input.name) if verb.input is not None else None

        def called(values):
            """(run id, the model's context, the verb's result): one call, in the lane's worker thread."""
            rid, run = lookup(run_id, task)
            return rid, getattr(run.predictor, "context", dict)(), run.call(verb.name, values, **data)

        def results(values) -> list:
            """(run id, context, result) of each value: what a batch splits among its requests."""
            rid, context, out = called(values)
            return [(rid, context, r) for r in out]

        if batchable:  # joined with the requests of the same model and options that arrive with it
            key = (run_id, verb.name, json.dumps(data, sort_keys=True))
            answers = await lane.batched(key, value, results, request.is_disconnected)
            rid, context, _ = answers[0]
            return answer(rid, context, [r for _, _, r in answers])

        lighter = {}
        if verb.under_load and lane.waiting():  # requests already wait: the lighter defaults
            lighter = {k: v for k, v in verb.under_load if k not in body.model_fields_set}
            data.update(lighter)
        said = {"under_load": lighter} if lighter else {}

        if verb.joined_by:  # one call with the requests that differ from it only in these options
            def joined(requests: list[dict]) -> list:
                rid, run = lookup(run_id, task)
                context = getattr(run.predictor, "context", dict)()
                return [(rid, context, r) for r in call_joined(run.predictor, verb, requests)]

            key = (run_id, verb.name, json.dumps({k: v for k, v in data.items() if k not in verb.joined_by},
                                                 sort_keys=True))
            [(rid, context, result)] = await lane.batched(key, [data], joined, request.is_disconnected)
            return answer(rid, context, result, said)

        def work():
            return answer(*called(value), said)

        return await lane.one(work, request.is_disconnected)

    handler.__name__ = f"{task}_{verb.name}"
    handler.__doc__ = verb.help
    return handler


def add_task_routes(app: FastAPI, tasks: dict, lanes: dict, lookup) -> None:
    """``POST /api/<task>/<verb>`` for every verb of every task, and ``GET /api/tasks``. Each runs in
    its task's lane (``lanes[task]``, lanes.py); ``lookup(run_id, task)`` -> (id, run) finds the model
    (in the lane's worker thread: the first request of a model loads it)."""
    for task, cls in tasks.items():
        for verb in verbs_of(cls).values():
            app.post(f"/api/{task}/{verb.name}", name=f"{task} {verb.name}", summary=verb.help)(
                _handler(task, verb, lanes[task], lookup))

    @app.get("/api/tasks")
    async def task_list():
        """Every task's verbs with their input and options (defaults, ranges, choices, help in English
        and Chinese): what the page builds its forms from."""
        return {"tasks": [describe(cls) for cls in tasks.values()]}
