"""Typed configuration: dataclasses <- YAML file <- ``key.sub=value`` overrides.

One dataclass per component (after nanoGPT's ``GPTConfig``); every field carries a one-line doc
with its meaning and the default of van den Oord et al. (2017) where the paper gives one. A root
`Config` composes the sections ``data``, ``model`` (``encoder``, ``quantizer``, ``decoder``),
``train``, ``eval`` and ``seed``.

    cfg = load_config("conf/train.yaml", ["model.quantizer.codebook_size=128", "train.lr=1e-4"])
    print(dump_config(cfg))                    # the resolved YAML, one comment per key
    assert load_config_text(dump_config(cfg)) == cfg

A YAML file may set any subset of keys; the rest keep their defaults. Unknown keys, wrong types and
values outside a field's choices or range raise `ConfigError` naming the key, its section, and the
valid keys or the expected type. Nothing is ever evaluated: values are parsed with
``yaml.safe_load`` and then checked against the field's declared type.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence, Union

import yaml

from speechvq.errors import ConfigError

COMMAND_LINE = "<command line>"  # the `source` of values that came from key=value overrides


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


# --------------------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """Audio and features, shared by the dump, the model and the evaluation."""

    sample_rate: int = param(16000, "model sample rate in Hz; paper: 16 kHz", min=1000)
    window: int = param(16384, "training window in samples (about 1 s at 16 kHz)", min=1)
    normalize: bool = param(False, "peak-normalise each utterance at dump time (default: only "
                                   "scale down where |x| > 1)")
    n_fft: int = param(1024, "FFT size of log-mel features (encoder input, mel head, metrics)",
                       min=16)
    win_length: int = param(400, "analysis window of log-mel features in samples (25 ms)", min=1)
    hop_length: int = param(160, "hop of log-mel features in samples (10 ms)", min=1)
    n_mels: int = param(80, "mel bands", min=1)
    fmin: float = param(0.0, "lowest mel band edge in Hz", min=0)
    fmax: float = param(8000.0, "highest mel band edge in Hz (at most sample_rate / 2)", min=0)
    num_workers: int = param(0, "DataLoader worker processes (0 = read in the main process)",
                             min=0)


@dataclass
class EncoderConfig:
    """Speech encoder: strided convolutions (or a log-mel front end), dilated residual blocks,
    then a 1x1 projection to the quantiser's dimension."""

    input: str = param("wav", "encoder input: raw 'wav' samples (paper) or 'logmel' frames",
                       choices=("wav", "logmel"))
    strides: list[int] = param([2, 2, 2, 2, 2, 2], "strides of the downsampling convolutions; "
                               "paper: six of 2 (64x); [2,2,2,2,2,4,5] = 640x = 25 Hz")
    kernel_size: int = param(4, "window of each strided convolution; paper: 4", min=1)
    channels: int = param(512, "hidden channels of the encoder (not given by the paper)", min=1)
    dilations: list[int] = param([1, 2, 4, 8], "one residual block per dilation, kernel 3, "
                                 "widening the receptive field")
    mel_frame_stride: int = param(2, "logmel input only: frames merged per code (hop x stride "
                                  "= code hop; 2 x 10 ms = 50 Hz)", min=1)
    utterance_norm: bool = param(False, "logmel input only: per-utterance mean/variance "
                                 "normalisation (removes speaker level and tilt)")
    jitter: float = param(0.0, "time-jitter probability on the codes (Chorowski et al. 2019 "
                          "use 0.12); 0 = off", min=0.0, max=1.0)
    dropout: float = param(0.0, "dropout inside the residual blocks", min=0.0, max=1.0)


@dataclass
class QuantizerConfig:
    """Vector-quantisation bottleneck (paper section 3.1 and appendix A.1 for the EMA update)."""

    codebook_size: int = param(512, "K, number of codes; paper speech: 512 (phone study: 128)",
                               min=1)
    dim: int = param(64, "D, dimension of each code and of the encoder's output", min=1)
    update: str = param("ema", "codebook update: 'ema' (paper appendix; steadier) or "
                        "'gradient' (paper main text: codebook loss)", choices=("ema", "gradient"))
    beta: float = param(0.25, "commitment cost beta; paper: 0.25", min=0.0)
    decay: float = param(0.99, "EMA decay gamma; paper: 0.99", min=0.0, max=1.0)
    epsilon: float = param(1e-5, "Laplace smoothing of the EMA counts", min=0.0)
    restart_after: int = param(200, "restart codes unused for this many training steps from "
                               "recent encoder outputs; 0 = never", min=0)
    kmeans_init: bool = param(False, "initialise the codebook by k-means on the first batch")
    kmeans_iters: int = param(10, "Lloyd iterations of the k-means initialisation", min=1)
    chunk_size: int = param(8192, "vectors per distance matmul (bounds memory at chunk x K)",
                            min=1)


