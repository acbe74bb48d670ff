"""The public API is documented: every function, class, method and property that `farfeed`,
`farfeed.loader`, `farfeed.checkpoint`, `farfeed.weights` and `farfeed.store` export in
``__all__`` has a docstring, and every parameter is named in it (in backticks: ``url``).

The API reference (`make docs`, pdoc) is made from these docstrings, so a gap here is a
gap there.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

PUBLIC_MODULES = ("farfeed", "farfeed.loader", "farfeed.checkpoint", "farfeed.weights", "farfeed.store")
SKIP_PARAMS = {"self", "cls"}


def public_objects() -> Iterator[tuple[str, Any]]:
    """(dotted name, object) for every function and class exported in ``__all__``."""
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{module_name}.{name}", obj


def undocumented_params(func: Callable[..., Any], doc: str) -> list[str]:
    """Parameters of ``func`` not named (in backticks) in ``doc``."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    missing = []
    for p in params:
        if p.name in SKIP_PARAMS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not re.search(rf"`{re.escape(p.name)}\b", doc):
            missing.append(p.name)
    return missing


def field_docs(cls: type) -> str:
    """The docs pdoc shows for a class's fields, each as ``name`` plus its text (so
    `undocumented_params` finds the name): ``#:`` comments above a field, and a string
    literal right below it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return ""
    found = [(field, text) for text, field in re.findall(r"#:(.*)\n\s*(\w+)\s*:", source)]
    body = ast.parse(source).body[0]
    statements = body.body if isinstance(body, ast.ClassDef) else []
    for node, after in zip(statements, statements[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found.append((node.target.id, after.value.value))
    return "\n".join(f"``{field}``: {text}" for field, text in found)


def gaps(name: str, obj: Any) -> list[str]:
    """What is undocumented about one public object, one line each."""
    found: list[str] = []
    if inspect.isfunction(obj):
        doc = inspect.getdoc(obj) or ""
        if not doc:
            found.append(f"{name}: no docstring")
        found += [f"{name}: parameter {p!r} is not named in the docstring" for p in undocumented_params(obj, doc)]
        return found
    class_doc = obj.__doc__ if "__doc__" in vars(obj) else None
    if not class_doc or not class_doc.strip():
        found.append(f"{name}: no class docstring")
    init = vars(obj).get("__init__")
    if init is not None and inspect.isfunction(init):
        doc = f"{class_doc or ''}\n{inspect.getdoc(init) or ''}\n{field_docs(obj)}"
        found += [f"{name}(): parameter {p!r} is not named in the docstring" for p in undocumented_params(init, doc)]
    seen: set[str] = set()
    for klass in obj.__mro__:
        if not klass.__module__.startswith("farfeed"):
            continue
        for member_name, member in vars(klass).items():
            if member_name.startswith("_") or member_name in seen:
                continue
            seen.add(member_name)
            raw = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            if isinstance(raw, property):
                if not inspect.getdoc(raw):
                    found.append(f"{name}.{member_name}: property without a docstring")
            elif inspect.isfunction(raw):
                doc = inspect.getdoc(getattr(obj, member_name)) or ""
                if not doc:
                    found.append(f"{name}.{member_name}: no docstring")
                found += [
                    f"{name}.{member_name}: parameter {p!r} is not named in the docstring"
                    for p in undocumented_params(raw, doc)
                ]
    return found


def test_every_public_name_is_documented() -> None:
    problems = [line for name, obj in public_objects() for line in gaps(name, obj)]
    assert not problems, "undocumented public API:\n" + "\n".join(problems)


def test_the_check_finds_gaps() -> None:
    """The checker itself: a missing docstring and an unnamed parameter are both caught."""

    def f(url: str, *, token: str | None = None) -> None:
        """Read ``url``."""

    class C:
        """A thing."""

        def __init__(self, size: int) -> None:
            pass

        def go(self, fast: bool) -> None:
            pass

    C.__module__ = f.__module__ = "farfeed.example"
    assert gaps("f", f) == ["f: parameter 'token' is not named in the docstring"]
    assert gaps("C", C) == [
        "C(): parameter 'size' is not named in the docstring",
        "C.go: no docstring",
        "C.go: parameter 'fast' is not named in the docstring",
    ]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_modules_say_what_they_are(module_name: str) -> None:
    assert (importlib.import_module(module_name).__doc__ or "").strip()
