"""mkdocs hooks: pages that are generated from the code at every build, so they cannot go stale.

``<!-- experiment-keys -->`` becomes the table of every experiment key (from the pydantic schema,
``flexseg.config.Experiment``: type, default, allowed values, and the comment beside the field in
the source); ``<!-- cli-reference -->`` becomes every command's ``--help``."""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def on_page_markdown(markdown: str, **_: Any) -> str:
    if "<!-- experiment-keys -->" in markdown:
        markdown = markdown.replace("<!-- experiment-keys -->", experiment_keys())
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return markdown


# ---------------------------------------------------------------- the experiment's keys


def experiment_keys() -> str:
    """One table for the top-level keys, then one per section (``classes[]`` for each class)."""
    from flexseg.config import Experiment

    header = ["| key | type | default | allowed | what it is |", "|---|---|---|---|---|"]
    top, sections = [], []
    comments = _field_comments(Experiment)
    for name, field in Experiment.model_fields.items():
        section = _section(field.annotation)
        if section is None:
            top.append(_row(name, field, comments))
            continue
        title = f"{name}[]" if "list" in _type(field.annotation) else name
        doc = _cell(comments.get(name) or section.__doc__ or "")
        inner = _field_comments(section)
        rows = [_row(key, f, inner) for key, f in section.model_fields.items()]
        sections.append(f"### `{title}`\n\n{doc}\n\n" + "\n".join(header + rows))
    return "\n".join(header + top) + "\n\n" + "\n\n".join(sections)


def _row(key: str, field: Any, comments: dict[str, str]) -> str:
    default = "required" if field.is_required() else _value(field.default)
    return (
        f"| `{key}` | {_cell(_type(field.annotation))} | {_cell(default)} | "
        f"{_cell(_limits(field))} | {_cell(comments.get(key, ''))} |"
    )


def _section(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, types.UnionType):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin is Literal:
        return " | ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}" if args else "list"
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin is dict:
        return f"mapping of {_type(args[0])} → {_type(args[1])}" if args else "mapping"
    if annotation is Path:
        return "path"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _limits(field: Any) -> str:
    parts = []
    for meta in [*field.metadata, *_annotated_metadata(field.annotation)]:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{sign} {getattr(meta, attr)}")
        for attr, what in (("min_length", "at least"), ("max_length", "at most")):
            if getattr(meta, attr, None) is not None:
                parts.append(f"{what} {getattr(meta, attr)}")
        if getattr(meta, "pattern", None):
            parts.append(f"matches `{meta.pattern}`")
    return ", ".join(dict.fromkeys(parts))


def _annotated_metadata(annotation: Any) -> list:
    found = []
    for arg in [annotation, *get_args(annotation)]:
        if get_origin(arg) is Annotated:
            found += list(get_args(arg)[1:])
    return found


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("``", "`").replace("<", "&lt;").replace(">", "&gt;")


def _field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The comment of each field in the class's source: the ``#`` lines right above it and the
    one at the end of its declaration."""
    lines = inspect.getsource(model).splitlines()
    comments: dict[str, str] = {}
    above: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = re.match(r"\s+(\w+):\s", line)
        if match and match.group(1) in model.model_fields:
            end, depth = i, line.count("(") - line.count(")")
            while depth > 0 and end + 1 < len(lines):  # a declaration over several lines: its comment is on the last
                end += 1
                depth += lines[end].count("(") - lines[end].count(")")
            trailing = [lines[k].split("  # ", 1)[1] for k in dict.fromkeys((i, end)) if "  # " in lines[k]]
            comments[match.group(1)] = " ".join([*above, *dict.fromkeys(trailing)])
        above = []
    return comments


# ---------------------------------------------------------------- the commands


def cli_reference() -> str:
    import click
    import typer

    from flexseg.cli import app

    group = typer.main.get_command(app)
    parts = []
    with click.Context(group, info_name="flexseg", terminal_width=100, max_content_width=100) as root:
        parts.append("## flexseg\n\n```text\n" + group.get_help(root).strip() + "\n```")
        for name in group.list_commands(root):
            command = group.get_command(root, name)
            with click.Context(command, info_name=name, parent=root, terminal_width=100, max_content_width=100) as ctx:
                parts.append(f"## flexseg {name}\n\n```text\n" + command.get_help(ctx).strip() + "\n```")
    return "\n\n".join(parts)
