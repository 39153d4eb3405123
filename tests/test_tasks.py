"""The shared core and its task registry: the core imports no task, checkpoints dispatch on
their kind, checkpoints written before tasks still load, and old config keys are migrated."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from speechvq.checkpoint import load_checkpoint, load_model, resolve_checkpoint, save_checkpoint
from speechvq.config import load_config, load_config_text
from speechvq.errors import ConfigError, ModelError
from speechvq.models.speech.vqvae import load_vqvae
from speechvq.registry import get_task, task_names

OLD = Path(__file__).parent / "data" / "speech_before_tasks.pt"
# what the model in OLD gave, with the code that wrote it (tests/data/make_speech_before_tasks.py)
OLD_CODES = [[3, 3, 3, 3, 3, 3, 3, 3, 3, 3]]
CORE = ["speechvq.train", "speechvq.config", "speechvq.checkpoint", "speechvq.distributed",
        "speechvq.fileio", "speechvq.registry", "speechvq.models.quantizer",
        "speechvq.evaluation.results"]
MODALITY = ("speechvq.tasks", "speechvq.config.speech", "speechvq.data", "speechvq.models.speech",
            "speechvq.evaluation.speech", "speechvq.audio", "librosa", "soundfile")


def test_the_core_imports_no_task_or_modality():
    code = (f"import sys\nfor m in {CORE!r}: __import__(m)\n"
            f"bad = sorted(m for m in sys.modules if m.startswith({MODALITY!r}))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "", f"the core imported {out.stdout.strip()}"


def test_registry_knows_speech_and_refuses_unknown_tasks():
    from speechvq.config.speech import SpeechModelConfig
    assert "speech" in task_names() and get_task("speech").sections["model"] is SpeechModelConfig
    with pytest.raises(ConfigError, match=r"unknown task 'imagee'.*speech"):
        load_config(None, ["task=imagee"])
    cfg = load_config(None, [])
    assert cfg.task == "speech" and not hasattr(cfg, "eval")


def test_checkpoint_from_before_tasks_loads_and_encodes_as_it_did():
    state = load_checkpoint(OLD)
    assert "task" not in state["config"] and "num_workers" in state["config"]["data"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vq = load_vqvae(OLD)
    notes = " ".join(str(w.message) for w in caught)
    assert "'data.num_workers' is now 'train.num_workers'" in notes
    assert "'eval.temperature' is no longer a config key" in notes
    wav = torch.randn(1, 3200, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        assert vq.encode(wav).tolist() == OLD_CODES
    assert vq.speakers == ["spkA", "spkB"]


def test_another_kind_is_refused_naming_both(tmp_path):
    state = load_checkpoint(OLD)
    state["kind"] = "image"
    save_checkpoint(state, tmp_path / "image.pt")
    with pytest.raises(ModelError, match=r"holds a 'image' model, but this command needs a "
                                         r"'speech' model"):
        load_vqvae(tmp_path / "image.pt")
    state["kind"] = "hologram"
    save_checkpoint(state, tmp_path / "future.pt")
    with pytest.raises(ModelError, match=r"'hologram' model, which this speechvq cannot load"):
        load_model(tmp_path / "future.pt")


def test_checkpoint_best_names_best_pt(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(OLD, tmp_path / "checkpoints" / "best.pt")
    assert resolve_checkpoint(tmp_path, "best") == tmp_path / "checkpoints" / "best.pt"
    assert load_model(tmp_path, "best", kind="speech").speakers == ["spkA", "spkB"]


def test_old_yaml_keys_are_migrated_with_a_note(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("data:\n  num_workers: 3\n  normalize: true\neval:\n  batch_size: 4\n")
    with pytest.warns(UserWarning, match=r"'data.num_workers' is now 'train.num_workers'"):
        cfg = load_config(path)
    assert cfg.train.num_workers == 3
    with pytest.warns(UserWarning):
        assert load_config_text(path.read_text()) == cfg


def test_old_keys_on_the_command_line_are_migrated_too():
    with pytest.warns(UserWarning, match=r"command line.*'data.num_workers' is now"):
        cfg = load_config(None, ["data.num_workers=2", "eval.temperature=0.5", "train.lr=1e-3"])
    assert cfg.train.num_workers == 2 and cfg.train.lr == 1e-3
