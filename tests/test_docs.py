"""The docs cannot drift from the code: every repository path, ``arc2avatar.module.name`` and
``arc2avatar`` command (with its options) that README.md and docs/*.md name exists, and the layer
list of docs/architecture.md is the import-linter contract of pyproject.toml.

Out of scope, and skipped on purpose: placeholders (``<preset>``, ``COMMAND``, ``...``, globs),
files a user or a run makes (``out/avatar.ply``: not repository paths), and the official release's
files that docs/official-code.md describes (paths of another repository, not under ours)."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "arc2avatar"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Top-level folders of the repository a doc may point into (their paths must exist).
REPO_FOLDERS = ("src", "tests", "benchmarks", "configs", "docs", ".ci")
PLACEHOLDER = re.compile(r"[<>*{}]|\.\.\.|XXXX|NAME|\bN\b")
PATH = re.compile(r"(?<![\w./-])((?:\.ci|src|tests|benchmarks|configs|docs|[a-z_]+)/[\w./<>*{}-]*\w/?)")
DOTTED = re.compile(r"\barc2avatar(?:\.\w+)+")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _doc_lines() -> list[tuple[str, str]]:
    """(where, line) of every line of every doc."""
    return [(f"{doc.relative_to(ROOT)}:{number}", line) for doc in DOCS
            for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)]


def _our_packages() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def named_paths(text: str) -> list[str]:
    """Repository paths in ``text``: under a top-level folder of ours, or under one of our packages
    (``pipeline/api.py``, read as ``src/arc2avatar/pipeline/api.py``); placeholders left out."""
    packages = _our_packages()
    found = []
    for match in PATH.finditer(text):
        path = match.group(1).rstrip(".")
        first = path.split("/", 1)[0]
        if PLACEHOLDER.search(path) or (first not in REPO_FOLDERS and first not in packages):
            continue
        found.append(path if first in REPO_FOLDERS else f"src/arc2avatar/{path}")
    return found


def _made_by_runs(path: str) -> bool:
    """A path .gitignore names (a cache or output folder that tests and runs create)."""
    ignored = [line.strip().strip("/") for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#") and "*" not in line]
    return any(path.rstrip("/") == entry or path.startswith(entry + "/") for entry in ignored)


def missing_paths(lines: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {path} does not exist" for where, line in lines
            for path in named_paths(line) if not (ROOT / path).exists() and not _made_by_runs(path)]


def test_every_repository_path_the_docs_name_exists() -> None:
    offences = [o for o in missing_paths(_doc_lines()) if "official-code.md" not in o or "src/" in o]
    assert not offences, "\n".join(offences)


def _resolves(dotted: str) -> bool:
    """``arc2avatar.a.b.name`` names a module, or an attribute (or an attribute of one) of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        target = module
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_python_name_the_docs_name_exists() -> None:
    offences = [f"{where}: {name} does not exist" for where, line in _doc_lines()
                for name in DOTTED.findall(line) if not _resolves(name)]
    assert not offences, "\n".join(offences)


# ─────────────────────────────────────── CLI commands ───────────────────────────────────────
def _commands_in(text: str) -> list[list[str]]:
    """The words of every ``arc2avatar ...`` command line in ``text`` (shell code blocks and
    inline code), comments and chained commands split off."""
    out = []
    for chunk in re.split(r"&&|\|\||;|\|", text.split(" #", 1)[0]):
        chunk = chunk.strip().removeprefix("$ ")
        if chunk.startswith("arc2avatar "):
            try:
                out.append(shlex.split(chunk)[1:])
            except ValueError:  # an unfinished quote across lines: the words up to it
                out.append(chunk.split()[1:])
    return out


def named_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for fence in FENCE.finditer(text):
            if fence.group(1) in ("", "bash", "sh", "console", "shell"):
                start = text.count("\n", 0, fence.start()) + 2
                for offset, line in enumerate(fence.group(2).splitlines()):
                    found += [(f"{doc.relative_to(ROOT)}:{start + offset}", words) for words in _commands_in(line)]
        for number, line in enumerate(text.splitlines(), 1):
            for span in CODE_SPAN.findall(line):
                found += [(f"{doc.relative_to(ROOT)}:{number}", words) for words in _commands_in(span)]
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, int | str | None]:
    return {flag: action.nargs for action in parser._actions for flag in action.option_strings}


def command_problems(words: list[str], root: argparse.ArgumentParser) -> list[str]:
    """What in ``words`` (an ``arc2avatar`` command line without the program name) the parser does
    not know: the command, its action, or an option."""
    parser, known, problems, path = root, _options(root), [], ["arc2avatar"]
    words = iter(words)
    for word in words:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            if flag not in known and not PLACEHOLDER.search(flag):
                problems.append(f"{' '.join(path)} has no option {flag}")
            elif known.get(flag) is None and "=" not in word and flag in _options(root) and parser is root:
                next(words, None)  # a top-level option's value (--threads N)
            continue
        commands = _subparsers(parser)
        if not commands:
            continue  # a positional argument
        if PLACEHOLDER.search(word) or word.isupper():
            return problems  # `arc2avatar COMMAND ...`
        if word not in commands:
            return problems + [f"{' '.join(path)} has no command {word!r}"]
        parser = commands[word]
        path.append(word)
        known = {**known, **_options(parser)}
    return problems


