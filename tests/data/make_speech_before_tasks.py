"""How tests/data/speech_before_tasks.pt was made: with the speechvq of commit 2a0d4b7 (before
tasks), from a checkout of it at /work/baseline: `python tests/data/make_speech_before_tasks.py`,
then copy /tmp/oldckpt/exp/checkpoints/last.pt. Kept for the record; the tests do not run it.
"""
import sys, json
sys.path.insert(0, "/work/baseline"); sys.path.insert(0, "/work/baseline/tests")
import numpy as np, torch
from conftest import write_tiny_data_dir
from pathlib import Path
from speechvq.data.dump import dump_data_dir
from speechvq.config import load_config
from speechvq.train import train_speech
from speechvq.models.vqvae import load_vqvae
root = Path("/tmp/oldckpt")
d = write_tiny_data_dir(root / "data")
dump = dump_data_dir(d, root / "dump", progress=False)
TINY = ["model.encoder.input=logmel", "model.encoder.channels=8", "model.encoder.dilations=[1]",
        "model.quantizer.codebook_size=8", "model.quantizer.dim=4", "model.decoder.speaker_dim=2",
        "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
        "model.decoder.wavenet.residual_channels=2", "model.decoder.wavenet.gate_channels=4",
        "model.decoder.wavenet.skip_channels=2", "model.decoder.wavenet.upsample=repeat",
        "model.decoder.mel.weight=1", "model.decoder.mel.channels=4", "model.decoder.mel.layers=1",
        "data.window=3200", "train.batch_size=2", "train.device=cpu", "data.num_workers=0",
        "eval.temperature=0.9", "train.max_steps=2", "train.checkpoint_every=2"]
cfg = load_config(None, TINY)
last = train_speech(cfg, dump, root / "exp", progress=False)
vq = load_vqvae(root / "exp")
g = torch.Generator().manual_seed(0)
wav = torch.randn(1, 3200, generator=g) * 0.1
with torch.no_grad():
    codes = vq.encode(wav)
print(json.dumps({"codes": codes.tolist(), "speakers": vq.speakers}))
