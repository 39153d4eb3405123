"""Training and validation windows of 1-D code sequences: the input before each window (the
code before it, or the start symbol at an utterance's start) and windows anchored at starts."""

from __future__ import annotations

import numpy as np
import pytest

from speechvq.data.code_batches import CodeBatches, validation_batches
from speechvq.data.code_dump import CodeItem, write_code_dump

K = 400
START = K  # the prior's start symbol


@pytest.fixture
def dump(tmp_path):
    ckpt = tmp_path / "vqvae.pt"
    ckpt.write_bytes(b"not a model")
    lengths = (30, 5, 50, 12)
    base = np.cumsum((0,) + lengths[:-1])
    # every code is its position in the dump: a window's codes say where it was cut
    items = [CodeItem(f"u{i}", np.arange(b, b + n), "s0")
             for i, (b, n) in enumerate(zip(base, lengths))]
    return write_code_dump(tmp_path / "codes", items, modality="speech", codebook_size=K,
                           conditions=["s0"], checkpoint=ckpt, source=tmp_path,
                           frame_rate_hz=50.0)


def check_first(dump, batch):
    starts = set(int(o) for o in dump.offsets)
    for codes, first, mask in zip(batch["codes"], batch["first"], batch["mask"]):
        c0 = int(codes[0])
        assert bool(mask[0]) and int(first) == (START if c0 in starts else c0 - 1)


def test_windows_carry_the_input_before_them(dump):
    items = np.arange(len(dump))
    plain = CodeBatches(dump, items, 16, seed=1, crop=10)
    given = CodeBatches(dump, items, 16, seed=1, crop=10, start=START)
    anchored = CodeBatches(dump, items, 16, seed=1, crop=10, start=START, start_share=1.0)
    offsets = set(int(o) for o in dump.offsets)
    inside = 0
    for step in range(4):
        a, b = plain[step], given[step]
        assert "first" not in a and (a["codes"] == b["codes"]).all()  # share 0: same windows
        check_first(dump, b)
        inside += int((b["first"] != START).sum())
        c = anchored[step]
        check_first(dump, c)
        assert set(c["codes"][:, 0].tolist()) <= offsets and (c["first"] == START).all()
    assert inside > 0
    held = validation_batches(dump, items, 4, 10, 10, start=START)
    for batch in held:
        check_first(dump, batch)
    assert "first" not in validation_batches(dump, items, 4, 10, 10)[0]
