"""The layering holds: no import cycle anywhere in src/rnnlab (postponed imports inside functions
count too: they only hide a cycle), and rnnlab.nn imports nothing from the rest of rnnlab."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """rnnlab modules imported anywhere in the file (module level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from . import x" may name a submodule; otherwise the import is of the module itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # rnnlab.nn.rnn.X -> rnnlab.nn.rnn
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    files = list((SRC / "rnnlab").rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) for f in files}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            # A package's __init__ importing its own submodules is how packages work, not a cycle.
            if n.startswith(m + "."):
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if not state.get(n):
            found = visit(n)
            if found:
                return found
    return None


def test_walker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_rnnlab():
    g = graph()
    assert len(g) > 20 and "rnnlab.tasks.base" in g["rnnlab.tasks.names"]
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_rnnlab_nn_imports_nothing_outside_it():
    for module, deps in graph().items():
        if module == "rnnlab.nn" or module.startswith("rnnlab.nn."):
            outside = {d for d in deps if not (d == "rnnlab.nn" or d.startswith("rnnlab.nn."))}
            assert not outside, f"{module} imports {outside}"


def test_the_doors_know_tasks_only_through_the_registry():
    """The web app imports the task registry (rnnlab.tasks), never a task's module: its routes, bodies and
    forms come from the verbs the tasks declare. Run folders know nothing of the data importers."""
    g = graph()
    for module, deps in g.items():
        if module.startswith("rnnlab.serve"):
            inside = {d for d in deps if d.startswith("rnnlab.tasks.")}
            assert not inside, f"{module} imports task internals {inside}"
    assert "rnnlab.bundle" not in g["rnnlab.runs"] and "rnnlab.tasks" not in g["rnnlab.verbs"]


def test_the_verbs_and_options_are_torch_free():
    import subprocess
    import sys

    code = "import sys, rnnlab.verbs, rnnlab.options, rnnlab.files; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0