@dataclass
class WaveNetConfig:
    """WaveNet decoder over 8-bit mu-law (Oord et al. 2016), conditioned on codes and speaker."""

    weight: float = param(1.0, "weight of the WaveNet's NLL in the total loss; 0 = no WaveNet",
                          min=0.0)
    layers: int = param(30, "dilated layers; WaveNet: 30 (3 cycles of 10)", min=1)
    cycles: int = param(3, "dilation cycles; dilations 1, 2, 4, ... restart each cycle", min=1)
    kernel_size: int = param(2, "kernel of the causal dilated convolutions; WaveNet: 2", min=2)
    residual_channels: int = param(256, "residual channels", min=1)
    gate_channels: int = param(512, "channels before the tanh x sigmoid gate (split in two)",
                               min=2)
    skip_channels: int = param(256, "skip-connection channels", min=1)
    upsample: str = param("transposed", "code-to-sample upsampling: learned 'transposed' "
                          "convolution or 'repeat' + convolution",
                          choices=("transposed", "repeat"))
    output: str = param("softmax", "output distribution: 256-way 'softmax' over mu-law (paper) "
                        "or mixture of logistics 'mol'", choices=("softmax", "mol"))
    mixtures: int = param(10, "logistic components when output = 'mol'", min=1)
    quantization_channels: int = param(256, "mu-law levels; paper: 8 bits = 256", min=2)
    train_window: int = param(0, "samples of each training window the WaveNet's loss uses (a "
                              "random code-aligned crop; 0 = the whole window)", min=0)
    detach_codes: bool = param(False, "train the WaveNet on the codes without sending its "
                               "gradient into the encoder (codes learned by the other head)")
    engine: str = param("auto", "sampling engine: 'auto' (fused on CPU where numba imports, "
                        "else eager), 'eager' (PyTorch ops, the reference), 'fused' (one compiled "
                        "CPU kernel), 'fused_bf16' (its weights in bfloat16)",
                        choices=("auto", "eager", "fused", "fused_bf16"))


@dataclass
class MelHeadConfig:
    """Convolutional log-mel decoder on the same codes: teaches the codes fast and gives a
    Griffin-Lim conversion path (not in the paper)."""

    weight: float = param(0.0, "weight of its L1 log-mel loss; 0 = the paper's pure WaveNet "
                          "model", min=0.0)
    channels: int = param(256, "hidden channels", min=1)
    layers: int = param(4, "residual convolution layers", min=1)
    kernel_size: int = param(5, "kernel of its convolutions", min=1)


@dataclass
class DecoderConfig:
    """Decoder heads and the speaker table they share."""

    speaker_dim: int = param(64, "learned speaker embedding size (global conditioning)", min=1)
    wavenet: WaveNetConfig = section(WaveNetConfig, "the WaveNet head")
    mel: MelHeadConfig = section(MelHeadConfig, "the log-mel head")


@dataclass
class ModelConfig:
    """The VQ-VAE: encoder -> quantiser -> decoder heads."""

    encoder: EncoderConfig = section(EncoderConfig, "the encoder")
    quantizer: QuantizerConfig = section(QuantizerConfig, "the VQ bottleneck")
    decoder: DecoderConfig = section(DecoderConfig, "the decoder heads")


