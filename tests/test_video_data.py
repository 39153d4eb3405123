"""Video data: the built-in moving glyphs, Moving MNIST's .npy (a small fake file in its layout),
folders of numbered frames, the clip dump and the training windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from speechvq.cli import main
from speechvq.data.video.batches import VideoBatches, validation_clips
from speechvq.data.video.builtin import prepare_builtin_video, render_clips
from speechvq.data.video.dump import VideoDump, write_video_dump
from speechvq.data.video.sources import (parse_clip_range, prepare_frame_folders,
                                         prepare_moving_mnist)
from speechvq.errors import DataError


def test_moving_glyphs_are_deterministic_cached_two_bouncing_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "cache"))
    out = prepare_builtin_video(tmp_path / "a", size="tiny", seed=3)
    train, test = VideoDump.open(out["train"]), VideoDump.open(out["test"])
    assert (len(train), len(test)) == (32, 8)
    assert train.clips.shape[1:] == (20, 64, 64, 1) and train.clips.dtype == np.uint8
    np.testing.assert_array_equal(render_clips(2, 3, 1), test.clips[:2])  # rendered again
    assert not np.array_equal(train.clips[:2], test.clips[:2])
    clip = train.clips.astype(np.float64)
    assert clip.max() == 255 and 0.02 < (clip > 0).mean() < 0.4  # two digits on black
    soft = ((clip > 0) & (clip < 200)).sum() / (clip > 0).sum()
    assert soft > 0.2, "the blur gives soft edges"
    # they move: consecutive frames differ, and the centre of mass travels
    assert (np.abs(np.diff(clip, axis=1)).mean(axis=(2, 3, 4)) > 1).all()
    cached = tmp_path / "cache" / "video" / "v1-tiny-seed3" / "train" / "clips.npy"
    assert cached.stat().st_ino == (out["train"] / "clips.npy").stat().st_ino  # linked
    assert json.loads((out["train"] / "info.json").read_text())["seed"] == 3
    with pytest.raises(DataError, match="already holds a video dump made from"):
        prepare_builtin_video(tmp_path / "a", size="tiny", seed=4)


def test_moving_mnist_npy_time_first_is_cut_into_clip_ranges(tmp_path):
    seq = np.zeros((20, 6, 64, 64), np.uint8)  # the published layout: frames, clips, H, W
    for clip in range(6):
        seq[:, clip] = np.arange(20, dtype=np.uint8)[:, None, None] + 10 * clip
    np.save(tmp_path / "mnist_test_seq.npy", seq)
    out = prepare_moving_mnist(tmp_path / "mnist_test_seq.npy", tmp_path / "d",
                               [parse_clip_range("train=0-3"), parse_clip_range("test=4-5")])
    train, test = VideoDump.open(out["train"]), VideoDump.open(out["test"])
    assert train.clips.shape == (4, 20, 64, 64, 1) and len(test) == 2
    assert test.clips[1, 7, 0, 0, 0] == 57 and test.names == ("mmnist_00004", "mmnist_00005")
    with pytest.raises(DataError, match="goes past the 6 clips"):
        prepare_moving_mnist(tmp_path / "mnist_test_seq.npy", tmp_path / "e",
                             [parse_clip_range("test=4-6")])
    for bad in ("test=5-4", "test", "t est=1-2"):
        with pytest.raises(DataError, match="NAME=START-END"):
            parse_clip_range(bad)
    np.save(tmp_path / "flat.npy", np.zeros((20, 64), np.uint8))
    with pytest.raises(DataError, match="Moving MNIST is uint8 shaped"):
        prepare_moving_mnist(tmp_path / "flat.npy", tmp_path / "f")


def test_frame_folders_are_read_in_number_order_and_cut_into_clips(tmp_path):
    src = tmp_path / "src"
    for clip, n in (("a", 9), ("b", 3)):
        (src / clip).mkdir(parents=True)
        for k in range(1, n + 1):  # 2.png before 10.png: by number, not by name
            Image.fromarray(np.full((8, 12), 20 * k, np.uint8)).save(src / clip / f"{k}.png")
    with pytest.warns(UserWarning, match="1 clip folders with fewer than 4 frames"):
        out = prepare_frame_folders(src, tmp_path / "d", frames=4, image_size=8)
    d = VideoDump.open(out["train"])
    assert d.names == ("a_0", "a_1") and d.clips.shape == (2, 4, 8, 8, 1)
    assert d.clips[:, :, 0, 0, 0].tolist() == [[20, 40, 60, 80], [100, 120, 140, 160]]
    (src / "a" / "notes.png").write_bytes(b"x")
    with pytest.raises(DataError, match="has no number in its name"):
        prepare_frame_folders(src, tmp_path / "e", frames=4, image_size=8)
    with pytest.raises(DataError, match="does not exist"):
        prepare_frame_folders(tmp_path / "nowhere", tmp_path / "e")


def test_dump_checks_and_windows_are_a_pure_function_of_seed_and_step(tmp_path):
    clips = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10, 1, 1, 1).repeat(4, 2).repeat(4, 3)
    d = write_video_dump(tmp_path / "d", clips, [f"c{i}" for i in range(6)], {})
    b, again = VideoBatches(d, 4, 7, window=4), VideoBatches(d, 4, 7, window=4)
    for step in (0, 3, 3, 11):
        assert b[step]["clip"].tolist() == again[step]["clip"].tolist()
    x = b[2]["clip"]  # (B, C, T, H, W)
    assert x.shape == (4, 1, 4, 4, 4) and x.dtype.is_floating_point is False
    assert (np.diff(x[:, 0, :, 0, 0].numpy().astype(int), axis=1) == 1).all()  # consecutive
    assert sorted({int(v) // 10 for v in x[:, 0, 0, 0, 0]}) == sorted(b.indices(2).tolist())
    assert [len(v["clip"]) for v in validation_clips(d, 4, 5)] == [4, 1]
    (d.path / "clips.txt").write_text("c0\n")
    with pytest.raises(DataError, match="names 1 clips but clips.npy holds 6"):
        VideoDump.open(d.path)


def test_prepare_video_cli_builtin_and_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "cache"))
    assert main(["prepare-video", "builtin", str(tmp_path / "d"), "--size", "tiny"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"train\t{tmp_path / 'd' / 'train'}"
    assert main(["prepare-video", "moving-mnist", str(tmp_path / "no.npy"),
                 str(tmp_path / "m")]) == 2
    assert "no.npy' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
