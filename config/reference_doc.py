"""The configuration reference (docs/configuration.md), rendered from the models themselves."""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from sharpeye.config.loader import Catalog

from sharpeye.settings import Settings


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" for a in args)
    if origin in (list, tuple, set, dict):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return "(empty)" if field.default_factory in (list, dict) else "(see model)"
    if field.default is PydanticUndefined:
        return ""
    value = field.default
    if isinstance(value, Enum):
        value = value.value
    return f"`{value!r}`"


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models(arg))
    return out


def _section(model: type[BaseModel], seen: set[type[BaseModel]], out: list[str]) -> None:
    if model in seen:
        return
    seen.add(model)
    out.append(f"### {model.__name__}\n")
    doc = next((base.__doc__ for base in model.__mro__ if base.__doc__), "")
    out.append(f"{doc.strip()}\n")
    out.append("| key | type | default | description |")
    out.append("| --- | --- | --- | --- |")
    nested: list[type[BaseModel]] = []
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        nested.extend(_models(field.annotation))
    out.append("")
    for sub in nested:
        _section(sub, seen, out)


def render(catalog: Catalog) -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the models by `sharpeye config docs`; a test checks that this file is current.",
        "Validate a file with `sharpeye config check FILE`: every unknown key, wrong type and broken reference is",
        "reported with its path and line.",
        "",
        "## Process settings (environment)",
        "",
        "Read from `SHARPEYE_<NAME>` environment variables, never from the site YAML.",
        "",
        "| variable | default | description |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        out.append(f"| `SHARPEYE_{name.upper()}` | {_default(field)} | {field.description or ''} |")
    out += [
        "",
        "## Site YAML",
        "",
        "Fields of type `EnvSecret` hold secrets and take only a reference to an environment variable, `${NAME}`,",
        "read when the file is loaded: `password: ${GATE_SIP_PASSWORD}`. A literal secret is refused, and so is a",
        "reference to a variable that is not set (the error names the variable, never the value).",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    model = catalog.site_model()
    _section(model, seen, out)
    return "\n".join(out).rstrip() + "\n"
