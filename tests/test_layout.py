"""Every app has one shape, its imports point one way, and its templates read one element per line.

Within an app no two modules import each other (directly or round a longer circle), and no function imports
a module of its own app to dodge such a circle: write functions enqueue tasks by name through
``console.events.context.enqueue_on_commit`` instead. Imports inside ``AppConfig.ready()`` are Django's way
of wiring an app once the registry is ready; the few other function-level imports are listed with why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import console

ROOT = Path(console.__file__).parent
APPS = ["core", "events", "jobs", "eventsourcing", "comms", "demo"]

# (module, function) -> why the import cannot be at the top of the module.
ALLOWED_FUNCTION_IMPORTS = {
    ("console.core.backends", "_huey"): "Huey is an optional dependency, asked only when it is the backend",
    ("console.events.pipeline", "build_event"): "console.events is imported before apps are ready (its API)",
    ("console.events.pipeline", "persist_sink"): "console.events is imported before apps are ready (its API)",
    ("console.events.pipeline", "batch"): "console.events is imported before apps are ready (its API)",
}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        dotted = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        yield dotted, ast.parse(path.read_text())


def app_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


def imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The project modules an import statement loads (``from pkg import module`` names the module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if not node.module or not node.module.startswith("console"):
        return set()
    found = {node.module} & known
    found |= {f"{node.module}.{alias.name}" for alias in node.names} & known
    return found


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try):
            # Conditional module-level imports (optional dependencies, TYPE_CHECKING) still run at import.
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield inner


def function_imports(tree: ast.Module) -> Iterator[tuple[str, str, ast.Import | ast.ImportFrom]]:
    """(class, function, import) for every import inside a function body."""
    for cls in [None, *[node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]]:
        body = tree.body if cls is None else cls.body
        for function in body:
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        yield (cls.name if cls else ""), function.name, node


PARSED = dict(modules())
KNOWN = set(PARSED)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in PARSED}
    for module, tree in PARSED.items():
        for node in top_level_imports(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "typing":
                continue
            edges[module] |= {target for target in imported(node, KNOWN) if app_of(target) == app_of(module)}
        edges[module].discard(module)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_of_an_app_import_each_other() -> None:
    assert circles(graph()) == []


def test_no_function_imports_a_module_of_its_own_app_outside_ready() -> None:
    offending, allowed_seen = [], set()
    for module, tree in PARSED.items():
        for cls, function, node in function_imports(tree):
            same_app = {target for target in imported(node, KNOWN) if app_of(target) == app_of(module)}
            if not same_app or (module.endswith(".apps") and function == "ready"):
                continue
            if (module, function) in ALLOWED_FUNCTION_IMPORTS:
                allowed_seen.add((module, function))
            else:
                offending.append(f"{module}.{cls + '.' if cls else ''}{function} imports {', '.join(sorted(same_app))}")
    assert offending == []
    # Every exception listed above is still needed.
    assert allowed_seen == set(ALLOWED_FUNCTION_IMPORTS)


# The roles every reusable app fills, by the same module name in each.
ROLES = {"apps", "conf", "models", "services", "tasks", "declarations", "views", "urls", "panels"}


@pytest.mark.parametrize("app", ["events", "jobs", "eventsourcing", "comms"])
def test_every_app_has_the_same_modules_for_the_same_roles(app: str) -> None:
    present = {path.stem for path in (ROOT / app).glob("*.py")}
    assert present >= ROLES, sorted(ROLES - present)


@pytest.mark.parametrize("app", APPS)
def test_tasks_modules_hold_only_thin_task_shims(app: str) -> None:
    tree = PARSED.get(f"console.{app}.tasks")
    if tree is None:
        return
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            assert any(d.startswith("task") for d in decorators), f"{app}.tasks.{node.name} is not a task"
            body = [stmt for stmt in node.body if not isinstance(stmt, ast.Expr)]  # docstrings aside
            assert len(body) == 1, f"{app}.tasks.{node.name} does more than call the worker code"


def test_every_view_answers_htmx_through_the_one_helper() -> None:
    """No view renders a partial, sets htmx's stop-polling status or HX-Redirect by hand."""
    offending = []
    for path in sorted(ROOT.glob("*/views.py")):
        text = path.read_text()
        for needle in ('render(request, "', "status_code = 286", '["HX-Redirect"]', "vary_on_htmx"):
            for line in text.splitlines():
                if needle in line and (needle != 'render(request, "' or "#" in line):
                    offending.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offending == []


# Templates are formatted one element per line and indented by djhtml (make format; make lint checks it).
TEMPLATE_WIDTH = 120


def test_every_template_line_fits_the_width() -> None:
    templates = sorted([*ROOT.rglob("*.html"), *(ROOT.parent / "templates").rglob("*.html")])
    assert len(templates) > 30  # the console's and the site's templates were found
    long_lines = [
        f"{path.relative_to(ROOT.parent)}:{number}: {len(line)} characters"
        for path in templates
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if len(line) > TEMPLATE_WIDTH
    ]
    assert long_lines == []
