"""The built-in eSpeak NG corpus: text, phone map, split plan, and the tiny corpus end to end."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader")

from speechvq.data.builtin import corpus as builtin, synth as builtin_synth, text as builtin_text  # noqa: E402
from speechvq.data.speech.kaldi import read_ctm, read_phones_txt, read_table  # noqa: E402
from speechvq.errors import DataError  # noqa: E402
from speechvq.ownership import MARKER  # noqa: E402

ARPABET39 = set(builtin_synth.PHONES) - {"SIL"}
FILES = ("wav.scp", "utt2spk", "spk2utt", "text", "phones.ctm", "phones.txt", "phones_fold.txt",
         "spk2gender")


def test_phone_set_and_fold():
    assert builtin_synth.PHONES[0] == "SIL" and len(set(builtin_synth.PHONES)) == 40
    fold = builtin_synth.TIMIT_FOLD39
    assert set(fold) == set(builtin_synth.PHONES)
    assert fold["AO"] == "AA" and fold["ZH"] == "SH" and fold["SIL"] == "SIL"
    assert len(set(fold.values()) - {"SIL"}) == 37  # TIMIT's 39 minus sil, minus DX (absent)


@pytest.mark.parametrize("mnemonic, phone", [
    ("'aU", "AW"), (",oU", "OW"), ("@2", "AH"), ("t#", "T"), ("dZ", "JH"), ("Z", "ZH"),
    ("_:", "SIL"), ("i@", "IH"), ("'OI", "OY"), ("n-", "N"), ("aI3", "AY"), ("e@7", "EH"),
    (";", ";"),
])
def test_map_phone(mnemonic, phone):
    assert builtin_synth.map_phone(mnemonic) == phone


def test_map_phone_unknown_raises():
    with pytest.raises(RuntimeError, match="no ARPAbet mapping"):
        builtin_synth.map_phone("Q~")


def test_phone_segments_merges_drops_and_pads():
    # 22050 Hz events: '_' shares its onset with 'D' (zero length, dropped), ';' is merged into
    # the phone before it, and the audio runs 441 samples (20 ms) past the last event, a '_'
    # (the tail of echo voices): it becomes SIL, merged with the trailing padding.
    events = [(0, "_"), (0, "D"), (2205, "'@2"), (4410, ";"), (6615, "_:"), (8820, "k"),
              (10584, "_")]
    segs = builtin_synth.phone_segments(events, n_in=11025, rate_in=22050, n_speech=8000, pad=100)
    assert segs == [(0, 100, "SIL"), (100, 1700, "DH"), (1700, 4900, "AH"), (4900, 6500, "SIL"),
                    (6500, 7780, "K"), (7780, 8200, "SIL")]


def test_handwritten_sentences_cover_every_phone():
    texts = builtin_text.HANDWRITTEN
    assert len(texts) >= 50 and len(set(texts)) == len(texts)
    engine = builtin_synth.Espeak()
    engine.set_voice("en-us+m3", rate=165, pitch=50, pitch_range=50)
    counts = Counter()
    for i, text in enumerate(texts):
        _, events = engine.synth(text, seed=i)
        counts.update(builtin_synth.map_phone(m) for _, m in events)
    assert ARPABET39 <= set(counts), ARPABET39 - set(counts)


def test_make_sentences_is_seeded_and_distinct():
    a = builtin_text.make_sentences(300, seed=0)
    assert a == builtin_text.make_sentences(300, seed=0)
    assert a != builtin_text.make_sentences(300, seed=1)
    assert len(a) == len(set(a)) == 300 + len(builtin_text.HANDWRITTEN)
    assert all(s[0].isupper() and s[-1] in ".?" for s in a)


def _check_plan(utts: list[dict]) -> None:
    by_split: dict[str, list[dict]] = {}
    for u in utts:
        by_split.setdefault(u["split"], []).append(u)
        assert u["utt"].startswith(u["speaker"] + "_")
    assert set(by_split) == set(builtin.SPLITS)
    texts = {k: {u["text"] for u in v} for k, v in by_split.items()}
    spks = {k: {u["speaker"] for u in v} for k, v in by_split.items()}
    assert not texts["test"] & texts["train"] and not texts["dev"] & texts["train"]
    assert not texts["test"] & texts["dev"] and texts["test_unseen"] == texts["test"]
    assert not spks["test_unseen"] & spks["train"] and spks["test"] <= spks["train"]
    for text in texts["test"]:
        readers = {u["speaker"] for u in by_split["test"] if u["text"] == text}
        assert len(readers) >= 2 and readers <= spks["train"]
    # every test reading has a second one by the same speaker, in test_reread and only there
    first = {(u["speaker"], u["text"]) for u in by_split["test"]}
    second = [(u["speaker"], u["text"]) for u in by_split["test_reread"]]
    assert sorted(second) == sorted(first) and len(set(second)) == len(second)
    assert all("_r2_" in u["utt"] for u in by_split["test_reread"])
    assert not any("_r2_" in u["utt"] for k in ("train", "dev", "test", "test_unseen")
                   for u in by_split[k])


@pytest.mark.parametrize("size", ["tiny", "default", "large"])
def test_plan_constraints(size):
    utts = builtin.plan_corpus(size, seed=0)
    _check_plan(utts)
    assert utts == builtin.plan_corpus(size, seed=0)
    cfg = builtin.SIZES[size]
    speakers = {u["speaker"] for u in utts}
    assert len(speakers) == cfg["seen"] + cfg["unseen"]
    assert len({u["text"] for u in utts}) == cfg["train"] + cfg["dev"] + cfg["test"]
    per_split = {k: sum(u["split"] == k for u in utts) for k in builtin.SPLITS}
    reads = {k: cfg[k] * cfg[f"{k}_reads"] for k in ("train", "dev", "test")}
    assert per_split == {**reads, "test_reread": reads["test"],
                         "test_unseen": cfg["test"] * cfg["unseen"]}
    if size != "tiny":  # README's figures; the floors
        assert sum(s[0] == "m" for s in speakers) == sum(s[0] == "f" for s in speakers)
        assert len(speakers) >= 12 and len({u["text"] for u in utts}) >= 200
    if size == "default":
        assert per_split == {"train": 720, "dev": 90, "test": 180, "test_reread": 180,
                             "test_unseen": 120}


def test_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="unknown built-in corpus size 'huge'"):
        builtin.prepare_builtin(tmp_path, size="huge")
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import now raises ImportError
    with pytest.raises(DataError, match=r'pip install "speechvq\[builtin\]"'):
        builtin.prepare_builtin(tmp_path, size="tiny")


def _files(split_dir: Path) -> dict[str, bytes]:
    """Every file of a split dir but wav.scp (absolute paths), by relative path."""
    return {str(p.relative_to(split_dir)): p.read_bytes() for p in sorted(split_dir.rglob("*"))
            if p.is_file() and p.name != "wav.scp"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny corpus: cache filled (a), cached (b), no cache twice (c, d); and timings."""
    root = tmp_path_factory.mktemp("builtin")
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPEECHVQ_CACHE", str(cache))
        stale = cache / "builtin" / f".{builtin.GENERATOR_VERSION}-tiny-seed0.tmp-999999999-x"
        stale.mkdir(parents=True)  # left by a killed run: its pid does not exist
        out = {"cache": cache, "stale": stale}
        t = time.perf_counter()
        out["a"] = builtin.prepare_builtin(root / "a", size="tiny", progress=False)
        out["t_a"] = time.perf_counter() - t
        t = time.perf_counter()
        out["b"] = builtin.prepare_builtin(root / "b", size="tiny", progress=False)
        out["t_b"] = time.perf_counter() - t
        for k in "cd":
            out[k] = builtin.prepare_builtin(root / k, size="tiny", use_cache=False,
                                             progress=False)
    return out


