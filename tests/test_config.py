"""Config: defaults, YAML, typed overrides, unknown keys, wrong types, round trip."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from speechvq.config import (config_to_dict, default_config, dump_config, load_config,
                             load_config_text)
from speechvq.config.speech import code_hop
from speechvq.errors import ConfigError


def test_defaults_follow_the_paper():
    cfg = default_config()
    assert cfg.data.sample_rate == 16000
    assert cfg.model.encoder.strides == [2] * 6 and cfg.model.encoder.kernel_size == 4
    assert code_hop(cfg) == 64
    assert cfg.model.quantizer.codebook_size == 512
    assert cfg.model.quantizer.beta == 0.25 and cfg.model.quantizer.decay == 0.99
    assert cfg.model.decoder.wavenet.quantization_channels == 256
    assert cfg.train.lr == 2e-4


def test_every_field_has_a_doc():
    def walk(obj, path):
        for f in dataclasses.fields(obj):
            assert f.metadata.get("doc"), f"{path}{f.name} has no doc"
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{path}{f.name}.")
    walk(default_config(), "")


def test_yaml_file_sets_a_subset_and_overrides_win(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("model:\n  quantizer:\n    codebook_size: 128\ntrain:\n  lr: 1e-3\n")
    cfg = load_config(path, ["train.lr=5e-4", "model.encoder.strides=[2,2,2,2,2,4,5]",
                             "model.encoder.utterance_norm=true", "train.betas=0.5,0.9",
                             "model.encoder.input=logmel", "seed=7"])
    assert cfg.model.quantizer.codebook_size == 128        # from the file
    assert cfg.train.lr == 5e-4                            # override beats the file
    assert isinstance(cfg.train.lr, float)
    assert cfg.model.encoder.strides == [2, 2, 2, 2, 2, 4, 5]
    assert cfg.model.encoder.utterance_norm is True
    assert cfg.train.betas == [0.5, 0.9]
    assert cfg.model.encoder.input == "logmel" and cfg.seed == 7
    assert cfg.data.sample_rate == 16000                   # untouched keys keep defaults
    assert code_hop(cfg) == 320


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match=r"train.max_steps.*expects int, got float 1.5"):
        load_config(None, ["train.max_steps=1.5"])


@pytest.mark.parametrize("override, pattern", [
    ("model.encoder.chanels=3",
     r"unknown config key 'model.encoder.chanels'.*section 'model.encoder'.*did you mean "
     r"'channels'.*valid keys: input, strides, kernel_size, channels"),
    ("modle.encoder.channels=3", r"unknown config key 'modle'.*root section.*valid keys: task, "
                                 r"data, model, train, seed"),
    ("train.lr=abc", r"'train.lr'.*expects float, got str 'abc'"),
    ("model.encoder.utterance_norm=3", r"'model.encoder.utterance_norm'.*expects bool, got int"),
    ("model.encoder.strides=[2,x]", r"'model.encoder.strides'.*expects list of int, got list \[2, 'x'\]"),
    ("model.encoder.input=mfcc", r"'model.encoder.input'.*must be one of wav, logmel"),
    ("train.max_steps=0", r"'train.max_steps'.*must be >= 1"),
    ("model.encoder=3", r"'model.encoder' is a config section"),
    ("train.lr.x=3", r"'train.lr' is a value, not a section"),
    ("train.lr", r"not key=value"),
    ("data.fmax=9000", r"data.fmax.*Nyquist"),
    ("model.decoder.wavenet.layers=31", r"not a multiple of model.decoder.wavenet.cycles"),
])
def test_bad_overrides_name_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, [override])


def test_bad_yaml_file_names_the_file_key_and_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_sise: 8\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.batch_sise' \(in .*bad.yaml\)"
                                          r" in section 'train'.*did you mean 'batch_size'"):
        load_config(path)
    path.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml' line \d+, column \d+: YAML syntax error"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)
    path.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="section 'model'.*must be a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"config file '.*missing.yaml' does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == default_config()


@pytest.mark.parametrize("comments", [True, False])
def test_round_trip(comments, tmp_path):
    cfg = load_config(None, ["train.lr=1e-5", "model.quantizer.epsilon=1e-7",
                             "model.encoder.strides=[2,2,2,2,2,4,5]", "train.valid_every=100",
                             "train.device=cuda:1", "model.encoder.input=logmel"])
    text = dump_config(cfg, comments=comments)
    assert load_config_text(text) == cfg
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == cfg
    assert yaml.safe_load(text) == config_to_dict(cfg)


def test_string_fields_keep_text_as_typed():
    # YAML would read `yes` as a bool; a str field keeps the characters the user typed.
    with pytest.raises(ConfigError, match="must be auto, cpu, cuda or cuda:N, got 'yes'"):
        load_config(None, ["train.device=yes"])


def test_several_files_apply_in_order(tmp_path):
    base, stage = tmp_path / "base.yaml", tmp_path / "stage.yaml"
    base.write_text("model:\n  quantizer:\n    codebook_size: 128\n    dim: 32\n"
                    "train:\n  lr: 1e-3\n  freeze: [encoder]\n")
    stage.write_text("model:\n  quantizer:\n    dim: 16\ntrain:\n  freeze: [encoder, quantizer]\n")
    cfg = load_config([base, stage], ["train.lr=5e-4"])
    assert cfg.model.quantizer.codebook_size == 128      # kept from the base
    assert cfg.model.quantizer.dim == 16                 # the later file wins
    assert cfg.train.freeze == ["encoder", "quantizer"]  # lists are replaced, not merged
    assert cfg.train.lr == 5e-4
    stage.write_text("train:\n  frezee: [encoder]\n")
    with pytest.raises(ConfigError, match=r"'train.frezee' \(in .*stage.yaml\)"):
        load_config([base, stage])
    with pytest.raises(ConfigError, match="train.freeze' names unknown modules \\(decoder\\)"):
        load_config(None, ["train.freeze=[decoder]"])


def test_cross_key_checks_apply_to_the_merged_files_not_each_file(tmp_path):
    base, stage = tmp_path / "base.yaml", tmp_path / "stage.yaml"
    base.write_text("model:\n  encoder:\n    input: logmel\n")
    stage.write_text("model:\n  decoder:\n    mel:\n      weight: 1.0\n")
    cfg = load_config([base, stage])  # stage.yaml alone fails the mel-hop check
    assert cfg.model.encoder.input == "logmel" and cfg.model.decoder.mel.weight == 1.0
    with pytest.raises(ConfigError):
        load_config(stage)