@dataclass
class TrainConfig:
    """Optimisation and checkpointing; a fixed step budget, never wall-clock."""

    batch_size: int = param(16, "windows per step (over all GPUs)", min=1)
    lr: float = param(2e-4, "peak learning rate; paper: 2e-4 (Adam)", min=0.0)
    betas: list[float] = param([0.9, 0.999], "AdamW betas")
    weight_decay: float = param(0.0, "AdamW weight decay", min=0.0)
    schedule: str = param("constant", "learning-rate schedule after warm-up",
                          choices=("constant", "cosine", "linear"))
    warmup_steps: int = param(0, "linear warm-up steps", min=0)
    max_steps: int = param(250000, "total optimiser steps; paper: 250k", min=1)
    grad_clip: float = param(1.0, "clip the global gradient norm to this; 0 = off", min=0.0)
    amp: str = param("auto", "mixed precision on CUDA: 'auto' (bf16 if supported, else fp16), "
                     "'bf16', 'fp16' or 'none'; always off on CPU",
                     choices=("auto", "bf16", "fp16", "none"))
    device: str = param("auto", "'auto' (CUDA if available), 'cpu', 'cuda' or 'cuda:N'")
    checkpoint_every: int = param(1000, "steps between checkpoints", min=1)
    keep_checkpoints: int = param(5, "step-numbered checkpoints kept besides last.pt", min=1)
    log_every: int = param(50, "steps between metrics.jsonl lines", min=1)
    init_from: str = param("", "exp dir or checkpoint whose weights start a new run (tensors "
                           "with matching names and shapes); '' = random initialisation")
    freeze: list[str] = param([], "modules kept fixed, any of encoder, quantizer, "
                              "speaker_embedding, wavenet, mel_decoder ([encoder, quantizer] "
                              "trains a decoder head on frozen codes)")


@dataclass
class EvalConfig:
    """Unit and conversion evaluation."""

    batch_size: int = param(8, "utterances per batch when encoding and converting", min=1)
    abx_max_triplets: int = param(5000, "ABX triplets sampled (seeded) per condition", min=1)
    temperature: float = param(1.0, "WaveNet sampling temperature for conversion", min=0.0)


@dataclass
class Config:
    """The root config of every speechvq command."""

    data: DataConfig = section(DataConfig, "audio and features")
    model: ModelConfig = section(ModelConfig, "the VQ-VAE")
    train: TrainConfig = section(TrainConfig, "optimisation and checkpoints")
    eval: EvalConfig = section(EvalConfig, "evaluation")
    seed: int = param(1234, "seed of every random generator (data sampling, init, sampling)")


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
            value = [yaml.safe_load(v) for v in value.split(",")] if value.strip() else []
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
    shown = "null" if value is None else f"{type(value).__name__} {value!r}"
    raise ConfigError(f"config key '{key}'{where} expects {_type_name(tp)}, got {shown}; "
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
                          f"{', '.join(map(str, choices))}; got {value!r}")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"config key '{key}'{where} must be finite, got {item!r}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if lo is not None and item < lo:
                raise ConfigError(f"config key '{key}'{where} must be >= {lo}, got {item!r}")
            if hi is not None and item > hi:
                raise ConfigError(f"config key '{key}'{where} must be <= {hi}, got {item!r}")


def _build(cls: type, values: Any, path: str, where: str) -> Any:
    """Make a `cls` instance from a (partial) mapping, defaults filling the rest."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        name = f"section '{path}'" if path else "the config"
        raise ConfigError(f"{name}{where} must be a mapping of keys to values, got "
                          f"{type(values).__name__} {values!r}")
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
            kwargs[key] = _build(tp, value, full, where)
        else:
            kwargs[key] = _coerce(value, tp, full, where)
            _check_range(kwargs[key], fields[key], full, where)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts, lists and scalars (YAML- and JSON-safe)."""
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any], *, source: str = "") -> Config:
    """Build a `Config` from nested dicts; `source` names where they came from in errors."""
    where = "" if not source else (" (on the command line)" if source == COMMAND_LINE
                                   else f" (in {source})")
    cfg = _build(Config, values, "", where)
    check_config(cfg)
    return cfg