def test_tiny_splits(runs):
    dirs = runs["a"]
    assert set(dirs) == set(builtin.SPLITS)
    utts = []
    for split, d in dirs.items():
        assert all((d / f).is_file() for f in FILES), split
        utt2spk, text = read_table(d / "utt2spk"), read_table(d / "text")
        assert utt2spk and set(text) == set(utt2spk) == set(read_table(d / "wav.scp"))
        spk2utt = read_table(d / "spk2utt")
        assert {s: v.split() for s, v in spk2utt.items()} == {
            s: [u for u in utt2spk if utt2spk[u] == s] for s in set(utt2spk.values())}
        utts += [dict(utt=u, speaker=s, split=split, text=text[u]) for u, s in utt2spk.items()]
    _check_plan(utts)


def test_tiny_audio_and_alignments(runs):
    for split, d in runs["a"].items():
        assert read_phones_txt(d / "phones.txt") == list(builtin_synth.PHONES)
        assert read_table(d / "phones_fold.txt")["ZH"] == "SH"
        ctm = read_ctm(d / "phones.ctm")
        wav_scp = read_table(d / "wav.scp")
        assert set(ctm) == set(wav_scp)
        for utt, path in wav_scp.items():
            assert Path(path).is_absolute() and Path(path).parent == d / "wav"
            info = sf.info(path)
            assert info.samplerate == 16000 and info.subtype == "PCM_16" and info.channels == 1
            segs = ctm[utt]
            assert segs[0][0] == 0 and segs[0][2] == "SIL" and segs[-1][2] == "SIL"
            assert segs[0][1] >= 0.15 and segs[-1][1] >= 0.15  # the padding, at least
            for (s0, d0, _), (s1, _, _) in zip(segs, segs[1:]):
                assert abs(s0 + d0 - s1) < 1e-6 and d0 > 0  # contiguous, no empty segments
            assert abs(segs[-1][0] + segs[-1][1] - info.frames / 16000) < 1e-3
            phones = {p for _, _, p in segs}
            assert phones <= set(builtin_synth.PHONES) and len(phones - {"SIL"}) >= 5


