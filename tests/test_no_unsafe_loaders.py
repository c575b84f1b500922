"""Nothing in src/ deserialises a user file unsafely (issue 19): no ``pickle.load``/``loads`` (FLAME
goes through the allow-list unpickler of ``head/flame.py`` only), ``torch.load`` only with
``weights_only=True``, ``yaml.load`` only with a safe loader, ``np.load`` only with
``allow_pickle=False`` spelled out. Checked on the syntax tree, so comments and strings don't count."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "arc2avatar"
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "_Loader"}  # _Loader: config.py's SafeLoader subclass
UNPICKLER_ALLOWED = {"head/flame.py"}  # the allow-list unpickler (find_class refuses everything else)


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(tree: ast.AST, relative: str) -> list[str]:
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_name(b).endswith("Unpickler") for b in node.bases):
            if relative not in UNPICKLER_ALLOWED:
                problems.append(f"{relative}:{node.lineno}: an Unpickler subclass outside {UNPICKLER_ALLOWED}")
        if not isinstance(node, ast.Call):
            continue
        name, where = _name(node.func), f"{relative}:{node.lineno}"
        if name.split(".")[-1] in ("load", "loads") and name.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "marshal"):
            problems.append(f"{where}: {name}")
        if name in ("pickle.Unpickler",) and relative not in UNPICKLER_ALLOWED:
            problems.append(f"{where}: {name}")
        if name == "torch.load" and not _is_const(_keyword(node, "weights_only"), True):
            problems.append(f"{where}: torch.load without weights_only=True")
        if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            problems.append(f"{where}: {name}")
        if name == "yaml.load":
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if _name(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
                problems.append(f"{where}: yaml.load without a safe loader")
        if name in ("np.load", "numpy.load") and not _is_const(_keyword(node, "allow_pickle"), False):
            problems.append(f"{where}: np.load without allow_pickle=False")
    return problems


def test_src_has_no_unsafe_deserialisation() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        problems += unsafe_calls(ast.parse(path.read_text(encoding="utf-8")), relative)
    assert problems == []


def test_the_checker_catches_each_pattern() -> None:
    code = """
import pickle, torch, yaml, numpy as np
pickle.load(f); pickle.loads(b)
torch.load(p); torch.load(p, weights_only=False)
yaml.load(t); yaml.load(t, Loader=yaml.Loader); yaml.unsafe_load(t)
np.load(p, allow_pickle=True); np.load(p)
class U(pickle.Unpickler): pass
"""
    assert len(unsafe_calls(ast.parse(code), "x.py")) == 10
    safe = "torch.load(p, weights_only=True); yaml.load(t, Loader=yaml.SafeLoader); np.load(p, allow_pickle=False)"
    assert unsafe_calls(ast.parse(safe), "x.py") == []
