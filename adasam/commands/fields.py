"""Command-line flags generated from a typed dataclass config (peft's ``LoraConfig`` style).

Each field becomes one flag named after it (``batch_size`` -> ``--batch-size``), typed from its
annotation, with the help text from ``field(metadata={"help": ...})`` and the dataclass default.
The config stays the one place a setting is defined; the parser and the mapping back follow it.

Conventions (by annotation):

- ``bool`` with default ``True`` -> ``--no-<name>`` (clears it); default ``False`` -> ``--<name>``;
- ``Literal[...]`` -> ``choices``; ``X | None`` -> optional ``X`` (default ``None``);
- ``tuple[str, ...]`` -> one comma-separated value (``--structures a,b``);
- a field without default -> a required flag.

Optional metadata keys: ``"choices"`` (a value list for non-``Literal`` fields) and
``"required"`` (``True``: the flag must be given even though the config has a default).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

DataclassType = type


def comma_list(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")`` (blank items dropped)."""
    return tuple(s.strip() for s in value.split(",") if s.strip())


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _converter(annotation: Any) -> tuple[Callable[[str], Any], tuple[Any, ...] | None]:
    """The argparse ``type`` and ``choices`` for one (non-bool, non-optional) annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    if origin is tuple:
        return comma_list, None
    if annotation in (int, float, str):
        return annotation, None
    raise TypeError(f"no command-line conversion for a field of type {annotation!r}")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_field(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    f: dataclasses.Field,
    annotation: Any,
    default: Any,
) -> None:
    if not f.metadata.get("help"):
        raise TypeError(f"field {f.name!r} has no help text (metadata={{'help': ...}})")
    help_text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
    if annotation is bool:
        if default is True:
            parser.add_argument(
                flag_name("no_" + f.name), dest=f.name, action="store_false", help=help_text
            )
        else:
            parser.add_argument(flag_name(f.name), dest=f.name, action="store_true", help=help_text)
        return
    inner, _ = _unwrap_optional(annotation)
    convert, choices = _converter(inner)
    required = default is dataclasses.MISSING or bool(f.metadata.get("required"))
    shown = "" if required or default is None else f" (default: {default})".replace("%", "%%")
    parser.add_argument(
        flag_name(f.name),
        dest=f.name,
        type=convert,
        choices=f.metadata.get("choices", choices),
        required=required,
        default=None if default is dataclasses.MISSING else default,
        help=help_text + shown,
    )


def add_fields(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: DataclassType,
    *,
    skip: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one flag per field of the dataclass ``config`` (``skip``: fields left out;
    ``defaults``: parser defaults that differ from the config's, e.g. ``None`` meaning "from
    the environment")."""
    hints = typing.get_type_hints(config)
    skipped, overrides = set(skip), dict(defaults or {})
    for f in dataclasses.fields(config):
        if f.name in skipped or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        _add_field(parser, f, hints[f.name], overrides.get(f.name, default))


def from_args(
    config: DataclassType, args: argparse.Namespace, *, skip: Iterable[str] = (), **values: Any
) -> Any:
    """Build ``config`` from the parsed flags of :func:`add_fields` (``values`` replace or
    supply fields, e.g. the resolved device)."""
    skipped = set(skip)
    kwargs = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config)
        if f.init and f.name not in skipped and hasattr(args, f.name)
    }
    kwargs.update(values)
    return config(**kwargs)
