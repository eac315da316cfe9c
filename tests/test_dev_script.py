"""scripts/dev's first use: it says what it installs, and its stderr holds no setuptools banner.

pip is replaced by a stand-in (a ``python3`` on PATH whose venv's interpreter records what it is asked and,
for the editable install, warns as setuptools' build backend does, in a child process that inherits the
environment as pip's build does), so the script's own logic runs in well under a second, without a download.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BANNER = "Editable installation.\\n!!\\n  Please be careful with folders in your working directory ...\\n!!"


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A folder for PATH whose ``python3 -m venv DIR`` makes DIR/bin/python, a stand-in for pip."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    venv_python = f"""#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls"
case " $* " in
  *" -e "*) exec {sys.executable} -c "import warnings; warnings.warn('{BANNER}', UserWarning)" ;;
esac
"""
    _executable(bin_dir / "venv-python", venv_python)
    _executable(bin_dir / "python3", f"""#!/usr/bin/env bash
[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin" && cp {bin_dir / "venv-python"} "$3/bin/python"
""")
    return bin_dir


def _dev(fake_python: Path, venv: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env |= {"PATH": f"{fake_python}{os.pathsep}{env['PATH']}", "DENOISE_BENCH_VENV": str(venv), "TORCH_SPEC": "torch"}
    return subprocess.run(["bash", str(REPO / "scripts" / "dev"), *command], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None, reason="needs bash and sha256sum")
def test_first_use_says_what_it_installs_and_keeps_the_editable_banner_off_stderr(fake_python: Path,
                                                                                   tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = _dev(fake_python, venv, "echo", "the command ran")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "the command ran\n"  # the command's output alone
    lines = first.stderr.splitlines()
    assert lines[0].startswith(f"scripts/dev: installing torch and denoise-bench (test and tensorboard extras) into {venv}")
    assert lines[1:] == [f"scripts/dev: {venv} ready in {lines[1].split(' in ')[-1]}"]
    assert "-e" in (venv / "calls").read_text()  # the editable install did run, and warned, silenced
    again = _dev(fake_python, venv, "echo", "again")
    assert (again.returncode, again.stdout, again.stderr) == (0, "again\n", "")  # installed once
