"""A `speechvq dump --nj 2` whose workers block in their first file, for the test that kills the
parent (test_faults.py). Light on purpose: the spawned workers import only this module."""

from __future__ import annotations

import os
import time


def blocking_decode(item):
    """A worker's decode that says it started (a line on the FIFO) and then never finishes."""
    with open(os.environ["SPEECHVQ_TEST_FIFO"], "w") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(600)


def run_blocking_dump(argv: list[str]) -> int:
    """``speechvq dump DATA OUT --nj 2`` with `blocking_decode` as the workers' decode."""
    import speechvq.data.speech.dump as dump_mod
    from speechvq import cli

    dump_mod._decode_file = blocking_decode
    return cli.main(["dump", *argv, "--nj", "2", "--no-progress"])