def test_second_readings_differ_from_the_first_but_say_the_same(runs):
    d1, d2 = runs["a"]["test"], runs["a"]["test_reread"]
    wav1, ctm1 = read_table(d1 / "wav.scp"), read_ctm(d1 / "phones.ctm")
    wav2, ctm2 = read_table(d2 / "wav.scp"), read_ctm(d2 / "phones.ctm")
    assert sorted(u.replace("_r2_", "_") for u in wav2) == sorted(wav1)
    for second in wav2:
        first = second.replace("_r2_", "_")
        a, b = sf.read(wav1[first])[0], sf.read(wav2[second])[0]
        assert abs(len(a) - len(b)) > 0.02 * len(a), (first, len(a), len(b))  # rate differs
        assert [p for *_, p in ctm1[first]] == [p for *_, p in ctm2[second]]  # same phones


def test_cache_reused_and_out_dir_independent(runs):
    cache = runs["cache"] / "builtin" / f"{builtin.GENERATOR_VERSION}-tiny-seed0"
    assert (cache / "corpus.json").is_file() and not runs["stale"].exists()
    assert [p.name for p in cache.parent.iterdir() if p.name.startswith(".")] == []
    assert runs["t_b"] < max(1.0, runs["t_a"] / 3), (runs["t_a"], runs["t_b"])
    for split in builtin.SPLITS:
        assert _files(runs["a"][split]) == _files(runs["b"][split])
    shutil.rmtree(cache)  # the data dirs hold their own links or copies of the wavs
    for path in read_table(runs["a"]["train"] / "wav.scp").values():
        assert sf.info(path).frames > 16000 * 0.3


def test_no_cache_runs_are_deterministic(runs):
    for split in builtin.SPLITS:
        c, d = runs["c"][split], runs["d"][split]
        ctm_c, ctm_d = read_ctm(c / "phones.ctm"), read_ctm(d / "phones.ctm")
        assert ctm_c.keys() == ctm_d.keys()
        for utt in ctm_c:
            assert [p for *_, p in ctm_c[utt]] == [p for *_, p in ctm_d[utt]]
            for (s0, d0, _), (s1, d1, _) in zip(ctm_c[utt], ctm_d[utt]):
                assert abs(s0 - s1) < 2e-3 and abs(d0 - d1) < 2e-3
        files = _files(c)
        assert files == _files(d)  # byte-identical, wavs included
        assert files == _files(runs["a"][split])  # and the same as the cached corpus
    assert [p.name for p in runs["c"]["train"].parent.iterdir()
            if p.name.startswith(".") and p.name != MARKER] == []  # no temp left behind
