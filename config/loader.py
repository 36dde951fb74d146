"""Load a site YAML file, validate it against the model tree and check its references.

Errors carry the path of the offending value in the file (``devices[2].zones[0].cameras[1]``) and,
where the YAML gives it, the line number, so that a person can go straight to the mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError
from sharpeye.config.site import SiteConfig

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a config file."""

    loc: Loc
    message: str
    line: int | None = None

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path or '<root>'}: {self.message}"


class ConfigError(ValueError):
    """The config is invalid. ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{source}: {len(self.issues)} problem(s)\n{lines}")


class Catalog(Protocol):
    """What the checker needs to know about installed drivers."""

    def site_model(self) -> type[SiteConfig]: ...

    def reading_kinds(self) -> set[str]: ...


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that also records the line of every mapping value and sequence item."""


def _lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[(*loc, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*loc, key), out)
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*loc, index), out)


def parse_yaml(text: str, source: str = "<config>") -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; return the data and a map from path to line number."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigIssue((), f"not valid YAML: {exc}", line)]) from None
    if node is None:
        raise ConfigError(source, [ConfigIssue((), "the file is empty")])
    lines: dict[Loc, int] = {}
    _lines(node, (), lines)
    data = yaml.load(text, Loader=yaml.SafeLoader)
    return data, lines


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _pydantic_issues(exc: ValidationError, data: Any) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = _strip_union_tags(tuple(err["loc"]), data)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (not allowed here)"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            message = f"unknown kind {ctx.get('tag')!r}; installed kinds: {ctx.get('expected_tags')}"
            loc = (*loc, "kind")
        elif err["type"] == "union_tag_not_found":
            message = "missing 'kind'"
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        issues.append(ConfigIssue(loc, message))
    return issues


def _strip_union_tags(loc: Loc, data: Any) -> Loc:
    """Pydantic puts the union tag (``fence``) into error locations; drop it so paths match the file."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and node.get("kind") == part:
            continue
        if isinstance(node, dict) and isinstance(part, str) and part not in node and node.get("type") == part:
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def validate(data: Any, catalog: Catalog, source: str = "<config>", lines: dict[Loc, int] | None = None) -> SiteConfig:
    """Validate parsed data: model tree first, then references. Raise ``ConfigError`` with every issue."""
    from sharpeye.config.reference import check_references

    lines = lines or {}
    model = catalog.site_model()
    try:
        site = model.model_validate(data)
    except ValidationError as exc:
        issues = _pydantic_issues(exc, data)
        raise ConfigError(source, [ConfigIssue(i.loc, i.message, _line_for(i.loc, lines)) for i in issues]) from None
    problems = check_references(site, catalog)
    if problems:
        raise ConfigError(source, [ConfigIssue(loc, msg, _line_for(loc, lines)) for loc, msg in problems])
    return site


def load_text(text: str, catalog: Catalog, source: str = "<config>") -> SiteConfig:
    data, lines = parse_yaml(text, source)
    return validate(data, catalog, source, lines)


def load_file(path: Path, catalog: Catalog) -> SiteConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [ConfigIssue((), "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [ConfigIssue((), f"not UTF-8 text: {exc}")]) from None
    return load_text(text, catalog, str(path))


def demo_path() -> Path:
    """The packaged demo site."""
    return Path(__file__).with_name("demo.yaml")
