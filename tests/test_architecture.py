"""The layering rules of docs/architecture.md, checked on the source: no import cycles, no private names taken
across packages, grpo/dpo independent of ppo/sft internals, help and the server free of torch and TRL, the saved
help equal to the parsers, every stage verb's contract naming real settings, and short files and functions."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = ("prep", "sft", "label", "reward", "ppo", "dpo", "grpo", "eval", "redteam", "annotate")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "heal").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(modules: dict[str, Path]) -> dict[str, set[tuple[str, str | None]]]:
    """module → {(imported heal module, imported name or None)}, function-level imports included."""
    edges: dict[str, set[tuple[str, str | None]]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges[module] |= {(a.name, None) for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("heal"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges[module].add((full, None) if full in modules else (node.module, alias.name))
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_and_no_private_names_across_packages():
    modules = _modules()
    edges = _imports(modules)
    graph = {m: {target for target, _ in targets if target in modules} for m, targets in edges.items()}
    assert _cycles(graph) == []
    private = [(m, f"{target}.{name}") for m, targets in edges.items() for target, name in targets
               if name and name.startswith("_") and not name.startswith("__")
               and target.split(".")[:2] != m.split(".")[:2]]
    assert private == []


def test_grpo_and_dpo_take_nothing_from_ppo_or_sft():
    edges = _imports(_modules())
    taken = sorted({target for m, targets in edges.items() if m.startswith(("heal.grpo", "heal.dpo"))
                    for target, _ in targets if target.startswith(("heal.ppo", "heal.sft"))})
    assert taken == []


def test_help_and_the_server_import_neither_torch_nor_trl():
    """`heal --help`, `heal <verb> --help` for every verb and `import heal.serve.app`, in a fresh interpreter."""
    script = """
import contextlib, io, json, sys
from heal.cli import VERBS, run
heavy = lambda: sorted(m for m in ("torch", "trl") if m in sys.modules)
seen = {}
with contextlib.redirect_stdout(io.StringIO()):
    run(["--help"])
    seen["heal --help"] = heavy()
    for name in VERBS:
        run([name, "--help"])
        seen[f"heal {name} --help"] = heavy()
import heal.serve.app
seen["import heal.serve.app"] = heavy()
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert len(seen) >= 15 and {what: mods for what, mods in seen.items() if mods} == {}


def test_the_saved_help_is_what_every_parser_prints():
    from heal.cli import HELP_DIR, VERBS, render_help

    for name, verb in VERBS.items():
        if verb.module:
            saved = (HELP_DIR / f"{name}.txt").read_text(encoding="utf-8")
            assert saved == render_help(name), f"heal/help/{name}.txt is stale: run scripts/update_help.py"


@pytest.mark.parametrize("verb", STAGES)
def test_every_stage_verb_declares_a_contract_naming_its_own_settings(verb):
    import importlib

    from heal.cli import VERBS
    from heal.contracts import contract_of

    contract = contract_of(verb)
    assert contract is not None and contract.summarize is not None
    module = contract.stage_module or VERBS[verb].module
    dests = {a.dest for a in importlib.import_module(module).make_parser()._actions}
    named = {contract.output_field, *contract.path_fields} | ({contract.overwrite_field} - {None})
    assert named <= dests


def test_serve_pipeline_and_quickstart_are_not_stages():
    from heal.contracts import stage_verbs

    stages = stage_verbs()
    assert set(STAGES) <= set(stages) and not {"serve", "pipeline", "quickstart"} & set(stages)


def test_files_and_functions_stay_short():
    """Files under 500 lines, functions under ~60 (65 allows a long signature or docstring)."""
    too_long = []
    for path in (SRC / "heal").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 65:
                too_long.append(f"{path.name}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []
