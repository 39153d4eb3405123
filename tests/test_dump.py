"""The dump (speechvq.data.speech.dump, dumpfile) and its batches (speechvq.data.speech.batches)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import speechvq.data.speech.dump as dump_mod
from speechvq.audio import load_audio
from speechvq.data.speech.dump import SpeechDump, dump_data_dir
from speechvq.data.speech.kaldi import DataDir, frame_labels
from speechvq.data.speech.batches import SpeechBatches, WindowSampler, window_phone_labels
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError, OutputError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
Q = 1.0 / 32768  # one int16 step of the dump


def _tone(seconds: float, sr: int, f0: float = 150.0, amp: float = 0.3, seed: int = 0):
    t = np.arange(int(round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
    x = amp * x / np.abs(x).max() + 0.005 * np.random.default_rng(seed).standard_normal(t.size)
    return x.astype(np.float32)


def _write_dir(root: Path, utts: dict[str, tuple[str, np.ndarray | bytes, int]], **extra) -> Path:
    """A Kaldi dir of `utts` {utt: (speaker, samples or raw bytes, rate)}; extra DataDir fields."""
    (root / "wav").mkdir(parents=True, exist_ok=True)
    scp = {}
    for utt, (_, x, sr) in utts.items():
        path = root / "wav" / f"{utt}.wav"
        if isinstance(x, bytes):
            path.write_bytes(x)
        else:
            sf.write(path, x, sr, subtype="PCM_16")
        scp[utt] = str(path)
    DataDir(path=root, wav_scp=scp, utt2spk={u: s for u, (s, _, _) in utts.items()},
            text={u: f"SAY {u}" for u in utts}, **extra).save(root)
    return root


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# ------------------------------------------------------------------------------------ the dump


def test_round_trip(tiny_data_dir, tmp_path):
    out = dump_data_dir(tiny_data_dir, tmp_path / "dump", progress=False)
    assert out == tmp_path / "dump" and not (tmp_path / "dump.tmp").exists()
    d = SpeechDump.open(out)
    assert d.utts == ["spkA_000", "spkA_001", "spkB_000", "spkB_001"]
    assert d.speakers == ["spkA", "spkB"] and d.speaker_ids.tolist() == [0, 0, 1, 1]
    assert (out / "speakers.txt").read_text() == "spkA\nspkB\n"
    assert d.lengths.tolist() == [8000] * 4 and d.offsets.tolist() == [0, 8000, 16000, 24000]
    assert d.meta["n_samples"] == 32000 and d.meta["sample_rate"] == 16000
    assert not d.has_alignments and d.segments("spkA_000").shape == (0, 3)
    assert d.text["spkB_001"] == "TONE 1" and d.speaker("spkB_000") == "spkB"
    assert d.audio.dtype == np.int16 and isinstance(d.audio, np.memmap)
    for utt in d.utts:
        ref, _ = load_audio(tiny_data_dir / "wav" / f"{utt}.wav")
        np.testing.assert_allclose(d.waveform(utt), ref, rtol=0, atol=0.5 * Q + 1e-7)
        np.testing.assert_array_equal(d.audio[d.offsets[d.index(utt)]:][:8000],
                                      np.clip(np.rint(ref.astype(np.float64) * 32768), -32768, 32767).astype(np.int16))
    assert len(pickle.dumps(d)) < d.audio.nbytes  # workers reopen the memmap, no copy


def test_resample_and_scale_down(tmp_path):
    loud = _tone(0.4, 16000, amp=0.5) * 3.0  # peak 1.5: scaled down, shape kept
    srcs = {"a_22k": ("a", _tone(0.6, 22050), 22050), "b_44k": ("b", _tone(0.3, 44100, 220), 44100)}
    data = _write_dir(tmp_path / "data", srcs)
    sf.write(data / "wav" / "b_loud.wav", loud, 16000, subtype="FLOAT")
    DataDir(path=data, wav_scp={**DataDir.load(data).wav_scp,
                                "b_loud": str(data / "wav" / "b_loud.wav")},
            utt2spk={"a_22k": "a", "b_44k": "b", "b_loud": "b"}).save(data)
    (data / "text").unlink()
    d = SpeechDump(dump_data_dir(data, tmp_path / "dump", progress=False))
    for utt, seconds in (("a_22k", 0.6), ("b_44k", 0.3)):
        ref, sr = load_audio(data / "wav" / f"{utt}.wav", 16000)
        assert sr == 16000 and d.lengths[d.index(utt)] == round(seconds * 16000) == ref.size
        np.testing.assert_allclose(d.waveform(utt), ref, rtol=0, atol=0.5 * Q + 1e-6)
    np.testing.assert_allclose(d.waveform("b_loud"), loud / np.abs(loud).max() * 32767 / 32768,
                               atol=Q)
    assert d.text is None


def test_normalize(tiny_data_dir, tmp_path):
    d = SpeechDump(dump_data_dir(tiny_data_dir, tmp_path / "dump", normalize=True, progress=False))
    assert d.meta["normalize"] is True
    for utt in d.utts:
        ref, _ = load_audio(tiny_data_dir / "wav" / f"{utt}.wav")
        np.testing.assert_allclose(d.waveform(utt), ref / np.abs(ref).max() * 32767 / 32768,
                                   atol=0.5 * Q + 1e-6)
        assert np.abs(d.audio[d.offsets[d.index(utt)]:][:8000]).max() == 32767


def _aligned_dir(root: Path) -> Path:
    """One 2 s recording, two segments of 0.75 s (12000 samples), a hand-made CTM."""
    x = _tone(2.0, 16000)
    root.mkdir(parents=True)
    sf.write(root / "rec.wav", x, 16000, subtype="PCM_16")
    ctm = {"spkC_a": [(0.0, 0.1, "SIL"), (0.1, 0.3, "AA"), (0.4, 0.25, "B")],  # gap 0.65-0.75
           "spkC_b": [(0.0, 0.5, "AA"), (0.5, 0.265, "SIL")]}  # 15 ms past the end: clipped
    DataDir(path=root, wav_scp={"rec0": str(root / "rec.wav")},
            utt2spk={"spkC_a": "spkC", "spkC_b": "spkC"},
            segments={"spkC_a": ("rec0", 0.25, 1.0), "spkC_b": ("rec0", 1.0, 1.75)},
            ctm=ctm, phones=["SIL", "AA", "B"]).save(root)
    return root


EXPECT_A = [0] * 10 + [1] * 30 + [2] * 25 + [-1] * 38  # 103 frames of hop 160 from sample 0


def test_segments_and_phones(tmp_path):
    data = _aligned_dir(tmp_path / "data")
    d = SpeechDump(dump_data_dir(data, tmp_path / "dump", progress=False))
    x, _ = load_audio(data / "rec.wav")
    np.testing.assert_allclose(d.waveform("spkC_a"), x[4000:16000], atol=0.5 * Q + 1e-7)
    np.testing.assert_allclose(d.waveform("spkC_b"), x[16000:28000], atol=0.5 * Q + 1e-7)
    assert d.phones == ["SIL", "AA", "B"] and d.has_alignments
    assert d.segments("spkC_a").tolist() == [[0, 1600, 0], [1600, 6400, 1], [6400, 10400, 2]]
    assert d.segments("spkC_b").tolist() == [[0, 8000, 1], [8000, 12000, 0]]
    assert (tmp_path / "dump" / "phones.txt").read_text() == "SIL 0\nAA 1\nB 2\n"

    # the window holds the whole utterance (start 0, zero-padded past 12000 samples)
    batches = SpeechBatches(d, WindowSampler(d.lengths, 16384, 8, seed=3), hop=160)
    b = batches[0]
    assert b["phones"].shape == (8, 103) and b["start"].tolist() == [0] * 8
    for k, i in enumerate(b["utt"].tolist()):
        assert b["length"][k] == 12000 and b["wav"][k, 12000:].abs().sum() == 0
        ref = EXPECT_A if d.utts[i] == "spkC_a" else [1] * 50 + [0] * 25 + [-1] * 28
        assert b["phones"][k].tolist() == ref
    # the same convention as kaldi.frame_labels (seconds), with -1 for unlabelled/past the end
    names = frame_labels([(0.0, 0.1, "SIL"), (0.1, 0.3, "AA"), (0.4, 0.25, "B")], 103, 0.01, "-")
    assert [d.phones.index(p) if p != "-" else -1 for p in names] == EXPECT_A
    # a window starting inside the utterance
    got = window_phone_labels(d.segments("spkC_b"), 7000, 40, 160, 12000)
    assert got.tolist() == [1] * 6 + [0] * 25 + [-1] * 9


def test_ctm_phone_missing_from_phones_txt(tmp_path):
    data = _aligned_dir(tmp_path / "data")
    (data / "phones.txt").write_text("SIL 0\nAA 1\n")
    with pytest.raises(DataError, match="'B'"):
        dump_data_dir(data, tmp_path / "dump", progress=False)


def _with_bad_files(root: Path) -> Path:
    rng = np.random.default_rng(1)
    utts = {"s1_good": ("s1", _tone(0.3, 16000), 16000),
            "s1_zero": ("s1", np.zeros(4000, np.float32), 16000),
            "s2_corrupt": ("s2", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", 16000),
            "s2_good": ("s2", _tone(0.3, 16000, 300), 16000),
            "s2_quiet": ("s2", 10 / 32768 * np.sign(rng.standard_normal(4000)), 16000)}
    return _write_dir(root, utts)


def test_nj2_same_bytes_as_nj1(tmp_path, monkeypatch):
    data = _with_bad_files(tmp_path / "data")  # bad files are judged in the workers too
    monkeypatch.setattr(dump_mod, "PART_FILES", 2)  # three parts
    a = dump_data_dir(data, tmp_path / "a", nj=1, skip_bad=True, progress=False)
    b = dump_data_dir(data, tmp_path / "b", nj=2, skip_bad=True, progress=False)
    assert _files(a) == _files(b) and "skipped.txt" in _files(b)


def test_resume_after_kill(tiny_data_dir, tmp_path, monkeypatch):
    clean = dump_data_dir(tiny_data_dir, tmp_path / "clean", progress=False)
    monkeypatch.setattr(dump_mod, "PART_FILES", 1)
    real, calls = dump_mod._decode_file, []

    def dies_after_two(item):
        calls.append(item[0])
        if len(calls) > 2:
            raise RuntimeError("killed")  # as if killed while decoding the third file
        return real(item)

    monkeypatch.setattr(dump_mod, "_decode_file", dies_after_two)
    out = tmp_path / "dump"
    with pytest.raises(RuntimeError, match="killed"):
        dump_data_dir(tiny_data_dir, out, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "dump.tmp" / "parts").iterdir()) == [
        "part_00000.npy", "part_00000.tsv", "part_00001.npy", "part_00001.tsv"]
    calls.clear()
    monkeypatch.setattr(dump_mod, "_decode_file", lambda item: calls.append(item[0]) or real(item))
    dump_data_dir(tiny_data_dir, out, progress=False)
    assert [Path(c).name for c in calls] == ["spkB_000.wav", "spkB_001.wav"]  # only what was left
    assert _files(out) == _files(clean) and not (tmp_path / "dump.tmp").exists()
    # killed after the last write, before the rename: the rerun only renames
    out.rename(tmp_path / "dump.tmp")
    calls.clear()
    assert dump_data_dir(tiny_data_dir, out, progress=False) == out and calls == []
    assert _files(out) == _files(clean) and not (tmp_path / "dump.tmp").exists()


@pytest.mark.parametrize("bad", ["s1_zero", "s2_corrupt", "s2_quiet"])
def test_bad_file_aborts(tmp_path, bad):
    data = _with_bad_files(tmp_path / "data")
    keep = {"s1_good", "s2_good", bad}
    d = DataDir.load(data)
    DataDir(path=data, wav_scp={u: p for u, p in d.wav_scp.items() if u in keep},
            utt2spk={u: s for u, s in d.utt2spk.items() if u in keep}).save(data)
    (data / "text").unlink()
    reason = "cannot be read" if bad == "s2_corrupt" else "silent"
    with pytest.raises(DataError, match=rf"{bad}\.wav.*utterance {bad}.*{reason}"):
        dump_data_dir(data, tmp_path / "dump", progress=False)
    assert not (tmp_path / "dump").exists()


def test_skip_bad(tmp_path):
    data = _with_bad_files(tmp_path / "data")
    d = SpeechDump(dump_data_dir(data, tmp_path / "dump", skip_bad=True, progress=False))
    assert d.utts == ["s1_good", "s2_good"] and d.meta["n_skipped"] == 3
    lines = (tmp_path / "dump" / "skipped.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["s1_zero", "s2_corrupt", "s2_quiet"]
    assert "silent (peak -inf dBFS" in lines[0] and "cannot be read" in lines[1]
    quiet = data / "wav" / "s2_quiet.wav"
    assert lines[2] == f"s2_quiet {quiet} silent (peak -70.3 dBFS, below -60 dBFS)"


def test_rerun_skips_complete_and_refuses_different(tiny_data_dir, tmp_path, capsys):
    out = dump_data_dir(tiny_data_dir, tmp_path / "dump", progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    dump_data_dir(tiny_data_dir, out, progress=True)
    assert "is complete (4 utterances); skipping" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    with pytest.raises(DataError, match="made differently.*sample_rate 16000 there, 8000 asked.*remove"):
        dump_data_dir(tiny_data_dir, out, sample_rate=8000, progress=False)
    with pytest.raises(OutputError, match="is also an input.*nothing was changed"):
        dump_data_dir(tiny_data_dir, tiny_data_dir, progress=False)


def test_reader_refuses_kaldi_dir_and_broken_dumps(tiny_data_dir, tmp_path):
    with pytest.raises(DataError, match=r"this is a Kaldi data dir, not a dump; run `speechvq "
                                        r"dump DATA OUT` first"):
        SpeechDump.open(tiny_data_dir)
    with pytest.raises(DataError, match="no dump at"):
        SpeechDump.open(tmp_path / "nothing")
    out = dump_data_dir(tiny_data_dir, tmp_path / "dump", progress=False)
    meta = json.loads((out / "dump.json").read_text())
    (out / "dump.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(DataError, match="format version 99"):
        SpeechDump.open(out)
    (out / "dump.json").write_text(json.dumps(meta))
    np.save(out / "audio.npy", np.zeros(31999, np.int16))
    with pytest.raises(DataError, match="31999 samples but index.tsv lengths sum to 32000"):
        SpeechDump.open(out)


# ---------------------------------------------------------------------------------- the batches


def test_sampler_is_a_function_of_seed_and_step():
    lengths = [5000, 20000, 800, 12000]
    s = WindowSampler(lengths, 4096, 8, seed=7)
    assert s.batch(5) == WindowSampler(lengths, 4096, 8, seed=7).batch(5) == s.batch(5)
    assert s.batch(5) != s.batch(6) and s.batch(5) != WindowSampler(lengths, 4096, 8, 8).batch(5)
    it = iter(s)
    first = [next(it) for _ in range(3)]
    assert s.state_dict() == {"seed": 7, "step": 3}
    r = WindowSampler(lengths, 4096, 8, seed=0)
    r.load_state_dict({"seed": 7, "step": 1})
    assert next(iter(r)) == first[1]
    for i, start in s.global_batch(11):
        assert 0 <= start <= max(0, lengths[i] - 4096)
        if lengths[i] < 4096:
            assert start == 0


def test_rank_slices_union_is_the_single_process_batch():
    lengths = np.arange(1, 40) * 1000
    whole = WindowSampler(lengths, 16384, 12, seed=1).batch(42)
    parts = [WindowSampler(lengths, 16384, 12, seed=1, rank=r, world_size=4).batch(42)
             for r in range(4)]
    assert [len(p) for p in parts] == [3] * 4 and sum(parts, []) == whole


def test_sampler_is_proportional_to_length():
    s = WindowSampler([1000, 3000, 6000], 500, 30000, seed=0)
    counts = np.bincount([i for i, _ in s.batch(0)], minlength=3) / 30000
    np.testing.assert_allclose(counts, [0.1, 0.3, 0.6], atol=0.015)
    starts = np.array([st for i, st in s.batch(0) if i == 2])
    assert starts.min() < 100 and starts.max() > 5400 and starts.max() <= 5500


def test_batches_through_dataloader_and_whole_utterances(tiny_data_dir, tmp_path):
    d = SpeechDump(dump_data_dir(tiny_data_dir, tmp_path / "dump", progress=False))
    batches = SpeechBatches(d, WindowSampler(d.lengths, 4000, 4, seed=2), hop=64)
    b = batches[9]
    assert b["wav"].shape == (4, 4000) and b["wav"].dtype == torch.float32
    assert "phones" not in b and b["length"].tolist() == [4000] * 4
    for k in range(4):
        i, s = int(b["utt"][k]), int(b["start"][k])
        np.testing.assert_array_equal(b["wav"][k].numpy(), d.waveform(i)[s:s + 4000])
        assert b["speaker"][k] == d.speaker_ids[i]
    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(7, 10),
                                         num_workers=1)
    got = list(loader)
    assert all(torch.equal(g["wav"], batches[s]["wav"]) for g, s in zip(got, range(7, 10)))
    out = list(Utterances(d.path, d.sample_rate).batches(3))  # whole utterances, padded
    assert [u for u, _, _ in out] == [d.utts[:3], d.utts[3:]]
    utts, wav, lengths = out[0]
    assert wav.shape == (3, 8000) and lengths.tolist() == [8000] * 3
    np.testing.assert_array_equal(wav[1].numpy(), d.waveform(utts[1]))


# -------------------------------------------------------------------------- real recordings


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real recordings absent ({REAL})")
@pytest.mark.parametrize("corpus", ["vctk", "cmu_arctic"])
def test_real_recordings(tmp_path, corpus):
    from speechvq.data.speech.corpora import prepare_folder
    data = prepare_folder(REAL / corpus, tmp_path / "data", progress=False)["all"]
    d = SpeechDump(dump_data_dir(data, tmp_path / "dump", progress=False))
    wavs = sorted((REAL / corpus).glob("*/*.wav"))
    assert len(d) == len(wavs) and d.speakers == sorted({w.parent.name for w in wavs})
    assert d.meta["n_samples"] == sum(sf.info(w).frames for w in wavs)  # all 16 kHz
    ref, _ = load_audio(wavs[-1])
    np.testing.assert_allclose(d.waveform(len(d) - 1), ref, atol=0.5 * Q + 1e-7)
    assert d.speaker(len(d) - 1) == wavs[-1].parent.name
