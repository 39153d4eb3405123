"""Shared pieces of the robustness suite (imported by name, not a conftest: the top-level
tests import theirs as `conftest`): hypothesis settings (derandomised, at most 100
examples, a deadline), strategies that mutate a valid file, and a one-line-error check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from speechvq import cli

#: every fuzz test: the same examples each run, a bounded count, a deadline per example that a
#: loaded shared machine meets (the readers take milliseconds)
FUZZ = settings(max_examples=60, derandomize=True, deadline=timedelta(seconds=3),
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture], database=None)


@st.composite
def mutated(draw, valid: bytes, junk: bytes = b"") -> bytes:
    """`valid` with a few random edits: cut short, bytes replaced, bytes inserted, lines
    dropped or repeated; `junk` adds bytes the format finds hard (quotes, NUL, \\xff, ...)."""
    data = bytearray(valid)
    alphabet = list(b" \t\n\r0123456789.-+eE\"<>[]:=#|&*!") + list(junk or b"\x00\xff\xc3")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "replace", "insert", "drop_line", "repeat_line"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "cut":
            del data[pos:]
        elif kind == "replace" and data:
            data[pos] = draw(st.sampled_from(alphabet + [draw(st.integers(0, 255))]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(max_size=8) | st.sampled_from(
                [b"1e999", b"nan", b"-1", b"99999999999999999999", b"\xe2\x80\xae", b"\xff\xfe",
                 b"\"\"", b"\n\n", b" " * 3]))
        else:
            lines = bytes(data).split(b"\n")
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines[i:i + 1] = [] if kind == "drop_line" else [lines[i], lines[i]]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def inputs(valid: bytes) -> st.SearchStrategy[bytes]:
    """Mutations of a valid file, or arbitrary bytes."""
    return st.one_of(mutated(valid), st.binary(max_size=200))


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str], match: str = "") -> str:
    """Run ``speechvq ARGV`` in-process; it must exit 2 with exactly one error line on stderr
    (containing `match`) and no traceback. Returns: the line."""
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse exits itself
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (argv, rc, err)
    assert len(err) == 1 and ": error: " in err[0], (argv, err)
    assert match in err[0], (argv, match, err)
    return err[0]
