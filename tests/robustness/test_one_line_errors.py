"""Every user-reachable failure is one line and exit status 2: checkpoints cut short at any
size or holding NaN weights, outputs of the wrong kind, text that is not UTF-8, ids too long or
invisible, absurd numbers, argparse's usage errors and a YAML alias bomb (the CLI in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, one_line_error
from speechvq.checkpoint import save_checkpoint
from speechvq.config import config_to_dict, load_config
from speechvq.models.speech.vqvae import VQVAE

TINY = ["model.encoder.channels=8", "model.encoder.dilations=[1]", "model.encoder.strides=[4,5,8]",
        "model.quantizer.codebook_size=8", "model.quantizer.dim=4", "model.decoder.speaker_dim=4",
        "model.decoder.wavenet.layers=1", "model.decoder.wavenet.cycles=1",
        "model.decoder.wavenet.residual_channels=4", "model.decoder.wavenet.gate_channels=4",
        "model.decoder.wavenet.skip_channels=4", "data.n_mels=8"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny data dir and an untrained tiny model's checkpoint (its bytes too)."""
    from conftest import write_tiny_data_dir
    root = tmp_path_factory.mktemp("oneline")
    data = write_tiny_data_dir(root / "data")
    cfg = load_config(None, TINY)
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, ["spkA", "spkB"])
    state = {"model": model.state_dict(), "config": config_to_dict(cfg),
             "speakers": ["spkA", "spkB"], "step": 1, "kind": "speech"}
    ckpt = save_checkpoint(state, root / "exp" / "checkpoints" / "last.pt")
    state["model"] = {k: v.clone() for k, v in state["model"].items()}
    next(v for v in state["model"].values() if v.is_floating_point()).fill_(float("nan"))
    nan = save_checkpoint(state, root / "nan.pt")
    return {"root": root, "data": data, "exp": root / "exp", "ckpt": ckpt, "nan": nan}


class TestCheckpoints:
    @FUZZ
    @given(st.floats(0.0, 0.999))
    def test_truncated_at_any_size(self, world, capsys, fraction):
        data = world["ckpt"].read_bytes()
        cut = world["root"] / "cut.pt"
        cut.write_bytes(data[:int(len(data) * fraction)])
        one_line_error(capsys, ["encode", "--model", str(cut), "--data", str(world["data"]),
                                "--out", str(world["root"] / "u.txt")], "checkpoint")

    def test_nan_weights_refused_at_load(self, world, capsys):
        for argv in (["encode", "--data", str(world["data"]), "--out",
                      str(world["root"] / "u.txt")],
                     ["convert", "--src", str(next((world["data"] / "wav").iterdir())),
                      "--speaker", "spkA", "-o", str(world["root"] / "o.wav")]):
            one_line_error(capsys, [*argv, "--model", str(world["nan"])], "NaN")
        assert not (world["root"] / "u.txt").exists() and not (world["root"] / "o.wav").exists()


class TestOutputs:
    def test_out_is_a_folder(self, world, capsys):
        (world["root"] / "outdir").mkdir(exist_ok=True)
        one_line_error(capsys, ["encode", "--model", str(world["exp"]), "--data",
                                str(world["data"]), "--out", str(world["root"] / "outdir")],
                       "is a folder")

    def test_exp_is_a_file(self, world, capsys):
        (world["root"] / "expfile").write_text("x")
        one_line_error(capsys, ["evaluate", "units", "--model", str(world["exp"]), "--data",
                                str(world["data"]), "--exp", str(world["root"] / "expfile")],
                       "is a file")
        one_line_error(capsys, ["train", "--data", str(world["data"]), "--exp",
                                str(world["root"] / "expfile"), *TINY], "is a file")


class TestText:
    def test_non_utf8_config(self, world, capsys):
        conf = world["root"] / "bad.yaml"
        conf.write_bytes(b"train:\n  lr: 1e-4 # caf\xe9\n")
        one_line_error(capsys, ["config", "--config", str(conf)], "bad.yaml:2")

    def test_non_utf8_transcript_and_units(self, world, capsys, tmp_path):
        import shutil
        data = Path(shutil.copytree(world["data"], tmp_path / "d"))
        (data / "text").write_bytes((data / "text").read_bytes().replace(b"TONE 1", b"T\xf6NE 1"))
        one_line_error(capsys, ["validate", str(data)], "UTF-8")
        units = tmp_path / "u.txt"
        units.write_bytes(b"spkA_000 1 2\nspkA_001 \xff 3\n")
        one_line_error(capsys, ["evaluate", "units", "--units", str(units), "--frame-rate", "100",
                                "--alignments", str(data), "--exp", str(tmp_path / "e")],
                       "UTF-8")

    @pytest.mark.parametrize("bad", ["x" * 300, "spkA_\u202e000", "spkA_\u200b000"],
                             ids=["300_chars", "U+202E", "U+200B"])
    def test_bad_ids_refused_before_work(self, world, capsys, tmp_path, bad):
        import shutil
        data = Path(shutil.copytree(world["data"], tmp_path / "d"))
        for name in ("wav.scp", "utt2spk", "text", "spk2utt"):
            p = data / name
            p.write_text(p.read_text().replace("spkA_000", bad))
        one_line_error(capsys, ["dump", str(data), str(tmp_path / "dump")], "not a valid id")
        assert not (tmp_path / "dump").exists()


class TestNumbers:
    @pytest.mark.parametrize("argv, match", [
        (["dump", "D", "O", "--sample-rate", "1000000000"], "--sample-rate"),
        (["config", "data.sample_rate=1000000000"], "data.sample_rate"),
        (["config", "model.quantizer.codebook_size=100000000000"], "codebook_size"),
        (["config", "model.quantizer.codebook_size=1000000", "model.quantizer.dim=8192"], "GiB"),
        (["config", "train.batch_size=4096", "data.window=1000000"], "GiB"),
        (["config", "train.lr=nan"], "finite"),
        (["convert", "--temperature", "inf"], "--temperature"),
        (["evaluate", "units", "--frame-rate", "-1"], "--frame-rate"),
        (["encode", "--batch-size", "0"], "--batch-size"),
    ])
    def test_refused_before_any_data_is_read(self, capsys, argv, match):
        one_line_error(capsys, argv, match)


class TestUsage:
    @pytest.mark.parametrize("argv", [
        ["encode"], ["encode", "--model"], ["nope"], ["dump"], ["evaluate"],
        ["evaluate", "units", "--batch-size", "x"], ["train", "--bogus"], ["convert", "-o"],
        ["prepare", "timit"], ["report"],
    ])
    def test_usage_errors_are_one_line(self, capsys, argv):
        line = one_line_error(capsys, argv)
        assert "--help" in line


class TestYamlBomb:
    def test_alias_bomb_inside_a_valid_key(self, capsys, tmp_path):
        lines, prev = ["a: &a [1,1,1,1,1,1,1,1,1]"], "a"
        for i in range(8):
            lines.append(f"b{i}: &b{i} [{','.join(['*' + prev] * 9)}]")
            prev = f"b{i}"
        conf = tmp_path / "bomb.yaml"
        conf.write_text("\n".join(lines) + f"\ntrain:\n  lr: *{prev}\n")
        assert len(conf.read_bytes()) < 500
        one_line_error(capsys, ["config", "--config", str(conf)], "expands to more than")

    def test_recursive_alias_is_shown_short(self, capsys):
        line = one_line_error(capsys, ["config", "train.lr=&a [*a]"], "train.lr")
        assert len(line) < 400
