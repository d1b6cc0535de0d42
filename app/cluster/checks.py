"""Everything `validate` checks: structure and types (pydantic, field by field), unknown keys, and
the rules that span fields (app/cluster/rules.py).

Every field is validated on its own, so one bad field hides neither the others nor the rules that
span good ones: a run reports every problem in the file at once. The Cluster is then assembled
from the validated fields, without validating them a second time.
"""

from __future__ import annotations

import difflib
import functools
import typing
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.cluster.fields import DNS_NEEDED, shown, yaml_type
from app.cluster.model import Cluster
from app.cluster.power_rules import power_checks
from app.cluster.problems import Found, Problem
from app.cluster.releases import release_checks
from app.cluster.rules import Parsed, cross_checks
from app.cluster.sysexts import sysext_checks
from app.yaml_source import Loc, Source

# Why a required field matters, added to "required ... is missing" (keyed by path without indexes).
MISSING_HINTS = {"nodes": "list the machines to install", "network.dns": DNS_NEEDED,
                 "nodes.install_disk": "name the disk Flatcar wipes and installs to, by its /dev/disk/by-id/... "
                                       "or /dev/disk/by-path/... name"}
_FAILED = object()  # a field that did not pass its own checks
# Kubernetes supports clusters of up to 5,000 nodes ("Considerations for large clusters"). More is
# a mistake, and refusing it up front keeps validate's time bounded whatever the file holds.
MAX_CLUSTER_NODES = 5000


def check(source: Source, file: str) -> tuple[Cluster | None, list[Problem]]:
    """All problems in `source`, and the Cluster when there is no error."""
    found = Found(source, file)
    for loc, first, _ in source.duplicates:
        found.add(loc, f"key appears twice (first at line {first.line}); the later value would win", key=True)
    data = source.data
    if not isinstance(data, dict):
        found.add((), f"the file must be a mapping with cluster, bootstrap, network and nodes, not {yaml_type(data)}")
        return None, found.items
    _unknown_keys(Cluster, data, (), found)
    top = _parse_model(Cluster, data, (), found) or {}
    nodes = [(i, node) for i, node in enumerate(top.get("nodes") or []) if node is not None]
    cross_checks(top, nodes, found)
    power_checks(top, nodes, found)
    sysext_checks(top, nodes, found)
    release_checks(top, nodes, found)
    problems = sorted(found.items, key=lambda p: (p.line, p.column, p.path))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return _assemble(Cluster, top), problems


def _parse_model(model: type[BaseModel], value: Any, loc: Loc, found: Found) -> Parsed | None:
    """The fields of `value` that pass their checks, defaults for absent optional ones; None when
    `value` is not a mapping at all."""
    if not isinstance(value, dict):
        found.add(loc, f"must be a mapping, not {yaml_type(value)}")
        return None
    parsed: Parsed = {}
    for name, info, sub in _fields_of(model):
        nested = sub is not None
        if name not in value or (nested and value[name] is None and info.is_required()):
            if info.is_required():
                found.add(loc + (name,), _missing(loc + (name,), nested), key=True)
            else:
                parsed[name] = info.get_default(call_default_factory=True)
            continue
        result = _parse_field(model, name, sub, value[name], loc + (name,), found)
        if result is not _FAILED:
            parsed[name] = result
    return parsed


def _parse_field(model: type[BaseModel], name: str, sub: type[BaseModel] | None, value: Any, loc: Loc,
                 found: Found) -> Any:
    if sub is None:
        try:
            return _field_adapter(model, name).validate_python(value)
        except ValidationError as exc:
            for err in exc.errors():
                found.add(loc + tuple(err["loc"]), _message(err), key=err["type"] == "missing")
            return _FAILED
    if value is None:  # an optional section written empty (`cilium:`)
        return None
    if typing.get_origin(model.model_fields[name].annotation) is list:
        if not isinstance(value, list):
            found.add(loc, f"must be a list of {name}, not {yaml_type(value)}")
            return _FAILED
        if len(value) > MAX_CLUSTER_NODES:
            found.add(loc, f"lists {len(value)} machines, more than the {MAX_CLUSTER_NODES} nodes a Kubernetes "
                      "cluster supports")
            return _FAILED
        return [_parse_model(sub, item, loc + (i,), found) for i, item in enumerate(value)]
    parsed = _parse_model(sub, value, loc, found)
    return _FAILED if parsed is None else parsed


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    """One field's type with its constraints (min_length, validators), checked on its own."""
    info = model.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation)


def _missing(loc: Loc, section: bool) -> str:
    what = "required section is missing" if section else "required field is missing"
    hint = MISSING_HINTS.get(".".join(str(p) for p in loc if isinstance(p, str)))
    return f"{what}: {hint}" if hint else what


def _assemble(model: type[BaseModel], parsed: Parsed) -> BaseModel:
    """The model from fields already validated one by one (every one present: no error was found)."""
    values = {}
    for name, _, sub in _fields_of(model):
        value = parsed[name]
        if sub is not None and value is not None:
            value = [_assemble(sub, v) for v in value] if isinstance(value, list) else _assemble(sub, value)
        values[name] = value
    return model.model_construct(**values)


def _message(err: dict) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "literal_error":
        allowed = [a.strip(" '") for a in err["ctx"]["expected"].replace(" or ", ", ").split(",")]
        near = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return f"{shown(value)} is not one of: {', '.join(allowed)}{hint}"
    expected = {"model_type": "a mapping", "dict_type": "a mapping", "list_type": "a list",
                "string_type": "a string", "int_type": "a number", "bool_type": "true or false"}
    if kind in expected:
        return f"must be {expected[kind]}, not {yaml_type(value)}"
    return err["msg"]


@functools.cache
def _fields_of(model: type[BaseModel]) -> list[tuple[str, Any, type[BaseModel] | None]]:
    """Each field's name, FieldInfo and nested model (None for a plain value), worked out once."""
    return [(name, info, _model_in(info.annotation)) for name, info in model.model_fields.items()]


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _model_in(arg):
            return found
    return None


def _unknown_keys(model: type[BaseModel], data, loc: Loc, found: Found) -> None:
    if isinstance(data, list):
        for i, item in enumerate(data):
            _unknown_keys(model, item, loc + (i,), found)
        return
    if not isinstance(data, dict):
        return
    nested = {name: sub for name, _, sub in _fields_of(model)}
    for key, value in data.items():
        if key not in nested:
            near = difflib.get_close_matches(str(key), list(nested), n=1, cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else f" (allowed: {', '.join(nested)})"
            found.add(loc + (key,), f"unknown key {shown(str(key))}{hint}", key=True)
        elif nested[key] is not None:
            _unknown_keys(nested[key], value, loc + (key,), found)


def iter_field_paths(model: type[BaseModel] = Cluster, prefix: str = "") -> Iterator[str]:
    """Every documented field path (`nodes[].mac`), for the reference in docs/configuration.md and its test."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        if sub := _model_in(info.annotation):
            is_list = typing.get_origin(info.annotation) is list
            yield from iter_field_paths(sub, f"{path}[]." if is_list else f"{path}.")


