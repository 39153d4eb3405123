"""Corpus preparers on tiny fake trees in each corpus's real layout (made here, no downloads)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechvq.data.speech import corpora
from speechvq.data.speech.corpora import (PREPARERS, TIMIT_CORE_TEST, TIMIT_DEV, prepare_folder,
                                   prepare_librispeech, prepare_timit, prepare_vctk)
from speechvq.data.speech.kaldi import read_ctm, read_phones_txt, timit_phn_to_segments, validate_data_dir
from speechvq.errors import DataError
from textgrids import textgrid

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _audio(path: Path, rate: int, seconds: float = 0.05, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, x.astype(np.float32), rate, subtype="PCM_16", **kw)


def _validated(split_dirs: dict[str, Path]) -> dict:
    out = {}
    for name, path in split_dirs.items():
        d = validate_data_dir(path)
        assert all(Path(p).is_absolute() for p in d.wav_scp.values()), name
        out[name] = d
    return out


def _no_output(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------------------- VCTK

VCTK_SPEAKERS = ("p225", "p226", "p227", "p228", "p315")     # p315: no transcripts (as in 0.92)
VCTK_SENTS = ("001", "002", *(f"{i:03d}" for i in range(30, 37)))


@pytest.fixture(scope="module")
def vctk092(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("VCTK-Corpus-0.92")
    for spk in VCTK_SPEAKERS:
        for sent in VCTK_SENTS:
            utt = f"{spk}_{sent}"
            for mic in ("mic1", "mic2"):
                if (utt, mic) != ("p226_030", "mic2"):
                    _audio(root / "wav48_silence_trimmed" / spk / f"{utt}_{mic}.flac", 48000)
            if spk != "p315":
                (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
                (root / "txt" / spk / f"{utt}.txt").write_text(f"Please  call {spk} {sent}.\n")
    return root


def test_vctk_092_splits_and_warnings(vctk092, tmp_path):
    with pytest.warns(UserWarning, match=r"9 VCTK utterances have no transcript"):
        dirs = prepare_vctk(vctk092, tmp_path / "out", progress=False)
    assert set(dirs) == {"all", "train", "dev", "test", "test_unseen"}
    d = _validated(dirs)
    assert len(d["all"].utterances()) == 45
    assert d["all"].text["p225_001"] == "Please call p225 001."
    assert d["all"].text["p315_030"] == ""                   # audio kept, empty transcript
    assert d["all"].wav_scp["p225_001"].endswith("wav48_silence_trimmed/p225/p225_001_mic1.flac")
    # 5 speakers -> 1 held out (the last one); parallel sentences 001-024 -> test
    assert d["test_unseen"].speakers() == ["p315"]
    assert d["test_unseen"].utterances() == ["p315_001", "p315_002"]
    seen = VCTK_SPEAKERS[:4]
    assert d["test"].utterances() == [f"{s}_{n}" for s in seen for n in ("001", "002")]
    # 7 own sentences per speaker: dev takes 3 (at most half), train keeps 4
    assert d["dev"].utterances() == [f"{s}_{n:03d}" for s in seen for n in range(30, 33)]
    assert d["train"].utterances() == [f"{s}_{n:03d}" for s in seen for n in range(33, 37)]
    assert "p315" not in d["train"].speakers() + d["dev"].speakers()


def test_vctk_subset_of_parallel_sentences_keeps_a_train_split(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    for spk in VCTK_SPEAKERS[:4]:
        for n in range(1, 25):  # the 0.92 subset that once left no train split
            _audio(root / "wav48_silence_trimmed" / spk / f"{spk}_{n:03d}_mic1.flac", 48000)
    with pytest.warns(UserWarning, match=r"only the parallel sentences.*train = their sentences "
                                         r"013-024"):
        dirs = prepare_vctk(root, tmp_path / "out", progress=False)
    d = _validated(dirs)
    assert d["train"].utterances() == [f"{s}_{n:03d}" for s in VCTK_SPEAKERS[:3]
                                       for n in range(13, 25)]
    assert d["test"].utterances() == [f"{s}_{n:03d}" for s in VCTK_SPEAKERS[:3]
                                      for n in range(1, 13)]
    assert "dev" not in dirs


def test_vctk_092_mic2_missing_file_warns_once(vctk092, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dirs = prepare_vctk(vctk092, tmp_path / "out", mic="mic2", progress=False)
    mic_warnings = [w for w in caught if "no mic2 recording" in str(w.message)]
    assert len(mic_warnings) == 1 and str(mic_warnings[0].message).startswith("1 VCTK")
    d = _validated(dirs)["all"]
    assert "p226_030" not in d.utterances() and len(d.utterances()) == 44
    assert d.wav_scp["p226_031"].endswith("p226_031_mic2.flac")


def test_vctk_080_and_bad_layouts(tmp_path):
    root = tmp_path / "VCTK-Corpus"
    for spk in ("p225", "p226"):
        for sent in ("001", "050"):
            _audio(root / "wav48" / spk / f"{spk}_{sent}.wav", 48000)
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{spk}_{sent}.txt").write_text("Ask her.\n")
    dirs = prepare_vctk(root, tmp_path / "out", progress=False)
    d = _validated(dirs)
    assert d["all"].utterances() == ["p225_001", "p225_050", "p226_001", "p226_050"]
    assert "test_unseen" not in dirs                         # 2 speakers: none held out
    assert d["test"].utterances() == ["p225_001", "p226_001"]
    assert sf.info(d["all"].wav_scp["p225_001"]).samplerate == 48000
    with pytest.raises(DataError, match="one microphone"):
        prepare_vctk(root, tmp_path / "o2", mic="mic2", progress=False)
    with pytest.raises(DataError, match="mic1 or mic2"):
        prepare_vctk(root, tmp_path / "o3", mic="mic3", progress=False)
    with pytest.raises(DataError, match=r"no wav48_silence_trimmed/ or wav48/ .*is this VCTK"):
        prepare_vctk(root / "txt", tmp_path / "o4", progress=False)
    with pytest.raises(DataError, match="does not exist"):
        prepare_vctk(tmp_path / "nowhere", tmp_path / "o5", progress=False)
    assert not any((tmp_path / f"o{i}").exists() for i in range(2, 6))


# -------------------------------------------------------------------------------- LibriSpeech

TEXTGRID = textgrid([
    ("IntervalTier", "words", [(0, 0.1, ""), (0.1, 0.8, "hello"), (0.8, 1.0, "")]),
    ("IntervalTier", "phones", [(0, 0.1, ""), (0.1, 0.2, "HH"), (0.2, 0.35, "AH0"),
                                (0.35, 0.5, "L"), (0.5, 0.8, "OW1"), (0.8, 1.0, "sil")])])


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("LibriSpeech")
    for split, spk, chap in (("dev-clean", "19", "198"), ("dev-clean", "198", "7"),
                             ("train-clean-100", "103", "1240")):
        chapter = root / split / spk / chap
        lines = []
        for i in range(2):
            utt = f"{spk}-{chap}-{i:04d}"
            _audio(chapter / f"{utt}.flac", 16000, seconds=1.0)  # as long as TEXTGRID
            lines.append(f"{utt} HELLO WORLD {i}")
        (chapter / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "README.TXT").write_text("LibriSpeech\n")
    return root


def test_librispeech_splits_ids_texts(librispeech, tmp_path):
    dirs = prepare_librispeech(librispeech, tmp_path / "out", progress=False)
    assert set(dirs) == {"dev_clean", "train_clean_100"}
    d = _validated(dirs)
    assert d["dev_clean"].utterances() == ["19-198-0000", "19-198-0001", "198-7-0000",
                                           "198-7-0001"]
    assert d["dev_clean"].speakers() == ["19", "198"]       # the reader, not the chapter
    assert d["train_clean_100"].text["103-1240-0001"] == "HELLO WORLD 1"
    assert not (dirs["dev_clean"] / "phones.ctm").exists()
    # one SPLIT folder given directly
    one = prepare_librispeech(librispeech / "train-clean-100", tmp_path / "one", progress=False)
    assert list(one) == ["train_clean_100"]


def test_librispeech_mfa_alignments(librispeech, tmp_path):
    ali = tmp_path / "ali"
    (ali / "19").mkdir(parents=True)
    (ali / "19" / "19-198-0000.TextGrid").write_text(TEXTGRID)
    with pytest.warns(UserWarning, match=r"5 LibriSpeech utterances have no TextGrid"):
        dirs = prepare_librispeech(librispeech, tmp_path / "out", alignments=ali, progress=False)
    assert not (dirs["train_clean_100"] / "phones.ctm").exists()
    ctm = read_ctm(dirs["dev_clean"] / "phones.ctm")
    assert list(ctm) == ["19-198-0000"]
    segs = ctm["19-198-0000"]
    labels = [p for i, (_, _, p) in enumerate(segs) if i == 0 or p != segs[i - 1][2]]
    assert labels == ["SIL", "HH", "AH", "L", "OW", "SIL"]   # stress stripped, silences -> SIL
    ah = next(s for s in segs if s[2] == "AH")
    assert ah[0] == pytest.approx(0.2, abs=1e-3) and ah[1] == pytest.approx(0.15, abs=1e-3)
    phones = read_phones_txt(dirs["dev_clean"] / "phones.txt")
    assert phones[0] == "SIL" and len(phones) == 40 and set(phones[1:]) == set(corpora.ARPABET)
    validate_data_dir(dirs["dev_clean"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .TextGrid files"):
        prepare_librispeech(librispeech, tmp_path / "o2", alignments=tmp_path / "empty",
                            progress=False)
    (tmp_path / "other" / "x-1-0001.TextGrid").parent.mkdir()
    (tmp_path / "other" / "x-1-0001.TextGrid").write_text(TEXTGRID)
    with pytest.raises(DataError, match="are these the alignments"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_librispeech(librispeech, tmp_path / "o3", alignments=tmp_path / "other",
                            progress=False)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_librispeech_bad_layout(tmp_path):
    (tmp_path / "corpus" / "dev-clean" / "19").mkdir(parents=True)
    with pytest.raises(DataError, match="is this LibriSpeech"):
        prepare_librispeech(tmp_path / "corpus", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------------- TIMIT

PHN = ("0 800 h#\n800 1600 sh\n1600 2400 iy\n2400 2800 bcl\n2800 3200 b\n3200 4000 ax\n"
       "4000 4800 h#\n")
TIMIT_SPEAKERS = {"TRAIN": {"DR1": ["FCJF0", "MDPK0"]},
                  "TEST": {"DR1": ["FAKS0", "MDAB0"], "DR2": ["MZZZ9"]}}  # dev, core, neither
TIMIT_SENTS = ("SA1", "SA2", "SI1027", "SX37")


def _timit_tree(root: Path, lower: bool) -> Path:
    case = str.lower if lower else str
    for part, regions in TIMIT_SPEAKERS.items():
        for dr, spks in regions.items():
            for spk in spks:
                d = root / case(part) / case(dr) / case(spk)
                for sent in TIMIT_SENTS:
                    kw = {} if lower else {"format": "NIST"}   # RIFF .wav / NIST SPHERE .WAV
                    _audio(d / f"{case(sent)}.{case('WAV')}", 16000, seconds=0.3, **kw)
                    (d / f"{case(sent)}.{case('PHN')}").write_text(PHN)
                    (d / f"{case(sent)}.{case('TXT')}").write_text("0 4800 She had your suit.\n")
    return root


def test_timit_upper_sphere_splits_and_ctm(tmp_path):
    root = _timit_tree(tmp_path / "TIMIT", lower=False)
    assert sf.info(root / "TRAIN/DR1/FCJF0/SI1027.WAV").format == "NIST"
    dirs = prepare_timit(root, tmp_path / "out", progress=False)
    assert set(dirs) == {"train", "test", "test_core", "dev"}
    d = _validated(dirs)
    assert d["train"].utterances() == ["FCJF0_SI1027", "FCJF0_SX37", "MDPK0_SI1027", "MDPK0_SX37"]
    assert d["test"].speakers() == ["FAKS0", "MDAB0", "MZZZ9"]
    assert d["test_core"].speakers() == ["MDAB0"] and d["dev"].speakers() == ["FAKS0"]
    assert not any("_SA" in u for dd in d.values() for u in dd.utterances())
    assert d["train"].text["FCJF0_SX37"] == "She had your suit."
    ctm = read_ctm(dirs["train"] / "phones.ctm")
    segs = ctm["FCJF0_SI1027"]
    assert segs == [tuple(s) for s in timit_phn_to_segments(
        root / "TRAIN/DR1/FCJF0/SI1027.PHN", 16000, True)]
    labels = [p for i, (_, _, p) in enumerate(segs) if i == 0 or p != segs[i - 1][2]]
    assert labels == ["SIL", "SH", "IY", "SIL", "B", "AH", "SIL"]   # bcl -> SIL, ax -> AH
    assert segs[1][0] == pytest.approx(0.05, abs=1e-3)              # sample 800 at 16 kHz
    phones = read_phones_txt(dirs["train"] / "phones.txt")
    assert phones[0] == "SIL" and len(phones) == 39 and {"AH", "SH", "B"} <= set(phones)
    assert {p for s in ctm.values() for _, _, p in s} <= set(phones)


def test_timit_lower_riff_include_sa(tmp_path):
    root = _timit_tree(tmp_path / "timit" / "data", lower=True)
    assert sf.info(root / "train/dr1/fcjf0/si1027.wav").format == "WAV"
    dirs = prepare_timit(tmp_path / "timit", tmp_path / "out", include_sa=True, progress=False)
    d = _validated(dirs)
    assert d["train"].utterances()[:4] == ["FCJF0_SA1", "FCJF0_SA2", "FCJF0_SI1027",
                                           "FCJF0_SX37"]
    assert len(d["test"].utterances()) == 12
    assert d["test_core"].utterances() == ["MDAB0_SI1027", "MDAB0_SX37"]   # never SA


def test_timit_lists_and_bad_layout(tmp_path):
    assert len(set(TIMIT_CORE_TEST)) == 24 and len(set(TIMIT_DEV)) == 50
    assert not set(TIMIT_CORE_TEST) & set(TIMIT_DEV)
    assert sum(s.startswith("F") for s in TIMIT_CORE_TEST) == 8      # 1 woman + 2 men per region
    (tmp_path / "TIMIT" / "TRAIN").mkdir(parents=True)
    with pytest.raises(DataError, match="TRAIN/ and TEST/"):
        prepare_timit(tmp_path / "TIMIT", tmp_path / "out", progress=False)


# ------------------------------------------------------------------------------- plain folder


def test_folder_ids_texts_and_registry(tmp_path):
    src = tmp_path / "src"
    _audio(src / "spk1" / "a.wav", 16000)
    (src / "spk1" / "a.txt").write_text("hello there\n")
    _audio(src / "spk1" / "b.flac", 22050, format="FLAC")
    (src / "spk1" / "b.lab").write_text("second one")
    _audio(src / "spk2" / "spk2_c.wav", 16000)
    (src / "spk2" / "notes.md").write_text("not audio")
    with pytest.warns(UserWarning, match="1 utterances have no .txt/.lab"):
        dirs = PREPARERS["folder"](src, tmp_path / "out", progress=False)
    assert set(PREPARERS) == {"vctk", "librispeech", "timit", "folder"}
    d = _validated(dirs)["all"]
    assert d.utterances() == ["spk1_a", "spk1_b", "spk2_c"]
    assert d.text == {"spk1_a": "hello there", "spk1_b": "second one", "spk2_c": ""}
    assert d.wav_scp["spk1_b"] == str((src / "spk1" / "b.flac").resolve())
    # a rerun replaces the dir in place, leaving no temp dirs behind
    (src / "spk2" / "spk2_c.txt").write_text("third")
    assert prepare_folder(src, tmp_path / "out", progress=False) == dirs
    assert validate_data_dir(dirs["all"]).text["spk2_c"] == "third"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all"]


def test_folder_bad_ids_and_layouts_write_nothing(tmp_path):
    src = tmp_path / "src"
    _audio(src / "good" / "a.wav", 16000)
    _audio(src / "bad speaker" / "b.wav", 16000)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="whitespace"):
        prepare_folder(src, out, progress=False)
    assert _no_output(out)
    loose = tmp_path / "loose"
    _audio(loose / "x.wav", 16000)
    with pytest.raises(DataError, match="speaker's folder"):
        prepare_folder(loose, out, progress=False)
    (tmp_path / "empty" / "spk").mkdir(parents=True)
    with pytest.raises(DataError, match="no audio files"):
        prepare_folder(tmp_path / "empty", out, progress=False)
    _audio(tmp_path / "dup" / "s" / "u.wav", 16000)
    _audio(tmp_path / "dup" / "s" / "u.flac", 16000, format="FLAC")
    with pytest.raises(DataError, match="same utterance"):
        prepare_folder(tmp_path / "dup", out, progress=False)
    assert _no_output(out)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real recordings not present ({REAL})")
@pytest.mark.parametrize("corpus, n_utts, speakers", [
    ("vctk", 40, ["p225", "p226", "p227", "p228"]), ("cmu_arctic", 60, ["clb", "slt"])])
def test_folder_on_real_recordings(tmp_path, corpus, n_utts, speakers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                        # no transcripts in these folders
        dirs = prepare_folder(REAL / corpus, tmp_path / corpus, progress=False)
    d = _validated(dirs)["all"]
    assert d.speakers() == speakers and len(d.utterances()) == n_utts
    assert all(u.startswith(d.utt2spk[u]) for u in d.utterances())
    assert d.text is None
