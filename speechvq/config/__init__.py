"""Typed configuration: dataclasses <- YAML file <- ``key.sub=value`` overrides.

One dataclass per component (after nanoGPT's ``GPTConfig``); every field carries a one-line doc
with its meaning and the default of van den Oord et al. (2017) where the paper gives one. The root
(`speechvq.config.root`) holds ``task`` (default ``speech``), the task's sections (``data``,
``model``, ...), ``train`` and ``seed``; the engine (`speechvq.config.engine`) knows no task. The
sections of each task live beside them (`speechvq.config.speech`).

    cfg = load_config("conf/train.yaml", ["model.quantizer.codebook_size=128", "train.lr=1e-4"])
    print(dump_config(cfg))                    # the resolved YAML, one comment per key
    assert load_config_text(dump_config(cfg)) == cfg

A YAML file may set any subset of keys; the rest keep their defaults. Unknown keys, wrong types and
values outside a field's choices or range raise `ConfigError` naming the key, its section, and the
valid keys or the expected type. Nothing is ever evaluated: values are parsed with
``yaml.safe_load`` and then checked against the field's declared type.
"""

from speechvq.config.engine import (COMMAND_LINE, config_to_dict, dump_config, param,
                                    section)
from speechvq.config.root import (DEFAULT_TASK, Config, QuantizerConfig, TrainConfig,
                                  config_from_dict, default_config, load_config,
                                  load_config_text, root_class)

__all__ = ["COMMAND_LINE", "Config", "DEFAULT_TASK", "QuantizerConfig", "TrainConfig",
           "config_from_dict", "config_to_dict", "default_config", "dump_config", "load_config",
           "load_config_text", "param", "root_class", "section"]
