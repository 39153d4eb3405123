"""The CLI: help and version, and the error path (one line, exit 2, no traceback)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from speechvq import __version__, cli
from speechvq.config import default_config, load_config_text


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed console script the way a user types it."""
    exe = shutil.which("speechvq")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "speechvq", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def registered_commands() -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(sub.choices)


def test_console_script_is_installed():
    assert shutil.which("speechvq"), "the `speechvq` console script is not on PATH: pip install -e ."


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"speechvq {__version__}"


def test_help_lists_every_registered_command():
    r = run_cli("--help")
    assert r.returncode == 0
    commands = registered_commands()
    assert commands, "no command registered"
    for name in commands:
        assert name in r.stdout


@pytest.mark.parametrize("command", registered_commands())
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert "usage: speechvq " + command in capsys.readouterr().out


def test_help_imports_no_heavy_library():
    """Library modules load inside the commands, so `speechvq --help` stays fast."""
    code = ("import sys; from speechvq import cli; cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'librosa', 'numpy', 'sklearn', 'matplotlib') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_no_command_prints_usage_and_exits_2():
    r = run_cli()
    assert r.returncode == 2 and "usage: speechvq" in r.stderr


def test_config_prints_resolved_yaml_that_round_trips(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  quantizer:\n    codebook_size: 128\n")
    r = run_cli("config", "--config", str(conf), "train.max_steps=10")
    assert r.returncode == 0, r.stderr
    cfg = load_config_text(r.stdout)
    assert cfg.model.quantizer.codebook_size == 128 and cfg.train.max_steps == 10
    plain = run_cli("config", "--no-comments")
    assert "#" not in plain.stdout and load_config_text(plain.stdout) == default_config()
    assert yaml.safe_load(plain.stdout)["seed"] == default_config().seed


@pytest.mark.parametrize("args, needle", [
    (["config", "model.encoder.chanels=3"], "unknown config key 'model.encoder.chanels'"),
    (["config", "train.lr=fast"], "'train.lr' (on the command line) expects float"),
    (["config", "--config", "does/not/exist.yaml"], "config file 'does/not/exist.yaml' does not"),
])
def test_user_errors_are_one_line_exit_2_no_traceback(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"speechvq {args[0]}: error: ")
    assert needle in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ZeroDivisionError("a bug in speechvq")

    def add_broken(sub):
        sub.add_parser("broken").set_defaults(func=broken)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_broken])
    with pytest.raises(ZeroDivisionError):
        cli.main(["broken"])


def test_tiny_fixture_is_a_sorted_consistent_kaldi_dir(tiny_data_dir):
    import soundfile as sf

    def table(name):
        lines = (tiny_data_dir / name).read_text().splitlines()
        assert lines == sorted(lines, key=lambda s: s.encode()), f"{name} not in LC_ALL=C order"
        return dict(line.split(" ", 1) for line in lines)

    scp, u2s = table("wav.scp"), table("utt2spk")
    assert set(scp) == set(u2s) == set(table("text"))
    for utt, path in scp.items():
        assert utt.startswith(u2s[utt] + "_")
        info = sf.info(path)
        assert info.samplerate == 16000 and info.frames == 8000
    spk2utt = {k: v.split() for k, v in table("spk2utt").items()}
    assert sorted(u for us in spk2utt.values() for u in us) == sorted(u2s)
