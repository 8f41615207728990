import re
import subprocess
import sys

from pmoe_core import __version__


def run(*args):
    return subprocess.run([sys.executable, "-m", "pmoe_cli", *args], capture_output=True, text=True)


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"pmoe {__version__}"


COMMANDS = ["demo", "synth", "convert", "check", "info", "export", "vocab", "models", "import", "train", "eval", "predict",
            "route-inspect", "plan", "qa"]


def test_help_lists_only_registered_commands():
    """Exactly the working commands, in pipeline order: a new one must be added here on purpose."""
    out = run("--help")
    assert out.returncode == 0
    assert "Usage: pmoe" in out.stdout
    section = out.stdout.split("Commands", 1)[1]
    # rich's box ("│ demo   ..."), its ASCII fallback ("| demo") or click's plain list ("  demo   ...")
    listed = [m.group(1) for m in re.finditer(r"^(?:[│|] |  )([a-z][a-z-]*)\s{2,}", section, flags=re.M)]
    assert listed == COMMANDS


# Modules of the optional extras, made unimportable the way a missing package is (None in sys.modules).
WITHOUT_EXTRAS = """
import sys
for name in ("mujoco", "peft", "gguf", "spconv", "open_clip", "open3d"):
    sys.modules[name] = None
from pmoe_cli.app import main
main(sys.argv[1:])
"""


def test_app_starts_without_the_optional_extras():
    """A core install (`pip install .`) has none of them; tests/test_core_install.py checks a real one (slow)."""
    out = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "--version"], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, f"pmoe {__version__}\n"), out.stderr
    out = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "plan" in out.stdout.split("Commands", 1)[1]


def test_unknown_command_is_usage_error():
    out = run("no-such-command")
    assert out.returncode == 2


def test_pmoe_error_is_one_line_exit_1(monkeypatch, capsys):
    import pytest

    from pmoe_cli import app as app_module
    from pmoe_core.errors import MissingFile

    def boom(*a, **k):
        raise MissingFile("no such file", "/tmp/x.ply")

    monkeypatch.setattr(app_module, "app", boom)
    with pytest.raises(SystemExit) as exc:
        app_module.main([])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "pmoe: error: /tmp/x.ply: no such file\n"
