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


def run(*args, cwd, check=True, columns=None):
    env = dict(os.environ)
    if columns is not None:
        env["COLUMNS"] = str(columns)
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
    p = run("report", rel, "-o", "out.html", "--notebook", "02", "--param", "key=diff_id", "--show-input",
            "--no-progress", cwd=work)
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
    p = run("report", str(snap), "-o", "x.html", "--notebook", "02", "--param", "nope=1", "--no-progress",
            cwd=tmp_path, check=False)
    assert p.returncode == 2
    assert "unknown parameter(s) ['nope']" in p.stderr and "Traceback" not in p.stderr
    p = run("report", str(snap), "--notebook", "no-such-notebook", "-o", "x.html", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "02-fleet-overlap" in p.stderr
    p = run("report", str(snap), "-o", "missing-dir/x.html", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = run("report", str(tmp_path / "nothing-here"), "-o", "x.html", "--no-progress", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "nothing-here" in p.stderr and "Traceback" not in p.stderr
    assert _tree(tmp_path) == set()


def test_param_without_a_notebook_is_one_line_naming_the_fix(snap, tmp_path, monkeypatch, capsys):
    """The summary report has no notebook parameters: --param alone is refused
    before anything loads, rather than switching to a notebook unasked."""
    from layerlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["report", str(snap), "-o", "x.html", "--param", "key=diff_id", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "layerlab: error: --param sets a notebook's parameter: add --notebook NN (01-07)\n"
    assert _tree(tmp_path) == set()
    assert main(["report", str(snap), "-o", "x.html", "--show-input", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "layerlab: error: --show-input shows a notebook's code: add --notebook NN (01-07)\n"
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
    assert rows["layered/f1:1"] == ["2", "92", "MB"]  # OS + SEC = 80,000,000 + 12,000,000 bytes, in human units
    assert len(rows) == 7
    p = run("images", str(snap), "--columns", "bogus", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "bogus" in p.stderr
    p = run("layers", str(snap), "-o", "x.xlsx", cwd=tmp_path, check=False)
    assert p.returncode == 2 and ".csv, .json, .parquet" in p.stderr
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


def test_tables_fit_the_terminal_with_human_units_and_short_ids(snap, tmp_path):
    for command in ("images", "layers", "history"):
        p = run(command, str(snap), cwd=tmp_path, columns=72)
        lines = p.stdout.splitlines()
        assert lines and all(len(ln) <= 72 for ln in lines), command
        assert "sha256:" not in p.stdout
    p = run("layers", str(snap), cwd=tmp_path, columns=200)
    header = p.stdout.splitlines()[0].split()
    assert header[:4] == ["image", "position", "diff_id", "size"]
    f3 = [ln for ln in p.stdout.splitlines() if ln.startswith("layered/f3:1 ")]
    # layer 0 of layered/f3 is OS: 80,000,000 bytes; its diff_id shown as 12 hex characters
    first = f3[0].split()
    assert first[1] == "0" and len(first[2]) == 12 and all(ch in "0123456789abcdef" for ch in first[2])
    assert first[3:5] == ["80", "MB"]
    narrow = run("layers", str(snap), cwd=tmp_path, columns=60)
    assert "left out to fit the terminal" in narrow.stderr and "chain_id" in narrow.stderr


def test_formats_keep_full_data(snap, tmp_path):
    import io
    import json

    csv = pd.read_csv(io.StringIO(run("layers", str(snap), "--format", "csv", cwd=tmp_path).stdout))
    rows = json.loads(run("layers", str(snap), "--format", "json", cwd=tmp_path).stdout)
    f3 = csv[csv["image"] == "layered/f3:1"].sort_values("position")
    assert f3["size"].tolist() == [OS[1], SEC[1], TOOLS[1], LIBS[1]]
    assert f3["diff_id"].str.startswith("sha256:").all() and f3["diff_id"].str.len().eq(71).all()
    assert [r["size"] for r in rows if r["image"] == "layered/f3:1"] == [OS[1], SEC[1], TOOLS[1], LIBS[1]]
    p = run("layers", str(snap), "--format", "parquet", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "-o FILE.parquet" in p.stderr and p.stdout == ""
    run("layers", str(snap), "--format", "parquet", "-o", "l.bin", cwd=tmp_path)
    assert pd.read_parquet(tmp_path / "l.bin")["size"].sum() == csv["size"].sum()


def test_unknown_transport_is_refused_naming_the_known_ones(tmp_path):
    p = run("images", "docker-deamon:x", cwd=tmp_path, check=False)
    assert p.returncode == 2 and p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert line.startswith("layerlab: error: docker-deamon:x: unknown transport 'docker-deamon'")
    assert "did you mean 'docker-daemon'?" in line and "oci-archive" in line and "snapshot" in line
    p = run("report", "oci-achive:app.tar", "-o", "r.html", "--no-progress", cwd=tmp_path, check=False)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "did you mean 'oci-archive'?" in p.stderr
    assert _tree(tmp_path) == set()


def test_errors_are_one_line_and_the_traceback_only_with_debug(tmp_path):
    p = run("layers", "docker-archive:missing.tar", cwd=tmp_path, check=False)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "missing.tar" in p.stderr
    p = run("--debug", "layers", "docker-archive:missing.tar", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "Traceback (most recent call last)" in p.stderr
    assert p.stderr.splitlines()[-1].startswith("layerlab: error: docker-archive:missing.tar")
    p = run("layers", "docker-archive:missing.tar", "--debug", cwd=tmp_path, check=False)
    assert "Traceback" in p.stderr


def test_report_with_a_bad_source_is_one_line(tmp_path):
    """The summary report and a notebook report alike: the user sees the
    source's own message on one line, not a traceback (inside a notebook's
    cell, the line names the cell and points at --debug)."""
    p = run("report", "docker-archive:nothing.tar", "-o", "r.html", "--no-progress", cwd=tmp_path, check=False)
    assert p.returncode == 2
    (line,) = p.stderr.splitlines()
    assert line.startswith("layerlab: error: docker-archive:nothing.tar: no such file")
    assert "Traceback" not in p.stderr
    p = run("report", "docker-archive:nothing.tar", "--notebook", "02", "-o", "r.html", "--no-progress",
            cwd=tmp_path, check=False)
    assert p.returncode == 2
    (line,) = p.stderr.splitlines()
    assert line.startswith("layerlab: error: docker-archive:nothing.tar: no such file")
    assert "--debug" in line and "Traceback" not in p.stderr
    assert _tree(tmp_path) == set()
