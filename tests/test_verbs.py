"""One source for every door: a task's verbs are declared once (rnnlab.verbs), and the command line,
the Python API and the web API derive their inputs, options, defaults and ranges from there."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import rnnlab
from rnnlab import cli
from rnnlab.generate import SampleOptions
from rnnlab.options import declared
from rnnlab.serve.app import create_app
from rnnlab.tasks import TASKS
from rnnlab.verbs import every_verb, verbs_of

SRC = Path(rnnlab.__file__).parent


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(bundled=True)) as c:
        yield c


def test_every_verb_is_named_in_the_command_line_s_help():
    assert set(every_verb(TASKS)) <= set(cli.VERB_NAMES)


def test_the_temperature_is_declared_once():
    """No default or range of a sampling option is written anywhere but its declaration."""
    assert SampleOptions().temperature == 0.8
    hits = []
    for path in list(SRC.rglob("*.py")) + list((SRC / "serve" / "static").rglob("*.js")) + [SRC / "serve" / "static" / "index.html"]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            hits += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"temperature[^\n]{0,40}\b0\.8\b", text)]
    assert len(hits) == 1 and hits[0].startswith("generate.py"), hits


def test_the_three_doors_give_the_same_poem_with_defaults(client, capsys):
    """Defaults only (and one seed): the command line, the Python API and a served request agree."""
    api = rnnlab.load_run("poems").generate(form="5x4")
    assert cli.main(["generate", "--run", "poems", "--form", "5x4"]) == 0
    printed = capsys.readouterr().out.strip().replace("\n", "")
    served = client.post("/api/poems/generate", json={"form": "5x4"}).json()["results"]
    assert api == served == [printed]
    names = rnnlab.load_run("names").predict(["Satoshi"])
    assert client.post("/api/names/predict", json={"names": ["Satoshi"]}).json()["results"] == names
    assert cli.main(["predict", "--run", "names", "--json", "Satoshi"]) == 0
    assert json.loads(capsys.readouterr().out) == names


def test_api_tasks_describes_every_verb_from_its_declaration(client):
    info = {t["name"]: t for t in client.get("/api/tasks").json()["tasks"]}
    assert set(info) == set(TASKS)
    for name, cls in TASKS.items():
        assert set(info[name]["verbs"]) == set(verbs_of(cls)) and info[name]["monitor"] == cls.monitor
    temperature = next(o for o in info["poems"]["verbs"]["generate"]["options"] if o["name"] == "temperature")
    assert (temperature["default"], temperature["min"], temperature["max"]) == (0.8, 0.05, 10)
    assert temperature["typical"] == [0.1, 2.0] and temperature["zh"] != temperature["help"]
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]["PoemsGenerateBody"]["properties"]
    assert schema["temperature"]["default"] == 0.8 and schema["temperature"]["maximum"] == 10


def test_each_door_refuses_the_same_value_naming_it(client, capsys):
    bad = {"temperature": 20}
    assert "temperature" in client.post("/api/poems/generate", json=bad).json()["error"]
    with pytest.raises(ValueError, match="--temperature 20"):
        rnnlab.load_run("poems").generate(**bad)
    assert cli.main(["generate", "--run", "poems", "--temperature", "20"]) == 2
    assert "--temperature 20.0: must be >= 0.05 and <= 10" in capsys.readouterr().err
    with pytest.raises(ValueError, match="did you mean 'temperature'"):
        rnnlab.load_run("poems").generate(temprature=0.5)
    with pytest.raises(ValueError, match="a names model cannot generate"):
        rnnlab.load_run("names").call("generate")


def test_the_python_api_s_verbs_are_the_declared_ones():
    run = rnnlab.load_run("names")
    assert set(run.verbs) == {"predict", "trace", "saliency"} and run.trace.__doc__ == run.verbs["trace"].help
    with pytest.raises(AttributeError, match="its verbs: predict, trace, saliency"):
        run.generate
    for cls in TASKS.values():
        for verb in verbs_of(cls).values():  # every option has help in both languages and a working default
            verb.options()
            assert all(opt.help and opt.zh for _, opt in declared(verb.options)), verb.name
            assert dataclasses.is_dataclass(verb.options)
