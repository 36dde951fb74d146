"""Secrets in the site YAML: only as references to environment variables, written ``${NAME}``.

A secret field's value is read from the environment variable ``NAME`` when the file is loaded. A literal secret
is refused (a YAML file is copied, committed and mailed around; the environment is not), and so is a reference to
a variable that is not set. Error messages name the variable and never the value. The loaded value is shown, logged
and serialised as its reference, so a dumped config (the API's device view, run-time devices stored in Redis)
carries ``${NAME}`` and is read from the environment again when it is loaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
LITERAL_REFUSED = "a secret may not be written into the file: write ${NAME} here and set the environment variable NAME"


class EnvSecret:
    """A secret read from an environment variable. ``str()`` and ``repr()`` give the reference, never the value."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    @property
    def reference(self) -> str:
        return "${" + self.name + "}"

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self.reference

    def __repr__(self) -> str:
        return f"EnvSecret({self.reference!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSecret) and (self.name, self._value) == (other.name, other._value)

    def __hash__(self) -> int:
        return hash(self.name)

    @classmethod
    def from_environment(cls, value: object) -> EnvSecret:
        """Resolve ``${NAME}`` from the environment; ``ValueError`` (without the value) otherwise."""
        if isinstance(value, EnvSecret):
            return value
        if not isinstance(value, str):
            raise ValueError(LITERAL_REFUSED)
        match = ENV_REFERENCE.match(value.strip())
        if match is None:
            raise ValueError(LITERAL_REFUSED)
        name = match.group(1)
        found = os.environ.get(name)
        if not found:
            raise ValueError(f"environment variable {name} is not set (this secret is read from it)")
        return cls(name, found)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.from_environment,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.reference),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": ENV_REFERENCE.pattern, "description": "${NAME}: environment variable"}


def min_length(chars: int) -> Callable[[EnvSecret], EnvSecret]:
    def check(secret: EnvSecret) -> EnvSecret:
        if len(secret.get_secret_value()) < chars:
            raise ValueError(f"the secret in environment variable {secret.name} needs at least {chars} characters")
        return secret

    return check


LongSecret = Annotated[EnvSecret, AfterValidator(min_length(16))]


URL_LITERAL_REFUSED = (
    "a password in a URL may not be written into the file: write ${NAME} in its place "
    "(rtsp://user:${NAME}@host/...) and set the environment variable NAME"
)


def check_url(url: str) -> str:
    """Validate a URL's password: none, or a ``${NAME}`` reference to a set variable (``ValueError`` otherwise)."""
    password = _url_password(url)
    if password is not None:
        if ENV_REFERENCE.match(password) is None:
            raise ValueError(URL_LITERAL_REFUSED)
        EnvSecret.from_environment(password)
    return url


def expand_url(url: str) -> str:
    """The URL to open: a ``${NAME}`` password replaced by the variable's value (percent-encoded)."""
    password = _url_password(url)
    if password is None or ENV_REFERENCE.match(password) is None:
        return url
    value = quote(EnvSecret.from_environment(password).get_secret_value(), safe="")
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{value}@{host}"


def _url_password(url: str) -> str | None:
    if "://" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None
