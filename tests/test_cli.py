"""The `layerlab` command, run as users run it: `python -m layerlab ...` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from _report_fleet import LIBS, OS, SEC, TOOLS, article_fleet

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd, check=True):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "layerlab", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"layerlab {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "snap"
    article_fleet().save(d)
    return d


def test_report_writes_only_the_output(snap, tmp_path):
    """`python -m layerlab report` with a source relative to the caller's cwd and a --param:
    the HTML is written to -o and nothing else anywhere (cwd, layerlab/notebooks/, the snapshot)."""
    work = tmp_path / "work"
    work.mkdir()
    before_nb = _tree(ROOT / "layerlab" / "notebooks")
    before_snap = _tree(snap)
    rel = os.path.relpath(snap, work)
    p = run("report", rel, "-o", "out.html", "--param", "key=diff_id", "--show-input", "--no-progress", cwd=work)
    assert _tree(work) == {"out.html"}, "the report must write its -o file and nothing else"
    assert _tree(ROOT / "layerlab" / "notebooks") == before_nb
    assert _tree(snap) == before_snap
    page = (work / "out.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    for name in ("naive/app1:1", "layered/f3:1", "layered/app2:1"):
        assert name in page
    assert 'id="layerlab-vega-specs"' in page
    assert "Parameters injected by layerlab" in page  # --show-input shows the injected cell
    assert "Shared bytes between images (by diff_id)" in page  # the parameter reached the notebook
    assert "wrote out.html" in p.stderr


def test_report_errors_are_one_line(snap, tmp_path):
    p = run("report", str(snap), "-o", "x.html", "--param", "nope=1", "--no-progress", cwd=tmp_path, check=False)
    assert p.returncode == 2
    assert "unknown parameter(s) ['nope']" in p.stderr and "Traceback" not in p.stderr
    p = run("report", str(snap), "--notebook", "no-such-notebook", "-o", "x.html", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "02-fleet-overlap" in p.stderr
    p = run("report", str(snap), "-o", "missing-dir/x.html", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run("report", str(tmp_path / "nothing-here"), "-o", "x.html", "--no-progress", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "nothing-here" in p.stderr and "Traceback" not in p.stderr
    assert _tree(tmp_path) == set()


def test_layers_to_csv_and_parquet(snap, tmp_path):
    run("layers", f"snapshot:{snap}", "-o", "l.csv", cwd=tmp_path)
    run("layers", str(snap), "-o", "l.parquet", cwd=tmp_path)
    assert _tree(tmp_path) == {"l.csv", "l.parquet"}
    csv = pd.read_csv(tmp_path / "l.csv")
    pq = pd.read_parquet(tmp_path / "l.parquet")
    # layered/f3 = OS, SEC, TOOLS, LIBS as written in the fixture
    want = [OS[1], SEC[1], TOOLS[1], LIBS[1]]
    for df in (csv, pq):
        f3 = df[df["image"] == "layered/f3:1"].sort_values("position")
        assert f3["size"].tolist() == want
        assert f3["created_by"].tolist() == [OS[0], SEC[0], TOOLS[0], LIBS[0]]
    assert len(csv) == len(pq) == 5 + 5 + 2 + 3 + 4 + 5 + 5


def test_images_prints_a_table(snap, tmp_path):
    p = run("images", str(snap), "--columns", "image,layer_count,size", cwd=tmp_path)
    lines = p.stdout.strip().splitlines()
    assert lines[0].split() == ["image", "layer_count", "size"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert rows["layered/f1:1"] == ["2", str(OS[1] + SEC[1])]
    assert len(rows) == 7
    p = run("images", str(snap), "--columns", "bogus", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "bogus" in p.stderr
    p = run("layers", str(snap), "-o", "x.json", cwd=tmp_path, check=False)
    assert p.returncode == 2 and ".csv or .parquet" in p.stderr
    assert _tree(tmp_path) == set()


def test_param_values_parse_as_json_else_text():
    from layerlab.report import parse_param

    assert parse_param("n=3") == ("n", 3)
    assert parse_param("flag=true") == ("flag", True)
    assert parse_param('xs=["a","b"]') == ("xs", ["a", "b"])
    assert parse_param("key=chain_id") == ("key", "chain_id")
    assert parse_param("path=a=b") == ("path", "a=b")
    from layerlab.errors import LayerlabError

    with pytest.raises(LayerlabError, match="NAME=VALUE"):
        parse_param("no-equals")


def test_notebooks_lists_and_copies_without_overwriting(tmp_path):
    bundled = sorted((ROOT / "layerlab" / "notebooks").glob("*.ipynb"))
    p = run("notebooks", "--list", cwd=tmp_path)
    assert [ln.split()[0] for ln in p.stdout.splitlines()] == [b.stem for b in bundled]
    assert "Fleet overlap: what do these images share?" in p.stdout
    assert _tree(tmp_path) == set(), "--list writes nothing"

    p = run("notebooks", cwd=tmp_path)  # default DIR: ./layerlab-notebooks
    dest = tmp_path / "layerlab-notebooks"
    assert _tree(tmp_path) == {"layerlab-notebooks", *(f"layerlab-notebooks/{b.name}" for b in bundled)}
    assert all((dest / b.name).read_bytes() == b.read_bytes() for b in bundled)
    assert str(dest) in p.stderr

    run("notebooks", cwd=tmp_path)  # again: identical files are fine
    edited = dest / bundled[0].name
    edited.write_text("my edits")
    (dest / bundled[1].name).unlink()
    p = run("notebooks", cwd=tmp_path, check=False)
    assert p.returncode == 2 and bundled[0].name in p.stderr and "--force" in p.stderr
    assert edited.read_text() == "my edits", "never overwritten without --force"
    assert not (dest / bundled[1].name).exists(), "a refused copy copies nothing"
    run("notebooks", str(tmp_path / "other" / "dir"), cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "other" / "dir").iterdir()) == [b.name for b in bundled]
    run("notebooks", "--force", cwd=tmp_path)
    assert edited.read_bytes() == bundled[0].read_bytes()