def _set_override(tree: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` to a nested dict, checking the path against the dataclasses."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{override}' is not key=value; write for example "
                          f"train.lr=1e-4 or model.encoder.strides=[2,2,2]")
    where = " (on the command line)"
    parts = key.split(".")
    cls, node = Config, tree
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
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            if typing.get_origin(tp) is None and tp is str and not isinstance(value, str):
                value = raw  # a string field keeps the text as typed ("yes" stays "yes")
            node[part] = value


def load_config(path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                overrides: Iterable[str] = ()) -> Config:
    """Defaults <- YAML file(s) at `path` <- ``key=value`` overrides, validated.

    Several files are applied in order, a later one overriding the keys it sets (a recipe's base
    config, then a file with what one stage changes).

    Raises:
        ConfigError: missing or unreadable file, YAML syntax error, unknown key, wrong type or
            out-of-range value; the message names the key, its section and the fix.
    """
    paths = [] if path is None else [path] if isinstance(path, (str, os.PathLike)) else list(path)
    tree: dict[str, Any] = {}
    for source in map(os.fspath, paths):
        if not os.path.isfile(source):
            raise ConfigError(f"config file '{source}' does not exist; pass an existing YAML "
                              f"file to --config (see `speechvq config` for the defaults)")
        with open(source, encoding="utf-8") as f:
            layer = _parse_yaml(f.read(), source)
        # each file's unknown keys and wrong types name that file; cross-key checks wait for
        # the merged config (a file may hold half of a valid pair, e.g. input and hop)
        _build(Config, layer, "", f" (in {source})")
        tree = _merge(tree, layer)
    cfg = config_from_dict(tree, source=", ".join(map(os.fspath, paths)))
    overrides = list(overrides)
    if overrides:
        tree = config_to_dict(cfg)
        for override in overrides:
            _set_override(tree, override)
        cfg = config_from_dict(tree, source=COMMAND_LINE)
    return cfg


def _merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer` over `base`: sections merge key by key, values (lists too) are replaced."""
    out = dict(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config_text(text: str, source: str = "<string>") -> Config:
    """Parse a YAML config given as text (for example one saved in an exp dir)."""
    return config_from_dict(_parse_yaml(text, source), source=source)


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file '{source}'{at}: YAML syntax error ({problem}); fix the "
                          f"file") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file '{source}' must hold a mapping of sections (data, model, "
                          f"train, eval, seed), got {type(tree).__name__}")
    return tree


FREEZABLE = ("encoder", "quantizer", "speaker_embedding", "wavenet", "mel_decoder")


def check_config(cfg: Config) -> None:
    """Checks that involve several keys (each key alone was checked when it was set)."""
    d, enc = cfg.data, cfg.model.encoder
    if d.fmax > d.sample_rate / 2:
        raise ConfigError(f"config key 'data.fmax' = {d.fmax} is above the Nyquist frequency "
                          f"{d.sample_rate / 2} of data.sample_rate; lower it")
    if d.fmin >= d.fmax:
        raise ConfigError(f"config key 'data.fmin' = {d.fmin} must be below data.fmax = {d.fmax}")
    if d.win_length > d.n_fft:
        raise ConfigError(f"config key 'data.win_length' = {d.win_length} exceeds data.n_fft = "
                          f"{d.n_fft}; raise n_fft or shorten the window")
    if not enc.strides and enc.input == "wav":
        raise ConfigError("config key 'model.encoder.strides' is empty; give at least one stride, "
                          "e.g. [2,2,2,2,2,2]")
    if any(s < 1 for s in enc.strides) or any(x < 1 for x in enc.dilations):
        raise ConfigError("config keys 'model.encoder.strides' and 'model.encoder.dilations' "
                          "must hold positive integers")
    if cfg.model.decoder.mel.weight > 0 and code_hop(cfg) % d.hop_length:
        raise ConfigError(f"the log-mel head needs the code hop ({code_hop(cfg)} samples) to be "
                          f"a multiple of data.hop_length ({d.hop_length}); change "
                          f"data.hop_length or model.encoder.strides, or set "
                          f"model.decoder.mel.weight=0")
    wn = cfg.model.decoder.wavenet
    if wn.layers % wn.cycles:
        raise ConfigError(f"config key 'model.decoder.wavenet.layers' = {wn.layers} is not a "
                          f"multiple of model.decoder.wavenet.cycles = {wn.cycles}")
    if wn.gate_channels % 2:
        raise ConfigError("config key 'model.decoder.wavenet.gate_channels' must be even (it is "
                          "split into the tanh and sigmoid halves)")
    if wn.weight == 0 and cfg.model.decoder.mel.weight == 0:
        raise ConfigError("both decoder heads have weight 0 (model.decoder.wavenet.weight, "
                          "model.decoder.mel.weight); give one of them a positive weight")
    if len(cfg.train.betas) != 2 or not all(0 <= b < 1 for b in cfg.train.betas):
        raise ConfigError(f"config key 'train.betas' must be two numbers in [0, 1), got "
                          f"{cfg.train.betas}")
    unknown = [m for m in cfg.train.freeze if m not in FREEZABLE]
    if unknown:
        raise ConfigError(f"config key 'train.freeze' names unknown modules ({', '.join(unknown)}); "
                          f"choose from {', '.join(FREEZABLE)}")
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"config key 'train.device' must be auto, cpu, cuda or cuda:N, got "
                          f"{dev!r}")


def code_hop(cfg: Config) -> int:
    """Samples per code at ``data.sample_rate``: code i covers samples [i*hop, (i+1)*hop)."""
    enc = cfg.model.encoder
    if enc.input == "logmel":
        return cfg.data.hop_length * enc.mel_frame_stride
    return math.prod(enc.strides)


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
