"""experiments/ is built in layers that import downward only: the command line, a collection of runs, one run,
the parts of a run, the files and the data. No import, at the top of a module or inside a function, closes a loop."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "experiments"


def _imports(path: Path) -> set[str]:
    """The experiments modules ``path`` imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "experiments":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("experiments.")}
    return found - {"__main__"}


def test_no_module_of_experiments_imports_itself_back_through_others():
    graph = {path.stem: _imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__main__"}
    assert all(name in graph for targets in graph.values() for name in targets)

    def loop_from(module, trail):
        for target in sorted(graph[module]):
            if target in trail:
                return trail[trail.index(target) :] + [target]
            found = loop_from(target, trail + [target])
            if found:
                return found
        return None

    loops = [loop for module in sorted(graph) if (loop := loop_from(module, [module]))]
    assert not loops, f"import loop: {' -> '.join(loops[0])}"


def test_the_command_line_is_the_top_layer_and_the_run_does_not_know_collections():
    graph = {path.stem: _imports(path) for path in PACKAGE.glob("*.py")}
    assert not any("pipeline" in targets for name, targets in graph.items() if name != "__main__")
    assert not graph["job"] & {"collection", "workers", "cluster", "pipeline"}
