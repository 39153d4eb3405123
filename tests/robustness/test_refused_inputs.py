"""Inputs that used to be accepted and must not be, and harmless rounding that must be: a WAV
cut short, alignments past the end of the audio (CTM, TextGrid, TIMIT .PHN), overlapping
TextGrid intervals, a data dir with only empty files, ids with invisible format characters;
CTM boundaries overlapping by under a millisecond are clipped and counted."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from conftest import write_tiny_data_dir
from fuzzing import FUZZ
from speechvq.audio import load_audio
from speechvq.data.speech.alignments import (OVERLAP_CLIP_S, read_ctm, read_textgrid_phones,
                                             timit_phn_to_segments)
from speechvq.data.speech.kaldi import DataDir, check_id, validate_data_dir, write_ctm
from speechvq.data.speech.tables import MAX_ID_BYTES
from speechvq.errors import AudioError, DataError

SECONDS = 0.5  # every utterance of the tiny data dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_data_dir(tmp_path_factory.mktemp("refused") / "data")


def copy(tiny: Path, tmp_path: Path) -> Path:
    """A copy of the tiny dir whose wav.scp lists the copied audio."""
    d = Path(shutil.copytree(tiny, tmp_path / "d"))
    (d / "wav.scp").write_text((d / "wav.scp").read_text().replace(str(tiny), str(d)))
    return d


def textgrid(intervals: list[tuple[float, float, str]], xmax: float) -> str:
    items = "".join(f'        intervals [{i}]:\n            xmin = {a}\n            xmax = {b}\n'
                    f'            text = "{t}"\n' for i, (a, b, t) in enumerate(intervals, 1))
    return (f'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {xmax}\n'
            f'tiers? <exists>\nsize = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n'
            f'        name = "phones"\n        xmin = 0\n        xmax = {xmax}\n'
            f'        intervals: size = {len(intervals)}\n{items}')


class TestTruncatedAudio:
    @FUZZ
    @given(st.integers(1, 57139))
    def test_wav_cut_short_is_refused(self, tmp_path_factory, present):
        path = tmp_path_factory.mktemp("wav") / "cut.wav"
        sf.write(path, np.zeros(57140, np.float32), 16000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:44 + 2 * present])
        with pytest.raises(AudioError, match=f"header says 57140 samples, {present} are present"):
            load_audio(path)

    def test_validate_and_dump_refuse_it(self, tiny, tmp_path):
        """validate reads the header where it needs the duration (alignments, segments);
        dump reads every file."""
        from speechvq.data.speech.dump import dump_data_dir
        d = copy(tiny, tmp_path)
        wav = d / "wav" / "spkA_000.wav"
        wav.write_bytes(wav.read_bytes()[:-100])
        validate_data_dir(d)  # no duration needed: the file is read by dump
        with pytest.raises(DataError, match="spkA_000.wav. is truncated"):
            dump_data_dir(d, tmp_path / "dump", progress=False)
        write_ctm(d / "phones.ctm", {"spkA_000": [(0.0, 0.1, "SIL")]})
        (d / "phones.txt").write_text("SIL 0\n")
        with pytest.raises(DataError, match=r"wav.scp:1: .*truncated"):
            validate_data_dir(d)


class TestAlignmentsPastTheAudio:
    @FUZZ
    @given(st.floats(SECONDS + 0.05, 1e4))
    def test_ctm_past_the_end_is_refused_at_validate(self, tiny, tmp_path_factory, end):
        d = copy(tiny, tmp_path_factory.mktemp("ctm"))
        write_ctm(d / "phones.ctm", {"spkA_000": [(0.0, 0.1, "SIL"), (0.1, end - 0.1, "AH")]})
        (d / "phones.txt").write_text("SIL 0\nAH 1\n")
        with pytest.raises(DataError, match="past the end of its audio"):
            validate_data_dir(d)

    def test_ctm_inside_the_audio_passes(self, tiny, tmp_path):
        d = copy(tiny, tmp_path)
        write_ctm(d / "phones.ctm", {"spkA_000": [(0.0, 0.1, "SIL"), (0.1, SECONDS - 0.1, "AH")]})
        (d / "phones.txt").write_text("SIL 0\nAH 1\n")
        validate_data_dir(d)

    @pytest.mark.parametrize("source", ["textgrid", "timit"])
    def test_prepared_alignments_past_the_audio(self, tiny, tmp_path, source):
        """What a preparer turns into phones.ctm (a TextGrid with xmax 60 s, a .PHN ending at
        sample 9,000,000) is refused by the same check, through the preparer's validate."""
        if source == "textgrid":
            path = tmp_path / "u.TextGrid"
            path.write_text(textgrid([(0, 0.2, "sil"), (0.2, 60.0, "AH1")], 60.0))
            segs = read_textgrid_phones(path)
        else:
            path = tmp_path / "SA1.PHN"
            path.write_text("0 800 h#\n800 9000000 aa\n")
            segs = timit_phn_to_segments(path)
        d = copy(tiny, tmp_path)
        write_ctm(d / "phones.ctm", {"spkA_000": segs})
        (d / "phones.txt").write_text("SIL 0\nAA 1\nAH 2\n")
        with pytest.raises(DataError, match="past the end of its audio"):
            validate_data_dir(d)

    def test_prepare_refuses_before_writing(self, tmp_path):
        from speechvq.data.speech import corpora
        root = tmp_path / "LibriSpeech" / "dev-clean" / "19" / "198"
        root.mkdir(parents=True)
        sf.write(root / "19-198-0000.flac", np.zeros(8000, np.float32), 16000)
        (root / "19-198.trans.txt").write_text("19-198-0000 HELLO\n")
        ali = tmp_path / "ali"
        ali.mkdir()
        (ali / "19-198-0000.TextGrid").write_text(textgrid([(0, 60.0, "AH1")], 60.0))
        with pytest.raises(DataError, match="past the end of its audio.*nothing was written"):
            corpora.prepare_librispeech(tmp_path / "LibriSpeech", tmp_path / "out",
                                        alignments=ali, progress=False)
        assert not (tmp_path / "out" / "dev_clean").exists()


