"""Every reader of user files, fuzzed: each generated input either parses or raises a
`SpeechVQError` (a one-line message), never another exception. Inputs are mutations of a valid
file (cut short, bytes replaced or inserted, lines dropped or repeated) and arbitrary bytes."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import FUZZ, inputs, mutated
from speechvq.audio import audio_info, load_audio
from speechvq.config import load_config
from speechvq.data.codes import read_units
from speechvq.data.speech.alignments import (read_ctm, read_phones_txt, read_textgrid_phones,
                                             timit_phn_to_segments)
from speechvq.data.speech.kaldi import DataDir
from speechvq.errors import SpeechVQError

WAV_SCP = b"spkA_000 /nonexistent/a.wav\nspkA_001 /nonexistent/b.wav\n"
UTT2SPK = b"spkA_000 spkA\nspkA_001 spkA\n"
SEGMENTS = b"spkA_000 rec1 0.00 1.50\nspkA_001 rec1 1.50 3.25\n"
CTM = b"u1 1 0.000 0.100 SIL\nu1 1 0.100 0.050 AH\nu1 1 0.150 0.2 B 0.9\nu2 1 0 1 SIL\n"
PHN = b"0 800 h#\n800 1600 sh\n1600 2400 iy\n2400 2800 q\n2800 4800 h#\n"
PHONES = b"SIL 0\nAH 1\nB 2\n"
UNITS = b"u1 1 2 3 3 4\nu2 0 0 7\nu3|5 6 7\n"
CONFIG = (b"task: speech\ndata:\n  sample_rate: 16000\n  window: 4000\nmodel:\n  encoder:\n"
          b"    strides: [4, 5, 8]\n    channels: 8\n  quantizer: {codebook_size: 16, dim: 8}\n"
          b"train:\n  lr: 2.0e-4\n  betas: [0.9, 0.999]\nseed: 7\n")
TEXTGRID = b'''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 0.5
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "phones"
        xmin = 0
        xmax = 0.5
        intervals: size = 3
        intervals [1]:
            xmin = 0
            xmax = 0.1
            text = ""
        intervals [2]:
            xmin = 0.1
            xmax = 0.3
            text = "AH0"
        intervals [3]:
            xmin = 0.3
            xmax = 0.5
            text = "sil"
'''


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(800) / 5)).astype(np.float32), 16000, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


WAV = _wav_bytes()


def parses_or_refuses(read, data: bytes, name: str):
    """Write `data` to a fresh file called `name` and read it: a result or a SpeechVQError."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping counts are logged as warnings
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return read(path)
        except SpeechVQError as e:
            assert str(e).strip() and "Traceback" not in str(e)
            return e


class TestKaldiTables:
    """wav.scp, utt2spk and segments, read as a data dir's files (each file's own checks)."""

    @staticmethod
    def read_dir(files: dict[str, bytes]):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, data in files.items():
                (root / name).write_bytes(data)
            try:
                return DataDir.load(root, validate=False)
            except SpeechVQError as e:
                return e

    @FUZZ
    @given(inputs(WAV_SCP))
    def test_wav_scp(self, data):
        self.read_dir({"wav.scp": data, "utt2spk": UTT2SPK})

    @FUZZ
    @given(inputs(UTT2SPK))
    def test_utt2spk(self, data):
        self.read_dir({"wav.scp": WAV_SCP, "utt2spk": data})

    @FUZZ
    @given(inputs(SEGMENTS))
    def test_segments(self, data):
        self.read_dir({"wav.scp": b"rec1 /nonexistent/r.wav\n", "utt2spk": UTT2SPK,
                       "segments": data})


class TestAlignments:
    @FUZZ
    @given(inputs(CTM))
    def test_ctm(self, data):
        out = parses_or_refuses(read_ctm, data, "phones.ctm")
        if isinstance(out, dict):  # what parses is well-formed: sorted, not overlapping
            for segs in out.values():
                assert all(d >= 0 for _, d, _ in segs)
                assert all(b[0] >= a[0] + a[1] - 1e-6 for a, b in zip(segs, segs[1:]))

    @FUZZ
    @given(inputs(PHN), st.sampled_from([True, False]))
    def test_timit_phn(self, data, fold):
        parses_or_refuses(lambda p: timit_phn_to_segments(p, fold=fold), data, "SA1.PHN")

    @FUZZ
    @given(inputs(TEXTGRID))
    def test_textgrid(self, data):
        out = parses_or_refuses(read_textgrid_phones, data, "u.TextGrid")
        if isinstance(out, list):
            assert all(b[0] >= a[0] + a[1] - 1e-6 for a, b in zip(out, out[1:]))

    @FUZZ
    @given(inputs(PHONES))
    def test_phones_txt(self, data):
        parses_or_refuses(read_phones_txt, data, "phones.txt")


class TestUnitsAndConfigs:
    @FUZZ
    @given(inputs(UNITS))
    def test_units(self, data):
        parses_or_refuses(read_units, data, "units.txt")

    @FUZZ
    @given(inputs(CONFIG))
    def test_yaml_config(self, data):
        parses_or_refuses(load_config, data, "conf.yaml")

    @FUZZ
    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                        | st.text(max_size=8),
                        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
                            st.sampled_from(["task", "data", "model", "train", "encoder", "seed",
                                             "lr", "window", "strides", "x"]), kids, max_size=4),
                        max_leaves=12))
    def test_yaml_structures(self, tree):
        import yaml
        text = yaml.safe_dump(tree).encode()
        parses_or_refuses(load_config, text, "conf.yaml")


class TestAudioHeaders:
    @FUZZ
    @given(mutated(WAV, junk=b"RIFFWAVEfmt data\x00\xff"))
    def test_wav(self, data):
        def read(path):
            audio_info(path)
            return load_audio(path, 16000)
        out = parses_or_refuses(read, data, "a.wav")
        if not isinstance(out, SpeechVQError):  # what loads is complete and finite
            x, sr = out
            assert sr == 16000 and np.isfinite(x).all() and x.size > 0

    @FUZZ
    @given(st.integers(45, len(WAV) - 2))
    def test_truncated_data_chunk_is_refused(self, size):
        out = parses_or_refuses(load_audio, WAV[:size], "a.wav")
        assert isinstance(out, SpeechVQError) and "truncated" in str(out)
