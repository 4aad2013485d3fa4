"""The wheel is what users install: it carries the notebooks, and with nothing
but the wheel installed (no checkout on the path, run from elsewhere)
`layerlab report SOURCES -o r.html` and `layerlab notebooks` work.

The wheel is built from a copy of the package files (`pip wheel --no-deps`,
so nothing is written into the checkout) and installed with `pip install
--no-deps --no-index` into a fresh venv made with `--without-pip`.  Its
third-party dependencies are the ones already installed in the test
interpreter's environment, reached through a ``.pth`` line (a plain path, so
the checkout's editable install there is *not* activated), plus nbconvert's
templates (data files pip would put under the venv's ``share/jupyter``) by a
symlink.  The tests check that `layerlab` itself, in the command and in the
notebook's kernel, is imported from the fresh venv.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
BUNDLED = sorted((ROOT / "layerlab" / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=900):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(ROOT / "layerlab", src / "layerlab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", src, "-w", dist, "--no-deps", "-q"], cwd=src)
    (whl,) = dist.glob("layerlab-*.whl")
    return whl


def test_the_wheel_contains_the_notebooks(wheel):
    assert [p.stem for p in BUNDLED][:3] == ["01-tour", "02-fleet-overlap", "03-official-images"]
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for nb in BUNDLED:
            assert f"layerlab/notebooks/{nb.name}" in names
            assert z.read(f"layerlab/notebooks/{nb.name}") == nb.read_bytes()
        assert "layerlab/cli.py" in names and "layerlab/analysis/__init__.py" in names


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent)
    py = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=env_dir.parent)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=env_dir.parent).stdout.strip())
    # the dependencies: this environment's site-packages, after the venv's own (a bare path: its .pth
    # files, such as the checkout's editable install, are not run)
    (site / "zz_layerlab_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    templates = Path(sysconfig.get_paths()["data"]) / "share" / "jupyter" / "nbconvert"
    (env_dir / "share" / "jupyter").mkdir(parents=True)
    (env_dir / "share" / "jupyter" / "nbconvert").symlink_to(templates, target_is_directory=True)
    return env_dir


def _clean_env(venv_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env["PATH"] = str(venv_dir / "bin") + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(venv_dir)
    return env


def test_installed_layerlab_is_the_wheels(venv, tmp_path):
    env = _clean_env(venv)
    out = _run([venv / "bin" / "python", "-c", "import layerlab, layerlab.report as r; "
                "print(layerlab.__file__); print(r.notebooks_dir())"], cwd=tmp_path, env=env).stdout.split()
    assert Path(out[0]).is_relative_to(venv) and not Path(out[0]).is_relative_to(ROOT)
    assert Path(out[1]).is_relative_to(venv)
    # the notebook's kernel runs the venv's python too (what `layerlab report` executes)
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(cells=[new_markdown_cell("# which layerlab"),
                             new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                             new_code_cell("import layerlab, sys\nprint('KERNEL', sys.prefix, layerlab.__file__)")])
    nbformat.write(nb, tmp_path / "which.ipynb")
    _run([venv / "bin" / "layerlab", "report", "--notebook", "which.ipynb", "-o", "which.html", "--show-input",
          "--no-progress"], cwd=tmp_path, env=env)
    line = next(ln for ln in (tmp_path / "which.html").read_text().splitlines() if "KERNEL " in ln and "print" not in ln)
    assert f"KERNEL {venv} {venv}/" in line, line


def test_report_and_notebooks_from_the_installed_wheel(venv, tmp_path):
    if not (SAMPLE / "images.parquet").exists():
        pytest.skip(f"{SAMPLE} is absent")
    env = _clean_env(venv)
    work = tmp_path / "elsewhere"
    work.mkdir()
    layerlab = venv / "bin" / "layerlab"

    p = _run([layerlab, "report", SAMPLE, "-o", "r.html", "--no-progress"], cwd=work, env=env)
    assert "wrote r.html" in p.stderr
    page = (work / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="layerlab-vega-specs"' in page
    assert "layerlab-sample/naive-app1:1" in page

    p = _run([layerlab, "notebooks"], cwd=work, env=env)
    copied = sorted((work / "layerlab-notebooks").glob("*.ipynb"))
    assert [c.name for c in copied] == [b.name for b in BUNDLED]
    assert all(filecmp.cmp(c, b, shallow=False) for c, b in zip(copied, BUNDLED))
    assert "Fleet overlap" in p.stdout
    assert sorted(x.name for x in work.iterdir()) == ["layerlab-notebooks", "r.html"]

    # without SOURCES the notebook's default (the sample of a checkout) is not there: one clear line
    p = subprocess.run([layerlab, "report", "-o", "x.html"], cwd=work, env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "give the images to report on" in p.stderr and "Traceback" not in p.stderr
    assert not (work / "x.html").exists()
