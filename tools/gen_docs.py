"""Generate docs/cli.md and docs/spec.md from the code: the typer app and the pydantic spec models.

    python tools/gen_docs.py            # rewrite the files
    python tools/gen_docs.py --check    # exit 1 if they are stale (CI: .ci/run)

The CLI reference comes from the click commands typer builds (names, help, options, defaults); the
spec reference from `synthboot.spec.Spec` and its nested models (types, defaults, bounds), with each
field's comment in spec.py as its description. Neither depends on the terminal's width.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import typing
from pathlib import Path

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

DOCS = Path(__file__).resolve().parents[1] / "docs"


# -- CLI ------------------------------------------------------------------------------------------

def _param_row(param: typing.Any, ctx: typing.Any) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
        kind = "argument" + ("" if param.required else ", optional")
    else:
        name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        kind = "flag" if param.is_flag else str(param.display_type(ctx)).lower().strip("<>")
        if param.required:
            kind += ", required"
    default = param.default
    shown = "" if default in (None, (), [], False) or callable(default) else f"`{default}`"
    return f"| {name} | {kind} | {shown} | {_cell(param.help or '')} |"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_markdown() -> str:
    from synthboot.cli import app

    group: typing.Any = typer.main.get_command(app)  # typer ships its own copy of click: duck-typed
    lines = ["# Command-line reference", "",
             "Generated from the code by `python tools/gen_docs.py`; do not edit by hand.", "",
             f"`synthboot [--version] [-v/--verbose] COMMAND ...`: {_cell(group.help or '')}", "",
             "| option | kind | default | meaning |", "|---|---|---|---|"]
    ctx = group.context_class(group, info_name="synthboot")
    lines += [_param_row(p, ctx) for p in group.params if p.name != "help"]
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        assert command is not None
        params = [p for p in command.params if p.name != "help"]
        usage = " ".join(p.name.upper() for p in params if p.param_type_name == "argument")
        lines += ["", f"## `synthboot {name}`", "", _cell(command.help or ""), "",
                  f"`synthboot {name} {' '.join(usage.split())} [OPTIONS]`", ""]
        if params:
            lines += ["| parameter | kind | default | meaning |", "|---|---|---|---|"]
            lines += [_param_row(p, ctx) for p in params]
    return "\n".join(lines) + "\n"


# -- spec -----------------------------------------------------------------------------------------

def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment in the model's source: on its own line(s) above it, or after it."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"\s+(\w+)\s*:\s*[^=]+(?:=.*?)?(?:#\s*(.*))?$", line)
        if match and not stripped.startswith(("def ", "@", "return", "if ", "raise")):
            text = " ".join([*above, match.group(2) or ""]).strip()
            if text:
                out[match.group(1)] = text
        above = []
    return out


def _type_name(annotation: typing.Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"typing\.|synthboot\.spec\.|<class '|'>", "", text)
    return text.replace("NoneType", "None")


def _bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "min length")):
            value = getattr(meta, key, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "" if info.default is PydanticUndefined else f"`{info.default!r}`"


def _nested(annotation: typing.Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def spec_markdown() -> str:
    from synthboot.spec import Spec

    lines = ["# Spec reference", "",
             "Generated from the pydantic models in `synthboot/spec.py` by `python tools/gen_docs.py`; do not edit "
             "by hand. Unknown keys are errors (a typo is named with its line).", ""]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("spec", Spec)]
    while queue:
        where, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## `{where}`", ""]
        if model.__doc__ and model.__doc__ != BaseModel.__doc__:
            lines += [_cell(model.__doc__), ""]
        lines += ["| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]
        comments = _comments(model)
        for name, info in model.model_fields.items():
            if info.exclude:
                continue
            key = info.alias or name
            meaning = info.description or comments.get(name, "")
            lines.append(f"| `{key}` | `{_cell(_type_name(info.annotation))}` | {_default(info)} | {_bounds(info)} | "
                         f"{_cell(meaning)} |")
            for sub in _nested(info.annotation):
                queue.append((f"{where}.{key}" if where != "spec" else key, sub))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/ is stale instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in (("cli.md", cli_markdown()), ("spec.md", spec_markdown())):
        path = DOCS / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run python tools/gen_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