@pytest.fixture(scope="module")
def cli_parser() -> argparse.ArgumentParser:
    from arc2avatar.cli.main import build_parser

    return build_parser(None)  # every command registers its options


def test_every_cli_command_and_option_the_docs_name_exists(cli_parser) -> None:
    named = named_commands()
    assert len(named) > 50  # the README alone shows dozens
    offences = [f"{where}: {problem}" for where, words in named for problem in command_problems(words, cli_parser)]
    assert not offences, "\n".join(offences)


# ─────────────────────────────────────── the layers ───────────────────────────────────────
def documented_layers(text: str) -> list[list[str]]:
    """The layer list of docs/architecture.md's Layers section: its code block's left column."""
    section = re.split(r"^## Layers$", text, maxsplit=1, flags=re.M)[1]
    block = FENCE.search(section).group(2)
    # A line that starts with blanks continues the description of the layer above it.
    return [sorted(name.strip() for name in re.split(r"\s{2,}", line.strip())[0].split("|"))
            for line in block.splitlines() if line.strip() and not line.startswith(" ")]


def contract_layers(pyproject: str) -> list[list[str]]:
    contracts = tomllib.loads(pyproject)["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    return [sorted(name.strip().strip("()") for name in layer.split("|")) for layer in layers]


def test_the_documented_layers_are_the_import_linter_contract() -> None:
    documented = documented_layers((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert documented == contract_layers((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_module_of_the_package_is_in_a_layer() -> None:
    """A top-level package or module that no layer names is in no contract (import-linter then
    checks nothing about it)."""
    layered = {name for layer in contract_layers((ROOT / "pyproject.toml").read_text(encoding="utf-8")) for name in layer}
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | _our_packages()
    assert top - layered == set()


# ─────────────────────────────── paper equations ───────────────────────────────
EQUATION = re.compile(r"\beq\. (\d+)(?:–(\d+))?")


def equations(text: str) -> set[int]:
    """Equation numbers named as ``eq. N`` or ``eq. N–M``."""
    return {n for a, b in EQUATION.findall(text) for n in range(int(a), int(b or a) + 1)}


def test_each_equation_of_the_method_is_named_in_the_code_that_implements_it() -> None:
    """docs/method.md numbers the paper's equations (eq. 1 … eq. 8); each one is cited as
    ``paper eq. N`` by the code that implements it, and the code cites no other."""
    documented = equations((ROOT / "docs" / "method.md").read_text(encoding="utf-8"))
    cited = {int(n) for path in PACKAGE.rglob("*.py")
             for n in re.findall(r"paper (?:§[\w.]+ )?eq\. (\d+)", path.read_text(encoding="utf-8"))}
    cited |= {int(n) for path in PACKAGE.rglob("*.py")
              for n in re.findall(r"paper eq\. \d+, eq\. (\d+)", path.read_text(encoding="utf-8"))}
    assert documented == set(range(1, 9))
    assert cited == documented


# ─────────────────────────────── the checks catch drift ───────────────────────────────
def test_the_checks_fail_on_a_broken_path_name_command_and_layer_list(cli_parser) -> None:
    broken = [("x.md:1", "Code: `src/arc2avatar/pipeline/expressions.py` and `pipeline/template.py`.")]
    assert len(missing_paths(broken)) == 2
    assert not missing_paths([("x.md:1", "Code: `src/arc2avatar/pipeline/api.py`, `avatar/formats/`; "
                                          "writes `out/avatar.ply` and `configs/<preset>.yaml`.")])
    assert not _resolves("arc2avatar.pipeline.template.make_template")
    assert not _resolves("arc2avatar.avatar.model.Avatar.export_to")
    assert _resolves("arc2avatar.avatar.model.Avatar.load")
    assert command_problems(shlex.split("create me.jpg -o out/ --presett fast"), cli_parser) == [
        "arc2avatar create has no option --presett"]
    assert command_problems(shlex.split("weights fetch"), cli_parser) == ["arc2avatar weights has no command 'fetch'"]
    assert command_problems(shlex.split("--threads 2 COMMAND --x"), cli_parser) == []
    text = "## Layers\n\n```\ncli          parsing\na | b        two\n             more about a and b\n```\n"
    assert documented_layers(text) == [["cli"], ["a", "b"]]
    assert documented_layers(text) != contract_layers('[[tool.importlinter.contracts]]\ntype = "layers"\nlayers = ["cli", "a"]')
