"""Locks on outputs (speechvq.locks): real processes racing for one lock, synchronised on
barriers (no sleeps), a lock left by a killed process, and the dump's checksum."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

from speechvq import cli
from speechvq.errors import LockedError
from speechvq.locks import lock_path, output_lock

SPAWN = mp.get_context("spawn")  # no fork of a process that may hold torch threads
WAIT = 60  # seconds a barrier waits before the test fails instead of hanging


def _race(target: str, start, held, results) -> None:
    """Take the lock when both racers are at `start`; the winner keeps it until the loser has
    tried (`held`), so exactly one may win."""
    start.wait(WAIT)
    try:
        with output_lock(target, command=["racer", str(os.getpid())]):
            held.wait(WAIT)
            results.put(("won", os.getpid(), ""))
    except LockedError as e:
        held.wait(WAIT)
        results.put(("lost", os.getpid(), str(e)))


def test_two_processes_race_for_one_lock_exactly_one_wins(tmp_path):
    target = str(tmp_path / "out")
    start, held, results = SPAWN.Barrier(2), SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=_race, args=(target, start, held, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=WAIT) for _ in procs)
    for p in procs:
        p.join(WAIT)
    assert [g[0] for g in got] == ["lost", "won"]
    (_, _, message), (_, winner, _) = got
    assert f"pid {winner} on " in message and f"racer {winner}" in message
    assert "is being written by another run" in message and "nothing was changed" in message
    assert not lock_path(target).exists()  # the holder removes it


def _hold(target: str, ready, release) -> None:
    with output_lock(target, command=["holder"]):
        ready.set()
        release.wait(WAIT)


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    target = tmp_path / "out"
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=_hold, args=(str(target), ready, release))
    holder.start()
    assert ready.wait(WAIT)
    with pytest.raises(LockedError, match=f"pid {holder.pid} .*holder"):
        with output_lock(target):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(WAIT)
    assert lock_path(target).exists()  # left behind by the killed holder...
    with output_lock(target, command=["next"]) as path:  # ...and taken at once
        assert "next" in path.read_text()
        with output_lock(target):  # re-entrant within one process
            pass
    assert not lock_path(target).exists()


# ------------------------------------------------------------------ a real command: the dump


def _dump_racer(data: str, out: str, start, held, results) -> None:
    """`speechvq dump DATA OUT`; the run that gets the lock waits in its first decode until the
    other has been answered."""
    import speechvq.data.speech.dump as dump_mod

    decode, first = dump_mod._decode_file, [True]

    def waiting(item):
        if first.pop() if first else False:
            held.wait(WAIT)
        return decode(item)

    dump_mod._decode_file = waiting
    start.wait(WAIT)
    code = cli.main(["dump", data, out, "--no-progress"])
    if code != 0:
        held.wait(WAIT)
    results.put(code)


def test_two_dumps_race_for_one_out_the_loser_exits_2(tiny_data_dir, tmp_path, capfd):
    out = tmp_path / "dump"
    start, held, results = SPAWN.Barrier(2), SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=_dump_racer, args=(str(tiny_data_dir), str(out), start, held,
                                                     results)) for _ in range(2)]
    for p in procs:
        p.start()
    codes = sorted(results.get(timeout=WAIT) for _ in procs)
    for p in procs:
        p.join(WAIT)
    assert codes == [0, 2]
    err = capfd.readouterr().err
    assert f"speechvq dump: error: '{out}' is being written by another run (pid " in err
    assert cli.main(["validate", str(out)]) == 0  # the winner's dump is whole
    assert "checksums match" in capfd.readouterr().out


def test_validate_dump_catches_changed_samples(tiny_data_dir, tmp_path, capsys):
    from speechvq.data.speech.dump import dump_data_dir

    out = dump_data_dir(tiny_data_dir, tmp_path / "dump", progress=False)
    audio = np.load(out / "audio.npy", mmap_mode="r+")
    audio[100] ^= 1  # one sample, one bit: the structure is still fine
    audio.flush()
    del audio
    assert cli.main(["validate", str(out)]) == 2
    assert "audio.npy differs from the dump that was made" in capsys.readouterr().err
    meta = json.loads((out / "dump.json").read_text())
    del meta["checksums"]  # a dump made before checksums: structure checked only
    (out / "dump.json").write_text(json.dumps(meta))
    assert cli.main(["validate", str(out)]) == 0
    assert "no checksums recorded" in capsys.readouterr().out



def test_validate_image_dump_catches_a_changed_pixel(tmp_path, capsys):
    from speechvq.data.images.dump import write_dump

    rng = np.random.default_rng(0)
    out = tmp_path / "images"
    write_dump(out, rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), [0, 1, 0, 1],
               ["a", "b"], {"source": "test"})
    assert cli.main(["validate", str(out)]) == 0
    assert "image dump of 4 8x8x3 images, 2 classes, checksums match" in capsys.readouterr().out
    pixels = np.load(out / "images.npy", mmap_mode="r+")
    pixels[1, 2, 3, 0] ^= 1
    pixels.flush()
    del pixels
    assert cli.main(["validate", str(out)]) == 2
    assert "images.npy differs from the dump that was made" in capsys.readouterr().err


def test_validate_video_dump_catches_a_changed_frame(tmp_path, capsys):
    from speechvq.data.video.dump import write_video_dump

    rng = np.random.default_rng(0)
    out = tmp_path / "clips"
    write_video_dump(out, rng.integers(0, 256, (2, 4, 8, 8, 1), dtype=np.uint8), ["a", "b"],
                     {"source": "test"})
    assert cli.main(["validate", str(out)]) == 0
    assert "video dump of 2 clips of 4 8x8x1 frames, checksums match" in capsys.readouterr().out
    clips = np.load(out / "clips.npy", mmap_mode="r+")
    clips[1, 2, 3, 4, 0] ^= 1
    clips.flush()
    del clips
    assert cli.main(["validate", str(out)]) == 2
    assert "clips.npy differs from the dump that was made" in capsys.readouterr().err
