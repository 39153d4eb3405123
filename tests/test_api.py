"""The Python API: `speechvq.load`, `model.encode(wav, sr)`, `model.decode(codes, speaker=...)`,
`speechvq.convert(...)`, a light ``import speechvq``, and README's usage block run as written."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

import speechvq
from speechvq.audio import resample
from speechvq.checkpoint import save_checkpoint
from speechvq.config import config_to_dict, dump_config, load_config
from speechvq.errors import ModelError
from speechvq.models.speech.vqvae import VQVAE

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ["f01", "m02"]  # names README's usage block uses
TINY = ["model.encoder.channels=8", "model.encoder.dilations=[1,2]",
        "model.encoder.strides=[4,5,8]", "model.quantizer.codebook_size=16",
        "model.quantizer.dim=8", "model.decoder.speaker_dim=4", "model.decoder.wavenet.layers=2",
        "model.decoder.wavenet.cycles=1", "model.decoder.wavenet.residual_channels=8",
        "model.decoder.wavenet.gate_channels=8", "model.decoder.wavenet.skip_channels=8",
        "model.decoder.mel.weight=1.0", "model.decoder.mel.channels=8",
        "model.decoder.mel.layers=2", "data.n_mels=20"]  # hop 160 samples at 16 kHz


def write_exp(exp: Path) -> Path:
    """An exp dir (checkpoints/last.pt, config.yaml) of an untrained tiny model with both heads."""
    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, SPEAKERS)
    save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg),
                     "speakers": SPEAKERS, "step": 1, "kind": "speech"},
                    exp / "checkpoints" / "last.pt")
    (exp / "config.yaml").write_text(dump_config(cfg))
    return exp


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    return write_exp(tmp_path_factory.mktemp("api") / "exp" / "mini")


@pytest.fixture(scope="module")
def model(exp) -> VQVAE:
    return speechvq.load(exp)


def test_import_speechvq_is_light_and_names_resolve_when_used():
    code = "import sys, speechvq\nprint('torch' in sys.modules, sorted(speechvq.__all__))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.splitlines()
    assert out == ["False ['__version__', 'convert', 'load']"]
    import speechvq.checkpoint
    import speechvq.convert as conv

    assert speechvq.load is speechvq.checkpoint.load_model
    assert speechvq.convert is conv and callable(speechvq.convert)
    with pytest.raises(AttributeError, match="module 'speechvq' has no attribute 'nothing'"):
        speechvq.nothing


def test_load_gives_any_tasks_model_in_eval_mode(exp, monkeypatch, tmp_path):
    from speechvq import registry

    vq = speechvq.load(exp, device="auto")
    assert isinstance(vq, VQVAE) and not vq.training and vq.speakers == SPEAKERS
    toy = registry.Task(name="toy", sections={}, setup=lambda *a, **k: None,
                        load=lambda state, path: nn.Linear(2, 2))
    monkeypatch.setitem(registry._TASKS, "toy", toy)
    save_checkpoint({"model": {}, "config": {"task": "toy"}, "kind": "toy"}, tmp_path / "toy.pt")
    net = speechvq.load(tmp_path / "toy.pt")
    assert isinstance(net, nn.Linear) and not net.training


def test_encode_takes_any_rate_numpy_or_tensor_without_gradients(model):
    wav = tone(0.5, 16000)  # (8000,)
    codes = model.encode(wav, 16000)
    assert codes.shape == (math.ceil(8000 / model.hop),) and codes.dtype == torch.long
    assert torch.equal(model.encode(torch.from_numpy(wav)), codes)  # model rate by default
    low = tone(0.5, 8000)
    codes8, z_e = model.encode(low, 8000, return_vectors=True)
    up = resample(low, 8000, 16000)  # what encode feeds the encoder
    assert torch.equal(codes8, model.encode(up)) and len(codes8) == math.ceil(len(up) / model.hop)
    assert z_e.shape == (8, len(codes8)) and not z_e.requires_grad
    batch = np.stack([wav, wav[::-1].copy()])  # (2, 8000)
    both = model.encode(batch, 16000)
    assert both.shape == (2, 50) and torch.equal(both[0], codes)
    lengths = torch.tensor([8000, 4000])
    half = model.encode(resample(batch.T, 16000, 22050).T, 22050,
                        lengths=torch.tensor([11025, 5513]))  # lengths follow the resampling
    assert half.shape == (2, 50)
    with pytest.raises(ModelError, match=r"\(T,\) or \(B, T\) waveform"):
        model.encode(np.zeros((1, 2, 3)))
    del lengths


def test_decode_takes_speaker_names_rows_or_one_per_item(model):
    assert model.speaker_rows("m02").tolist() == 1
    assert model.speaker_rows(["f01", "m02"]).tolist() == [0, 1]
    assert model.speaker_rows(np.array(["m02", "f01"])).tolist() == [1, 0]
    assert model.speaker_rows(torch.tensor([1, 0]), batch=2).tolist() == [1, 0]
    codes = torch.randint(0, 16, (2, 3), generator=torch.Generator().manual_seed(0))
    # The eager engine: what is checked here is how speakers are named, and the fused engine
    # (the default on CPU) first compiles its numba kernel, 10-15 s on a fresh checkout; that
    # the engines sample alike is tests/test_fast_generation.py's job.
    by_name = model.decode(codes, ["f01", "m02"], head="wavenet", engine="eager",
                           generator=torch.Generator().manual_seed(1))
    by_row = model.decode(codes, [0, 1], head="wavenet", engine="eager",
                          generator=torch.Generator().manual_seed(1))
    assert by_name.shape == (2, 3 * model.hop) and torch.equal(by_name, by_row)
    y = model.decode(codes[0], speaker="f01", head="mel")  # (Tc,) codes -> (T,)
    assert y.shape == (3 * model.hop,) and y.dtype == torch.float32
    assert model.resolve_head("auto") == "mel"  # on CPU, with a mel head
    with pytest.raises(ModelError, match=r"unknown speaker 'f99'.*f01, m02"):
        model.decode(codes, "f99")  # was a raw TypeError
    with pytest.raises(ModelError, match=r"speaker must be a speaker name \(e.g. 'f01'\)"):
        model.decode(codes, 1.5)
    with pytest.raises(ModelError, match="3 speakers for a batch of 2"):
        model.decode(codes, ["f01", "m02", "f01"])


def test_convert_a_file_or_a_waveform(model, exp, tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone(0.4, 22050), 22050)  # 8820 samples -> 6400 at 16 kHz
    y = speechvq.convert(model, src, speaker="m02", head="mel")
    assert isinstance(y, np.ndarray) and y.shape == (6400,) and y.dtype == np.float32
    from_array = speechvq.convert(exp, tone(0.4, 22050), 22050, speaker="m02", head="mel",
                                  device="cpu")
    assert from_array.shape == (6400,)
    with pytest.raises(ModelError, match="unknown speaker 'p225'"):
        speechvq.convert(model, src, speaker="p225")
    with pytest.raises(ModelError, match=r"one \(T,\) waveform"):
        speechvq.convert(model, np.zeros((2, 100)), speaker="m02")


def test_readme_python_api_block_runs_as_written(exp, tmp_path, monkeypatch):
    """README's usage block, unchanged, in a folder holding exp/mini and a.wav."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "mini").symlink_to(exp)
    sf.write("a.wav", tone(0.3, 22050), 22050)  # 6615 samples -> 4800 at 16 kHz -> 30 codes
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["codes"].shape == (30,) and ns["y"].shape == (4800,)
    assert ns["batch"].shape == (2, 30) and ns["wavs"].shape == (2, 4800)
    assert sf.info("a_f01.wav").samplerate == 16000
