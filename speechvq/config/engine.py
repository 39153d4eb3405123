"""The config engine: typed dataclasses <- YAML text <- ``key.sub=value`` overrides.

Knows no task and no modality. A config is a tree of dataclasses (after nanoGPT's ``GPTConfig``)
whose fields are declared with `param` (a default, a one-line doc with the paper's value, optional
choices and range) or `section` (a nested dataclass). This module turns partial mappings into such
trees, checking every key and type, applies ``a.b.c=value`` overrides typed by the field, parses
YAML safely (nothing is ever evaluated) and writes the resolved tree back as commented YAML.
`speechvq.config.root` builds the root of a task on it.

A section checks itself: a dataclass may define ``check(self, root)``, called by `check_tree` on
the fully merged root (cross-key checks wait for the merge: one file may hold half of a pair).

Ranges are declarations, checked here once for every task: each number against its field's
``min``/``max`` (an int without a ``max`` at most `MAX_INT`), NaN and infinity refused, and each
`Size` a section lists in its ``SIZES`` (the tensors its keys make, as a product of keys) at most
`MAX_ALLOCATION_BYTES`, so a config that would allocate tens of GB fails at `speechvq config`,
not at train time. YAML is read by a loader that bounds what aliases may expand to
(`MAX_YAML_NODES`), and values shown in messages are cut short (`shown`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import types
import typing
from dataclasses import field
from typing import Any, Iterable, Union

import yaml

from speechvq.errors import ConfigError

COMMAND_LINE = "<command line>"  # the `source` of values that came from key=value overrides
MAX_INT = 2**31 - 1  # an int field without its own max: a C int (torch sizes, numpy, the OS)
MAX_ALLOCATION_BYTES = 8 * 2**30  # the largest single tensor a config's `Size`s may ask for
MAX_YAML_NODES = 100_000  # nodes a YAML config may hold with its aliases expanded (a bomb: 10^9)
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 8, 8, 3


def shown(value: Any) -> str:
    """`value` for a message: a repr cut short, never expanding more than a few items (a YAML
    alias bomb's repr would not fit in memory)."""
    return _REPR.repr(value)


@dataclasses.dataclass(frozen=True)
class Size:
    """A tensor a section's keys make: `keys` (dotted from the root) multiplied, times `bytes`
    per element; `check_tree` refuses a config where it would pass `MAX_ALLOCATION_BYTES`.
    Declared by a section as ``SIZES: ClassVar[tuple[Size, ...]] = (Size(...), ...)``."""

    what: str
    keys: tuple[str, ...]
    bytes: int = 4  # float32

    def check(self, root: Any) -> None:
        values = []
        for key in self.keys:
            node = root
            for part in key.split("."):
                node = getattr(node, part, None)
            if node is None:  # a key of another task's root: nothing to check
                return
            values.append(max(node) if isinstance(node, list) and node else node)
        total = math.prod(int(v) for v in values) * self.bytes
        if total > MAX_ALLOCATION_BYTES:
            product = " x ".join(f"{k} ({v})" for k, v in zip(self.keys, values))
            raise ConfigError(f"config keys {product} make {self.what} of {total / 2**30:.1f} "
                              f"GiB, above the {MAX_ALLOCATION_BYTES / 2**30:.0f} GiB limit of "
                              f"one tensor; lower one of them")


def param(default: Any, doc: str, *, choices: Iterable[Any] | None = None,
          min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
    """A dataclass field with its one-line doc and optional checks (choices, inclusive range)."""
    meta = {"doc": doc, "choices": tuple(choices) if choices is not None else None,
            "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    """A nested config section (a dataclass field whose value is another config dataclass)."""
    return field(default_factory=cls, metadata={"doc": doc})


# ----------------------------------------------------------------------------------- conversion

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str"}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        (arg,) = typing.get_args(tp)
        return f"list of {_type_name(arg)}"
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check `value` against the declared type `tp`; convert only lossless cases (int -> float,
    a numeric string such as ``1e-4`` -> float, ``"2,2,2"`` -> list)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError:
                pass
        _type_error(value, tp, key, where)
    if origin is list:
        (elem,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [_bounded_load(v, COMMAND_LINE) for v in value.split(",")] \
                if value.strip() else []
        if not isinstance(value, (list, tuple)):
            _type_error(value, tp, key, where)
        try:
            return [_coerce(v, elem, key, where) for v in value]
        except ConfigError:
            _type_error(value, tp, key, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        _type_error(value, tp, key, where)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        _type_error(value, tp, key, where)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        _type_error(value, tp, key, where)
    if tp is str:
        if isinstance(value, str):
            return value
        _type_error(value, tp, key, where)
    raise TypeError(f"config field {key} has an unsupported type {tp!r}")  # a bug, not user input


def _type_error(value: Any, tp: Any, key: str, where: str) -> typing.NoReturn:
    text = "null" if value is None else f"{type(value).__name__} {shown(value)}"
    raise ConfigError(f"config key '{key}'{where} expects {_type_name(tp)}, got {text}; "
                      f"fix the value (see `speechvq config` for every key and its default)")


def _unknown_key(key: str, section_path: str, valid: list[str], where: str) -> typing.NoReturn:
    full = f"{section_path}.{key}" if section_path else key
    name = f"section '{section_path}'" if section_path else "the root section"
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"unknown config key '{full}'{where} in {name}{hint}; valid keys: "
                      f"{', '.join(valid)}")


def _check_range(value: Any, f: dataclasses.Field, key: str, where: str) -> None:
    choices, lo, hi = f.metadata.get("choices"), f.metadata.get("min"), f.metadata.get("max")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key '{key}'{where} must be one of "
                          f"{', '.join(map(str, choices))}; got {shown(value)}")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"config key '{key}'{where} must be finite, got {item!r}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            top = hi if hi is not None else MAX_INT if isinstance(item, int) else None
            if lo is not None and item < lo:
                raise ConfigError(f"config key '{key}'{where} must be >= {lo}, got "
                                  f"{shown(item)}")
            if top is not None and item > top:
                raise ConfigError(f"config key '{key}'{where} must be <= {top}, got "
                                  f"{shown(item)}")


def build_section(cls: type, values: Any, path: str = "", where: str = "") -> Any:
    """Make a `cls` instance from a (partial) mapping, defaults filling the rest."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        name = f"section '{path}'" if path else "the config"
        raise ConfigError(f"{name}{where} must be a mapping of keys to values, got "
                          f"{type(values).__name__} {shown(values)}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        key = str(key)
        if key not in fields:
            _unknown_key(key, path, list(fields), where)
        full = f"{path}.{key}" if path else key
        tp = hints[key]
        if _is_section(tp):
            kwargs[key] = build_section(tp, value, full, where)
        else:
            kwargs[key] = _coerce(value, tp, full, where)
            _check_range(kwargs[key], fields[key], full, where)
    return cls(**kwargs)


def check_tree(obj: Any, root: Any) -> None:
    """Call ``check(root)`` of every section under `obj` that defines one (depth first)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_tree(value, root)
    for size in getattr(obj, "SIZES", ()):
        size.check(root)
    check = getattr(obj, "check", None)
    if callable(check):
        check(root)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts, lists and scalars (YAML- and JSON-safe)."""
    return dataclasses.asdict(cfg)


def split_override(override: str) -> tuple[str, str]:
    """``"a.b=value"`` -> ``("a.b", "value")``.

    Raises:
        ConfigError: not of the form key=value.
    """
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{override}' is not key=value; write for example "
                          f"train.lr=1e-4 or model.encoder.strides=[2,2,2]")
    return key, raw


def set_override(tree: dict[str, Any], override: str, root: type) -> None:
    """Apply one ``a.b.c=value`` to a nested dict, checking the path against `root`'s
    dataclasses."""
    key, raw = split_override(override)
    where = " (on the command line)"
    parts = key.split(".")
    cls, node = root, tree
    for depth, part in enumerate(parts):
        fields = [f.name for f in dataclasses.fields(cls)]
        if part not in fields:
            _unknown_key(part, ".".join(parts[:depth]), fields, where)
        tp = _hints(cls)[part]
        last = depth == len(parts) - 1
        if _is_section(tp):
            if last:
                keys = [f.name for f in dataclasses.fields(tp)]
                raise ConfigError(f"'{key}' is a config section, not a value; set one of its "
                                  f"keys, e.g. {key}.{keys[0]}=...; valid keys: {', '.join(keys)}")
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            cls, node = tp, child
        else:
            if not last:
                raise ConfigError(f"'{'.'.join(parts[:depth + 1])}' is a value, not a section; "
                                  f"'{key}' does not exist")
            try:
                value = _bounded_load(raw, COMMAND_LINE) if raw.strip() else ""
            except (yaml.YAMLError, RecursionError):
                value = raw
            if typing.get_origin(tp) is None and tp is str and not isinstance(value, str):
                value = raw  # a string field keeps the text as typed ("yes" stays "yes")
            node[part] = value


def merge_trees(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer` over `base`: sections merge key by key, values (lists too) are replaced."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = value
    return out


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """The mapping a YAML config text holds ({} when empty).

    Raises:
        ConfigError: a syntax error (file, line, column) or not a mapping.
    """
    try:
        tree = _bounded_load(text, source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file '{source}'{at}: YAML syntax error ({problem}); fix the "
                          f"file") from None
    except RecursionError:
        raise ConfigError(f"config file '{source}' nests too deeply; a config is a few levels "
                          f"of sections: fix the file") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file '{source}' must hold a mapping of sections (task, data, "
                          f"model, train, seed, ...), got {type(tree).__name__}")
    return tree


def _bounded_load(text: str, source: str) -> Any:
    """`yaml.safe_load`, refusing a document whose nodes, aliases expanded, pass
    `MAX_YAML_NODES` (counted on the node graph before any Python object is built)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def expanded(n: yaml.Node) -> int:  # memoised: each distinct node is visited once
            if id(n) in sizes:
                return sizes[id(n)]
            sizes[id(n)] = 1  # a recursive alias counts once, not forever
            total = 1
            if isinstance(n, yaml.SequenceNode):
                total += sum(expanded(c) for c in n.value)
            elif isinstance(n, yaml.MappingNode):
                total += sum(expanded(k) + expanded(v) for k, v in n.value)
            sizes[id(n)] = min(total, MAX_YAML_NODES + 1)
            return sizes[id(n)]

        if expanded(node) > MAX_YAML_NODES:
            raise ConfigError(f"config file '{source}' expands to more than {MAX_YAML_NODES} "
                              f"values (aliases repeating aliases); a config needs a few "
                              f"hundred: write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def dump_config(cfg: Any, *, comments: bool = True) -> str:
    """The resolved config as YAML; with `comments`, each key carries its one-line doc.

    The output loads back to an equal config (`load_config_text`).
    """
    if not comments:
        return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    lines: list[str] = []
    _dump_section(cfg, 0, lines)
    return "\n".join(lines) + "\n"


def _dump_section(obj: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        doc = f.metadata.get("doc", "")
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:  # {doc}" if doc else f"{pad}{f.name}:")
            _dump_section(value, indent + 1, lines)
            continue
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        if text.endswith("\n...") or text.endswith("..."):
            text = text.rsplit("\n", 1)[0].strip()
        lines.append(f"{pad}{f.name}: {text}" + (f"  # {doc}" if doc else ""))
