"""speechvq.data.speech.kaldi: tables, validation and repair of data dirs, CTM, TIMIT .PHN, TextGrid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speechvq.data.speech.fix import fix_data_dir
from speechvq.data.speech.kaldi import (SIL, TIMIT_FOLD, DataDir, check_id, frame_labels,
                                 read_ctm, read_phones_txt, read_table, read_textgrid_phones,
                                 timit_phn_to_segments, validate_data_dir, write_ctm,
                                 write_phones_txt, write_table)
from speechvq.errors import DataError
from textgrids import textgrid


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def put(path: Path, rows: list[str]) -> None:
    path.write_text("".join(r + "\n" for r in rows))


def where(name: str, line: int) -> str:
    return re.escape(f"{name}:{line}:")


# ------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("bad", ["", "a/b", "a..b", "..", ".", "a b", "a\tb", "a\x01b", "a\x7fb"])
def test_check_id_refuses(bad):
    with pytest.raises(DataError, match="somewhere:3"):
        check_id(bad, "utterance id", "somewhere:3")


@pytest.mark.parametrize("good", ["spkA_001", "p225-001.x", "19-198-0001", "ünï"])
def test_check_id_accepts(good):
    check_id(good, "utterance id", "here")


def test_table_round_trip_sorted_atomic(tmp_path):
    rows = {"b": "2 two", "B": "capital", "a-1": "x", "a": "1", "é": "accent"}
    write_table(tmp_path / "t", rows)
    # LC_ALL=C byte order: uppercase before lowercase, a prefix before its extensions, UTF-8 last
    assert lines(tmp_path / "t") == ["B capital", "a 1", "a-1 x", "b 2 two", "é accent"]
    assert read_table(tmp_path / "t") == dict(sorted(rows.items()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    with pytest.raises(DataError, match="a/b"):
        write_table(tmp_path / "u", {"a/b": "x"})
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize("rows,line,msg", [
    (["b x", "a y"], 2, "not sorted.*speechvq fix"),
    (["a x", "a y"], 2, "duplicate key 'a' \\(first on line 1\\).*speechvq fix"),
    (["a x", "", "b y"], 2, "empty line"),
    (["a x", "b"], 2, "expected `KEY VALUE`"),
    (["a x\r", "b y"], 1, "Windows line ending"),
    (["a/1 x"], 1, "not a valid id"),
])
def test_read_table_errors(tmp_path, rows, line, msg):
    put(tmp_path / "utt2spk", rows)
    with pytest.raises(DataError, match=where("utt2spk", line) + ".*" + msg):
        read_table(tmp_path / "utt2spk")


# ------------------------------------------------------------------------ data dir validation


def test_tiny_dir_validates_and_round_trips(tiny_data_dir, tmp_path):
    d = validate_data_dir(tiny_data_dir)
    assert d.utterances() == ["spkA_000", "spkA_001", "spkB_000", "spkB_001"]
    assert d.speakers() == ["spkA", "spkB"]
    assert d.spk2utt() == {"spkA": ["spkA_000", "spkA_001"], "spkB": ["spkB_000", "spkB_001"]}
    path, start, end = d.audio_source("spkB_001")
    assert path.is_file() and path.name == "spkB_001.wav" and start is None and end is None
    d.ctm = {"spkA_000": [(0.0, 0.1, SIL), (0.1, 0.25, "AH"), (0.35, 0.15, SIL)]}
    d.phones = ["AH", SIL]
    d.utt2src = {u: "src_" + u for u in d.utt2spk}
    out = d.save(tmp_path / "copy")
    assert lines(out / "phones.txt") == ["SIL 0", "AH 1"]
    assert lines(out / "spk2utt") == lines(tiny_data_dir / "spk2utt")
    e = DataDir.load(out)
    assert (e.wav_scp, e.utt2spk, e.text, e.utt2src) == (d.wav_scp, d.utt2spk, d.text, d.utt2src)
    assert e.ctm == d.ctm and e.phones == [SIL, "AH"]


def test_segments_and_relative_paths(tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths fall back to the data dir
    put(tiny_data_dir / "wav.scp", ["rec1 wav/spkA_000.wav"])
    put(tiny_data_dir / "segments", ["spkA_a rec1 0.00 0.20", "spkA_b rec1 0.2 0.5"])
    put(tiny_data_dir / "utt2spk", ["spkA_a spkA", "spkA_b spkA"])
    put(tiny_data_dir / "spk2utt", ["spkA spkA_a spkA_b"])
    put(tiny_data_dir / "text", ["spkA_a HELLO", "spkA_b"])  # an empty transcript is allowed
    d = validate_data_dir(tiny_data_dir)
    assert d.segments == {"spkA_a": ("rec1", 0.0, 0.2), "spkA_b": ("rec1", 0.2, 0.5)}
    path, start, end = d.audio_source("spkA_b")
    assert path == tiny_data_dir / "wav" / "spkA_000.wav" and (start, end) == (0.2, 0.5)
    assert d.text == {"spkA_a": "HELLO", "spkA_b": ""}
    assert DataDir.load(d.save(tmp_path / "copy")).segments == d.segments
    with pytest.raises(DataError, match="'spkB_000' is not in"):
        d.audio_source("spkB_000")
    # fix: a segment on an unknown recording goes with its utterance; unused recordings go too
    put(tiny_data_dir / "wav.scp", ["rec0 wav/spkB_000.wav", "rec1 wav/spkA_000.wav"])
    put(tiny_data_dir / "segments", ["spkA_a rec1 0.00 0.20", "spkA_b rec1 0.2 0.5",
                                     "spkA_c rec9 0 1"])
    put(tiny_data_dir / "utt2spk", ["spkA_a spkA", "spkA_b spkA", "spkA_c spkA"])
    put(tiny_data_dir / "text", ["spkA_a HELLO", "spkA_b", "spkA_c X"])
    counts = fix_data_dir(tiny_data_dir)
    assert (counts["dropped_utterances"], counts["dropped_recordings"]) == (1, 1)
    assert validate_data_dir(tiny_data_dir).segments == d.segments
    assert lines(tiny_data_dir / "wav.scp") == ["rec1 wav/spkA_000.wav"]


def _edit(name: str, fn):
    def apply(root: Path) -> None:
        put(root / name, fn(lines(root / name)))
    return apply


def _swap(rows):
    return [rows[1], rows[0], *rows[2:]]


def _rm_wav(root: Path) -> None:
    (root / "wav" / "spkB_000.wav").unlink()


def _segments_past_end(root: Path) -> None:
    recs = [r.split()[0] for r in lines(root / "wav.scp")]
    put(root / "segments", [f"{u} {u} 0.0 {0.6 if u == 'spkA_001' else 0.5}" for u in recs])


def _set(name: str, line: int, text: str):
    def fn(rows):
        rows[line - 1] = text
        return rows
    return _edit(name, fn)


@pytest.mark.parametrize("breaker,name,line,msg", [
    (_edit("utt2spk", _swap), "utt2spk", 2, "not sorted"),
    (_edit("text", lambda r: [r[0], r[0].replace("TONE", "X"), *r[1:]]), "text", 2, "duplicate"),
    (_edit("utt2spk", lambda r: r[:2] + r[3:]), "wav.scp", 3, "'spkB_000' has no entry in utt2s"),
    (_edit("text", lambda r: r[:3]), "utt2spk", 4, "'spkB_001' has no entry in text"),
    (_edit("spk2utt", lambda r: [r[0], "spkB spkB_000"]), "spk2utt", 2, "do not match utt2spk"),
    (_rm_wav, "wav.scp", 3, "does not exist"),
    (_segments_past_end, "segments", 2, "past the end of recording spkA_001"),
    (_set("wav.scp", 1, "spkA_000 sph2pipe -f wav a.sph |"), "wav.scp", 1, "never runs a shell"),
    (_set("wav.scp", 1, "spkA/000 x.wav"), "wav.scp", 1, "contains '/'"),
    (_set("utt2spk", 1, "spkA..000 spkA"), "utt2spk", 1, "contains '..'"),
    (_set("utt2spk", 1, "spkA_000 spk A"), "utt2spk", 1, "speaker id 'spk A'.*whitespace"),
    (_set("utt2spk", 1, "spkA_000\x01 spkA"), "utt2spk", 1, "control character"),
    (_set("utt2spk", 1, "spkA_000 spkB"), "utt2spk", 1, "does not start with its speaker"),
])
def test_validation_errors_name_file_and_line(tiny_data_dir, breaker, name, line, msg):
    breaker(tiny_data_dir)
    with pytest.raises(DataError, match=where(name, line) + ".*" + msg):
        validate_data_dir(tiny_data_dir)


def test_missing_spk2utt_and_dir(tiny_data_dir, tmp_path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        validate_data_dir(tmp_path / "nowhere")
    (tiny_data_dir / "spk2utt").unlink()
    with pytest.raises(DataError, match="spk2utt: missing; run `speechvq fix"):
        DataDir.load(tiny_data_dir)
    DataDir.load(tiny_data_dir, validate=False)  # reading alone does not need it


def test_fix_data_dir_repairs(tiny_data_dir):
    root = tiny_data_dir
    u2s = lines(root / "utt2spk")
    put(root / "utt2spk", [u2s[2], u2s[0], u2s[0], "", u2s[3], u2s[1], "spkC_000 spkC"])
    put(root / "text", [*lines(root / "text"), "zzz_orphan HI"][1:])  # spkA_000 loses its text
    (root / "spk2utt").unlink()
    put(root / "phones.ctm", ["spkA_001 1 0.0 0.5 AH", "spkA_000 1 0.0 0.5 SIL"])
    original = (root / "utt2spk").read_bytes()
    counts = fix_data_dir(root)
    assert counts["utterances"] == 3 and counts["speakers"] == 2
    assert counts["dropped_utterances"] == 3  # spkA_000 (no text), spkC_000 (no audio), orphan
    assert counts["duplicates"] == 1 and counts["blank"] == 1 and counts["unsorted"] >= 1
    assert counts["dropped_ctm_lines"] == 1 and counts["phones_added"] == 1
    assert (root / ".backup" / "utt2spk").read_bytes() == original
    d = validate_data_dir(root)
    assert d.utterances() == ["spkA_001", "spkB_000", "spkB_001"]
    assert d.phones == [SIL, "AH"] and list(d.ctm) == ["spkA_001"]
    assert lines(root / "spk2utt") == ["spkA spkA_001", "spkB spkB_000 spkB_001"]
    assert fix_data_dir(root)["dropped_utterances"] == 0  # idempotent


def test_fix_drops_utterances_whose_audio_is_missing(tiny_data_dir):
    root = tiny_data_dir
    (root / "wav" / "spkB_001.wav").unlink()
    with pytest.raises(DataError, match="spkB_001"):
        validate_data_dir(root)
    counts = fix_data_dir(root)
    assert counts["missing_audio"] == 1 and counts["dropped_utterances"] == 1
    assert "spkB_001" not in validate_data_dir(root).utterances()
    assert (root / ".backup").is_dir() and not (root / ".backup.1").exists()
    fix_data_dir(root)  # a second fix keeps the first backup (the originals) as it was
    assert "spkB_001" in (root / ".backup" / "wav.scp").read_text()
    assert "spkB_001" not in (root / ".backup.1" / "wav.scp").read_text()


def test_fix_refuses_to_empty_a_data_dir(tiny_data_dir, tmp_path, monkeypatch):
    root = tiny_data_dir
    put(root / "wav.scp", [f"{u} wav/{u}.wav" for u in sorted(read_table(root / "utt2spk"))])
    original = (root / "wav.scp").read_bytes()
    monkeypatch.chdir(tmp_path)  # wav/... exists neither here nor in the data dir
    (root / "wav").rename(root / "elsewhere")
    with pytest.raises(DataError, match="none of its 4 audio files exists.*nothing was changed"):
        fix_data_dir(root)
    assert (root / "wav.scp").read_bytes() == original and not (root / ".backup").exists()


def test_fix_refuses_bad_ids(tiny_data_dir):
    put(tiny_data_dir / "utt2spk", ["spkA/000 spkA"])
    with pytest.raises(DataError, match=where("utt2spk", 1) + ".*rename"):
        fix_data_dir(tiny_data_dir)
    put(tiny_data_dir / "utt2spk", ["spkA_000 spkA", "spkA_001 spk A"])
    with pytest.raises(DataError, match=where("utt2spk", 2) + ".*speaker id 'spk A'"):
        fix_data_dir(tiny_data_dir)
    assert not (tiny_data_dir / ".backup").exists()  # nothing written


# ------------------------------------------------------------------------------- alignments


def test_ctm_and_phones_round_trip(tmp_path):
    ctm = {"u2": [(0.5, 0.25, "B"), (0.0, 0.5, SIL)], "u1": [(0.0, 1 / 16000, "AA")]}
    write_ctm(tmp_path / "phones.ctm", ctm)
    assert lines(tmp_path / "phones.ctm") == ["u1 1 0.000 0.0000625 AA", "u2 1 0.000 0.500 SIL",
                                              "u2 1 0.500 0.250 B"]
    assert read_ctm(tmp_path / "phones.ctm") == {"u1": [(0.0, 1 / 16000, "AA")],
                                                 "u2": [(0.0, 0.5, SIL), (0.5, 0.25, "B")]}
    put(tmp_path / "bad.ctm", ["u1 1 0.0 0.5 A", "u1 1 0.3 0.5 B"])
    with pytest.raises(DataError, match=where("bad.ctm", 2) + ".*overlap"):
        read_ctm(tmp_path / "bad.ctm")
    write_phones_txt(tmp_path / "phones.txt", ["AA", "B", SIL])
    assert lines(tmp_path / "phones.txt") == ["SIL 0", "AA 1", "B 2"]
    assert read_phones_txt(tmp_path / "phones.txt") == [SIL, "AA", "B"]
    put(tmp_path / "p2.txt", ["AA 0", "SIL 1"])
    with pytest.raises(DataError, match=where("p2.txt", 1) + ".*must be SIL"):
        read_phones_txt(tmp_path / "p2.txt")


def test_frame_labels_hand_made_ctm():
    # hop 10 ms: centres at 5, 15, 25, ... ms
    segs = [(0.0, 0.02, SIL), (0.02, 0.015, "AH"), (0.035, 0.02, "B"), (0.06, 0.01, "K")]
    got = frame_labels(segs, 8, 0.01)
    # centre 5,15->SIL; 25->AH; 35->B (35 is B's start); 45->B; 55->gap->SIL; 65->K; 75->none
    assert got == [SIL, SIL, "AH", "B", "B", SIL, "K", SIL]
    assert frame_labels(segs[::-1], 3, 0.01, default="?") == [SIL, SIL, "AH"]
    assert frame_labels([], 2, 0.01, default="?") == ["?", "?"]


def test_timit_phn_folding(tmp_path):
    phn = tmp_path / "SA1.PHN"
    put(phn, ["0 3050 h#", "3050 4559 sh", "4559 5723 ix", "5723 6642 hv", "6642 8772 eh",
              "8772 9190 dcl", "9190 10337 jh", "10337 11517 q", "11517 12400 ax-h",
              "12400 13000 pau", "13000 13500 epi", "13500 14000 zh"])
    segs = timit_phn_to_segments(phn)
    got = [(round(s * 16000), round((s + d) * 16000), p) for s, d, p in segs]
    assert got == [(0, 3050, SIL), (3050, 4559, "SH"), (4559, 5723, "IH"), (5723, 6642, "HH"),
                   (6642, 8772, "EH"), (8772, 9190, SIL), (9190, 11517, "JH"),
                   (11517, 12400, "AH"), (12400, 13500, SIL), (13500, 14000, "SH")]
    raw = timit_phn_to_segments(phn, fold=False)
    assert [p for _, _, p in raw][:9] == [SIL, "SH", "IX", "HV", "EH", "DCL", "JH", "Q", "AX-H"]
    assert len(TIMIT_FOLD) == 60 and len(set(TIMIT_FOLD.values())) == 39
    put(phn, ["0 100 h#", "100 200 xx"])
    with pytest.raises(DataError, match=where("SA1.PHN", 2) + ".*unknown TIMIT phone"):
        timit_phn_to_segments(phn)


TIERS = [("IntervalTier", "words", [(0.0, 0.3, ""), (0.3, 1.2, "hello")]),
         ("TextTier", "events", [(0.5, "x")]),
         ("IntervalTier", "phones", [(0.0, 0.25, ""), (0.25, 0.3, "sp"), (0.3, 0.5, "HH"),
                                     (0.5, 0.7, "AH0"), (0.7, 0.9, "L"), (0.9, 1.1, "OW1"),
                                     (1.1, 1.2, "spn")])]


@pytest.mark.parametrize("long", [True, False])
def test_textgrid_long_and_short(tmp_path, long):
    path = tmp_path / "a.TextGrid"
    path.write_text(textgrid(TIERS, long))
    segs = read_textgrid_phones(path)
    got = [(round(s, 6), round(s + d, 6), p) for s, d, p in segs]
    assert got == [(0.0, 0.3, SIL), (0.3, 0.5, "HH"), (0.5, 0.7, "AH"), (0.7, 0.9, "L"),
                   (0.9, 1.1, "OW"), (1.1, 1.2, SIL)]
    path.write_text(textgrid(TIERS, long).replace('"phones"', '"p225 - phones"'), encoding="utf-16")
    assert read_textgrid_phones(path) == segs  # MFA multi-speaker tier names, Praat UTF-16
    with pytest.raises(DataError, match="no interval tier named 'syllables'"):
        read_textgrid_phones(path, tier="syllables")
    path.write_text(textgrid(TIERS, long)[:-60])
    with pytest.raises(DataError, match="a.TextGrid.*not a valid Praat TextGrid"):
        read_textgrid_phones(path)


def test_frame_labels_from_timit_match_sample_timing(tmp_path):
    phn = tmp_path / "x.phn"
    put(phn, ["0 400 h#", "400 1000 aa", "1000 1600 b"])
    n = -(-1600 // 160)
    labels = frame_labels(timit_phn_to_segments(phn), n, 160 / 16000)
    # frame centres at 80, 240, 400 (start of aa), ...: [0,400) SIL, [400,1000) AA, then B
    assert labels == [SIL, SIL, "AA", "AA", "AA", "AA", "B", "B", "B", "B"]
