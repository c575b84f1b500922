"""The layout's rules, checked (docs/architecture.md): no private names across packages, no import
cycles between packages or between modules (imports inside functions counted), a torch-free config library, imports of
ours inside functions (outside cli/) only with their reason on the line, and no
citation of a document that is not in the repository. The layer contract itself is import-linter's
(``lint-imports``, run by CI; contracts in pyproject.toml)."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "arc2avatar"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(name: str, tree: ast.Module, is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) for every import of ``arc2avatar`` in the module, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("arc2avatar"):
                found.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("arc2avatar")]
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def test_no_module_imports_a_private_name_of_another_package() -> None:
    offences = []
    for name, tree in _modules().items():
        for target, names in _imports(name, tree, _is_package(name)):
            if _package(target) == _package(name) or _package(target).startswith("_") or not _package(target):
                continue  # within a package, or the shared bottom modules (_io, _device, _cache, _timing)
            private_module = any(part.startswith("_") for part in target.split(".")[2:])
            private_names = [n for n in names if n.startswith("_")]
            if private_module or private_names:
                offences.append(f"{name} imports {target} {private_names or ''}")
    assert not offences, "\n".join(offences)


def test_no_import_cycles_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for name, tree in _modules().items():
        for target, _ in _imports(name, tree, _is_package(name)):
            if _package(target) and _package(target) != _package(name):
                edges[_package(name)].add(_package(target))

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += edges.get(node, ())
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, f"package import cycles: {cycles}"


def _module_edges() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, at any depth (``from pkg import sub`` is an edge to
    ``pkg.sub`` when ``sub`` is a module, else to ``pkg``)."""
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for name, tree in modules.items():
        targets = set()
        for target, names in _imports(name, tree, _is_package(name)):
            submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            targets |= submodules
            if target in modules and len(submodules) < len(names or [None]):
                targets.add(target)
        edges[name] = targets - {name}
    return edges


def module_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_module_cycle_check_finds_a_planted_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert module_cycles(edges) == [["a", "b", "c"]]
    assert module_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    """No module reaches itself through imports of ours, counting imports inside functions (a lazy
    import hides a cycle from Python, not from the reader)."""
    cycles = module_cycles(_module_edges())
    assert not cycles, "modules that import each other in a cycle:\n" + "\n".join(", ".join(c) for c in cycles)


def test_the_config_library_imports_no_torch() -> None:
    code = "import sys, arc2avatar.confkit; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_docs_cite_only_documents_in_the_repository() -> None:
    banned = re.compile(r"\bspec §|official-release|shared/docs|arc2face-flame-peers|rendering-notes")
    cited = re.compile(r"\bdocs/([\w.-]+\.md)")
    offences = []
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
                 *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if banned.search(line):
                offences.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            offences += [f"{path.relative_to(ROOT)}:{number}: docs/{doc} does not exist"
                         for doc in cited.findall(line) if not (ROOT / "docs" / doc).is_file()]
    assert not offences, "\n".join(offences)


def test_top_level_help_loads_no_torch() -> None:
    """``arc2avatar --help`` lists every command from the cli modules' COMMANDS tables alone
    (0.08 s here against 1.6 s when every command registered its options and imported torch)."""
    code = ("import sys\nfrom arc2avatar.cli.main import build_parser\n"
            "text = build_parser(['--help']).format_help()\n"
            "print('torch' in sys.modules, 'create' in text and 'evaluate' in text and 'animate' in text)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def uncommented_lazy_imports(name: str, source: str) -> list[str]:
    """Imports of ours inside a function with no comment on their lines (issue 25: an import of our
    own modules goes to the top of its file unless a reason keeps it lazy, and the reason is a
    comment on the line, e.g. ``# lazy: torch; the app's web process stays torch-free``)."""
    tree = ast.parse(source)
    commented = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
                 if token.type == tokenize.COMMENT}
    is_package = _is_package(name)
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if (isinstance(node, (ast.Import, ast.ImportFrom))
                    and _imports(name, ast.Module(body=[node], type_ignores=[]), is_package)
                    and not commented & set(range(node.lineno, node.end_lineno + 1))):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(set(found))


def test_lazy_import_check_finds_a_planted_one() -> None:
    source = ("def f():\n    from arc2avatar.errors import InputError\n"
              "    from arc2avatar.errors import Arc2AvatarError  # lazy: a reason\n    import json\n")
    assert uncommented_lazy_imports("arc2avatar.x", source) == ["arc2avatar.x:2: from arc2avatar.errors import InputError"]


def test_lazy_imports_of_our_modules_say_why() -> None:
    """Outside ``cli/`` (whose commands import their packages on use, for a torch-free start) every
    import of ours inside a function carries its reason on its line; the others are at the top."""
    offences = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        offences += uncommented_lazy_imports(name, path.read_text(encoding="utf-8"))
    assert not offences, "move these to the top of the file, or say on the line why they stay lazy:\n" + "\n".join(offences)