class TestOverlaps:
    @FUZZ
    @given(st.floats(OVERLAP_CLIP_S, 0.05))
    def test_textgrid_overlap_is_refused(self, tmp_path_factory, overlap):
        path = tmp_path_factory.mktemp("tg") / "u.TextGrid"
        path.write_text(textgrid([(0, 0.2, "AH1"), (0.2 - overlap, 0.4, "B")], 0.4))
        with pytest.raises(DataError, match="starts before interval"):
            read_textgrid_phones(path)

    @FUZZ
    @given(st.lists(st.floats(2e-6, OVERLAP_CLIP_S * 0.99), min_size=1, max_size=5))
    def test_ctm_overlap_under_a_millisecond_is_clipped_and_counted(self, tmp_path_factory,
                                                                    overlaps):
        lines, start = [], 0.0
        for i, o in enumerate(overlaps):
            lines.append(f"u1 1 {start:.7f} {0.1 + o:.7f} P{i}")
            start += 0.1
        lines.append(f"u1 1 {start:.7f} 0.1 END")
        path = tmp_path_factory.mktemp("ctm") / "phones.ctm"
        path.write_text("\n".join(lines) + "\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            segs = read_ctm(path)["u1"]
        assert any(f"{len(overlaps)} phone boundaries overlapped" in str(w.message)
                   for w in caught)
        assert all(b[0] >= a[0] + a[1] - 1e-9 for a, b in zip(segs, segs[1:]))

    def test_ctm_overlap_of_a_millisecond_or_more_is_refused(self, tmp_path):
        path = tmp_path / "phones.ctm"
        path.write_text("u1 1 0.0 0.102 A\nu1 1 0.1 0.1 B\n")
        with pytest.raises(DataError, match="must not overlap"):
            read_ctm(path)


class TestDataDirs:
    def test_all_files_empty_is_refused(self, tmp_path):
        d = tmp_path / "empty"
        d.mkdir()
        for name in ("wav.scp", "utt2spk", "spk2utt", "text"):
            (d / name).write_text("")
        with pytest.raises(DataError, match="holds no utterances"):
            DataDir.load(d)

    @FUZZ
    @given(st.text(st.characters(categories=["Cf"]), min_size=1, max_size=2),
           st.integers(0, 4))
    def test_invisible_format_characters_are_refused(self, invisible, at):
        value = "spkA_000"
        with pytest.raises(DataError, match="invisible format character"):
            check_id(value[:at] + invisible + value[at:], "utterance id", "utt2spk:1")

    @FUZZ
    @given(st.integers(MAX_ID_BYTES + 1, 1000))
    def test_ids_longer_than_a_file_name_allows_are_refused(self, n):
        with pytest.raises(DataError, match="bytes long"):
            check_id("a" * n, "utterance id", "utt2spk:1")
