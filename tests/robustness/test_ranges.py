"""Ranges as a class: every numeric key of every task's config, given a value out of its
declared range (below min, above max or `MAX_INT`, NaN, infinity), is refused by the engine
with a one-line `ConfigError` naming the key, before any data is read; sizes whose product would
allocate more than `MAX_ALLOCATION_BYTES` are refused the same way."""

from __future__ import annotations

import dataclasses
import math
import types
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ
from speechvq.config import load_config
from speechvq.config.engine import MAX_ALLOCATION_BYTES, MAX_INT
from speechvq.config.root import root_class
from speechvq.errors import ConfigError
from speechvq.registry import task_names


def numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, type, bool, dataclasses.Field]]:
    """(dotted key, int or float, whether a list, field) of every number or list of numbers
    under `cls`."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out += numeric_fields(tp, key + ".")
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        is_list = typing.get_origin(tp) is list
        if is_list:
            (tp,) = typing.get_args(tp)
        if tp in (int, float) and f.metadata.get("choices") is None:
            out.append((key, tp, is_list, f))
    return out


FIELDS = [(task, *item) for task in task_names() for item in numeric_fields(root_class(task))]


def bad_values(tp: type, f: dataclasses.Field) -> list:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    out = []
    if lo is not None:
        out.append(lo - 1 if tp is int else lo - abs(lo) * 0.5 - 1.0)
    if tp is int:
        out += [(hi if hi is not None else MAX_INT) + 1, 10**30]
    else:
        out += [math.nan, math.inf, -math.inf]
        if hi is not None:
            out.append(hi * 2 + 1.0)
    return out


def test_every_task_has_numeric_keys():
    assert {t for t, *_ in FIELDS} == set(task_names()) and len(FIELDS) > 30


class TestEveryNumericKey:
    @FUZZ
    @given(st.sampled_from(FIELDS), st.data())
    def test_out_of_range_is_one_line(self, field, data):
        task, key, tp, is_list, f = field
        value = data.draw(st.sampled_from(bad_values(tp, f)))
        text = repr(value) if not isinstance(value, float) or math.isfinite(value) else \
            {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")  # YAML spellings
        if is_list:
            text = f"[{text}]"
        with pytest.raises(ConfigError) as e:
            load_config(None, [f"task={task}", f"{key}={text}"])
        message = str(e.value)
        assert "\n" not in message and key.split(".")[-1] in message, (key, text, message)

    def test_defaults_are_in_range(self):
        for task in task_names():
            load_config(None, [f"task={task}"])


class TestSizes:
    def test_every_declared_size_is_refused_when_too_big(self):
        checked = set()
        for task in task_names():
            cfg = load_config(None, [f"task={task}"])
            sizes = [s for obj in _sections(cfg) for s in getattr(obj, "SIZES", ())]
            if sizes:
                checked.add(task)
            for size in sizes:
                if any(_get(cfg, k) is None for k in size.keys):
                    continue  # another task's key
                # each key within its own range, raised in turn until the product is too big
                overrides, values = [], {k: _get(cfg, k) for k in size.keys}
                for key in dict.fromkeys(size.keys):
                    top = _field(type(cfg), key).metadata.get("max") or MAX_INT
                    values[key] = top
                    overrides.append(f"{key}={top}")
                    if math.prod(values[k] for k in size.keys) * size.bytes \
                            > MAX_ALLOCATION_BYTES:
                        break
                with pytest.raises(ConfigError, match="GiB"):
                    load_config(None, [f"task={task}", *overrides])
        assert {"speech", "image"} <= checked  # the tasks whose sections declare sizes


def _sections(obj):
    yield obj
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from _sections(v)


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def _field(cls, key) -> dataclasses.Field:
    *heads, leaf = key.split(".")
    for part in heads:
        cls = typing.get_type_hints(cls)[part]
    return next(f for f in dataclasses.fields(cls) if f.name == leaf)
