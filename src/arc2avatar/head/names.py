"""The expression names of each template kind, known without building the template (issue 20).

Building a template (upsampling, FLAME loading) takes seconds; a misspelt ``--set smil=0.8``
should fail before that. The built-in template's names are fixed (``_builtin_fields``); a
FLAME template names its components ``exp_000`` … ``exp_099`` (``FlameConfig.num_expressions``
columns of the FLAME file's ``shapedirs``; the file itself is checked later, when it loads).
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable

from arc2avatar.errors import InputError, short_list
from arc2avatar.head._builtin_fields import EXPRESSION_NAMES as BUILTIN_EXPRESSION_NAMES
from arc2avatar.head.flame import FlameConfig

FLAME_EXPRESSION_PATTERN = re.compile(r"exp_(\d{3})")


def flame_expression_names(count: int = FlameConfig.num_expressions) -> tuple[str, ...]:
    """``exp_000`` … for the first ``count`` FLAME expression components."""
    return tuple(f"exp_{i:03d}" for i in range(count))


def unknown_expression_names(kind: str, names: Iterable[str], flame_count: int = FlameConfig.num_expressions) -> list[str]:
    """The names a template of ``kind`` ("builtin" or "flame") does not have, sorted."""
    if kind == "flame":
        def known(name: str) -> bool:
            match = FLAME_EXPRESSION_PATTERN.fullmatch(name)
            return match is not None and int(match.group(1)) < flame_count
    else:
        def known(name: str) -> bool:
            return name in BUILTIN_EXPRESSION_NAMES
    return sorted(name for name in set(names) if not known(name))


def check_expression_names(kind: str, names: Iterable[str], flame_count: int = FlameConfig.num_expressions) -> None:
    """``InputError`` naming every unknown name, the valid ones and the closest match."""
    unknown = unknown_expression_names(kind, names, flame_count)
    if not unknown:
        return
    if kind == "flame":
        valid = f"exp_000 … exp_{flame_count - 1:03d} (FLAME expression components)"
        choices: tuple[str, ...] = flame_expression_names(flame_count)
    else:
        valid = ", ".join(BUILTIN_EXPRESSION_NAMES)
        choices = BUILTIN_EXPRESSION_NAMES
    hints = [f"{name!r} → {match[0]!r}" for name in unknown[:8] if (match := difflib.get_close_matches(name, choices, 1))]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    template = "FLAME" if kind == "flame" else "built-in"
    raise InputError(f"unknown expression name(s) {short_list(unknown)} for the {template} template{hint}; "
                     f"valid names: {valid}")


__all__ = ["BUILTIN_EXPRESSION_NAMES", "check_expression_names", "flame_expression_names", "unknown_expression_names"]
