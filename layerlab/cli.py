"""The ``layerlab`` command (also ``python -m layerlab``).

::

    layerlab report [SOURCES...] -o report.html [--notebook NAME] [--param k=v ...] [--show-input] [--show-secrets]
    layerlab images SOURCE... [--format table|csv|json|parquet] [-o FILE] [--show-secrets]
    layerlab layers SOURCE... [--format table|csv|json|parquet] [-o FILE] [--show-secrets]
    layerlab history SOURCE... [--format table|csv|json|parquet] [-o FILE] [--show-secrets]
    layerlab secrets SOURCE... [--format table|csv|json|parquet] [-o FILE] [--show-secrets]
    layerlab waste SOURCE... [--format table|csv|json|parquet] [-o FILE]
    layerlab notebooks [DIR] [--force] [--list]
    layerlab check SOURCE [--max-size 500MB] [--max-layers N] [--min-efficiency 0.9] [--max-wasted 50MB]
                   [--max-wasted-percent 10] [--wasted-floor 5MB] [--max-pull 60s@20MB/s]
                   [--ci-config .dive-ci] [--json] [--junit FILE]
    layerlab improve SOURCE DOCKERFILE [-o FILE] [--no-cleanups]
    layerlab scan SOURCE... [--cache DIR|URL] [--scheduler ADDRESS] [--workers N] [--retries N]
                  [--storage-option KEY=VALUE ...] [--dedup | --sql QUERY] [--format …] [-o FILE]

Sources are layerlab source strings (``snapshot:DIR``, ``docker-archive:FILE``,
``oci:DIR``, ``docker-daemon:NAME``, a bare path or name …); a transport
layerlab does not know is refused, naming the known ones.  Errors print one
line (``layerlab: error: …``; the traceback too with ``--debug``) and exit
with status 2; nothing is written but the ``-o`` path.  The frame commands
print a table that fits the terminal (human units, 12-character ids, step
labels; columns that do not fit are named on stderr); ``--format csv|json``
(to stdout or ``-o``) and ``--format parquet -o FILE`` keep every column and
exact value.  ``check`` exits 0 when every budget holds, 1 when one is
broken, 2 on bad input (a bad size string, a bad ``.dive-ci``, a missing image).
``scan`` exits 0 when every source and layer was read, 1 when some failed
(they are printed), 2 on bad input.
Likely secrets (build arguments, tokens, keys in commands,
env and labels) are printed and written masked unless ``--show-secrets``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .errors import LayerlabError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="layerlab",
        description="Container-image layers as DataFrames: frames, sharing, and offline HTML reports.",
    )
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--debug", action="store_true",
                   help="on an error, print the traceback too (accepted anywhere on the command line)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser(
        "report",
        help="write one self-contained report on SOURCES (HTML, or PDF for -o *.pdf): a summary, or a notebook",
        description="Write one self-contained report on SOURCES (no network needed to read it): the summary report "
        "(summary first, then sharing, waste and efficiency, merges, the planner, pulls), or with --notebook a bundled "
        "notebook (see `layerlab notebooks --list`) executed with SOURCES as its `sources` parameter. "
        "-o NAME.pdf prints the same page through Chromium.",
    )
    r.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="images to report on (default: the notebook's own default, the sample in a layerlab checkout)")
    r.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    r.add_argument("--notebook", default=None, metavar="NAME",
                   help="render this notebook instead of the summary: name (02, 02-fleet-overlap, fleet-overlap) "
                   "or path to an .ipynb (--param and --show-input need it)")
    r.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter of the --notebook (needs --notebook: the summary report has none); "
                   "VALUE is read as JSON when it parses, else as text (repeatable)")
    r.add_argument("--show-input", action="store_true", help="include the code cells (hidden by default)")
    r.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--show-secrets", action="store_true",
                   help="show likely secrets (build args, tokens, keys) as they are; masked by default")

    for name, what in (("images", "one row per image"), ("layers", "one row per layer"),
                       ("history", "one row per history step"),
                       ("secrets", "likely credentials in history, config and the files of every layer"),
                       ("waste", "caches and build leftovers each image's final filesystem still shows: the "
                        "layer and step that wrote them and the fix; ll.visible_waste")):
        f = sub.add_parser(name, help=f"print the {name} frame ({what}) or write it as CSV/JSON/Parquet",
                           description=f"Load SOURCES and print the {name}() frame ({what}) as a table that fits "
                           "the terminal (human units, short ids, step labels); --format csv|json|parquet (or -o "
                           "FILE.csv|.json|.parquet) writes every column with exact values instead.")
        f.add_argument("sources", nargs="+", metavar="SOURCE")
        f.add_argument("--format", choices=FORMATS, default=None,
                       help="table (default when printing), csv, json (records), parquet (needs -o FILE); "
                       "default with -o: the file's extension")
        f.add_argument("-o", "--output", default=None,
                       help="write to FILE (.csv, .json or .parquet) instead of printing")
        f.add_argument("--columns", default=None, help="comma-separated columns to keep")
        f.add_argument("--show-secrets", action="store_true",
                       help="show likely secrets in commands (build args, ENV, tokens) as they are; masked by default")

    n = sub.add_parser(
        "notebooks",
        help="copy the bundled notebooks into DIR to open in Jupyter (--list: only list them)",
        description="Copy the notebooks shipped with layerlab into DIR (default ./layerlab-notebooks) to open "
        "in Jupyter; a file there with other content is never overwritten without --force. "
        "With --list, print their names and titles and write nothing.",
    )
    n.add_argument("directory", nargs="?", default="layerlab-notebooks", metavar="DIR",
                   help="where to copy them (default: ./layerlab-notebooks; created if needed)")
    n.add_argument("--force", action="store_true", help="overwrite notebooks of the same name in DIR")
    n.add_argument("--list", action="store_true", help="list the notebooks (what --notebook accepts); copy nothing")
    _add_check_parser(sub)
    i = sub.add_parser(
        "improve",
        help="write the improved Dockerfile of one image (merged steps, caches removed in the RUN that wrote "
        "them) with its predicted size",
        description="Load SOURCE (the image built from DOCKERFILE) and write DOCKERFILE improved by "
        "layerlab.improve: the best non-overlapping merges of steps and same-RUN cleanups of package caches "
        "the image still shows. Prints each change and the image's size now and predicted after; build the "
        "result to check.",
    )
    i.add_argument("source", metavar="SOURCE", help="the image (docker-daemon:NAME, docker-archive:FILE, oci:DIR, …)")
    i.add_argument("dockerfile", metavar="DOCKERFILE", help="the Dockerfile SOURCE was built from")
    i.add_argument("-o", "--output", default=None,
                   help="write the improved Dockerfile here (default: print it); never the input file itself")
    i.add_argument("--no-cleanups", action="store_true", help="merges only, no cache cleanups")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_scan_parser(sub)
    return p


def _add_scan_parser(sub) -> None:
    s = sub.add_parser(
        "scan",
        help="read every distinct layer of a fleet once into the shared cache (a process pool or a Dask "
        "cluster); print the failures, the dedup table or an SQL answer",
        description="Scan SOURCES with layerlab.scan: each distinct layer not yet in the cache is read once, on "
        "a local process pool or on the Dask cluster at --scheduler, into the content-addressed cache (a "
        "directory or an fsspec URL; a second scan reads only new layers). Prints the layers that could not "
        "be read (exit 1 when there are any), or with --dedup the layer- vs file-level dedup table, or with "
        "--sql the rows of a DuckDB query over the views files, layers and images of this scan.",
    )
    s.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="images: docker://host/repo:tag, oci:/path/* (wildcards expanded), docker-archive:FILE, …")
    s.add_argument("--cache", default=None, metavar="DIR|URL",
                   help="the cache: a directory or an fsspec URL such as s3://bucket/prefix "
                   "(default: <layerlab's cache dir>/scan)")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the layer tasks on the Dask cluster of this scheduler (tcp://host:8786); "
                   "default: local processes")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local processes without --scheduler (default: the CPU count; 1: this process)")
    s.add_argument("--retries", type=int, default=2, metavar="N", help="tries again per failed layer (default 2)")
    s.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an fsspec option for the cache (VALUE read as JSON when it parses), e.g. "
                   "endpoint_url=http://127.0.0.1:9000 (repeatable)")
    what = s.add_mutually_exclusive_group()
    what.add_argument("--dedup", action="store_true", help="print the layer- vs file-level dedup table")
    what.add_argument("--sql", default=None, metavar="QUERY",
                      help="print the rows of QUERY, run in DuckDB over the views files, layers and images")
    s.add_argument("--format", choices=FORMATS, default=None,
                   help="table (default when printing), csv, json (records), parquet (needs -o FILE)")
    s.add_argument("-o", "--output", default=None, help="write to FILE (.csv, .json, .parquet, .txt) instead")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_check_parser(sub) -> None:
    c = sub.add_parser(
        "check",
        help="judge one image against CI budgets (size, layers, dive's efficiency rules, pull time); "
        "exit 1 when one is broken",
        description="Judge SOURCE against budgets and print one line per rule (PASS/FAIL/SKIP, value, limit). "
        "Exit 0 when all hold, 1 when a budget is broken, 2 on bad input. Sizes are in Docker's and dive's "
        "units: 500MB = 500,000,000 bytes, 500MiB = 500*2^20. A dive .dive-ci file (--ci-config) gives "
        "lowestEfficiency, highestWastedBytes and highestUserWastedPercent with dive's meaning and defaults; "
        "flags override it.",
    )
    c.add_argument("source", metavar="SOURCE", help="the image (docker-archive:FILE, oci:DIR, docker-daemon:NAME, …)")
    c.add_argument("--max-size", metavar="SIZE", help="largest image size (uncompressed, as `docker images`), e.g. 500MB")
    c.add_argument("--max-layers", metavar="N", help="most filesystem layers")
    c.add_argument("--min-efficiency", metavar="RATIO",
                   help="lowest dive efficiency score, 0-1 (dive's lowestEfficiency), or 'disabled'")
    c.add_argument("--max-wasted", metavar="SIZE",
                   help="most bytes dive counts as wasted (dive's highestWastedBytes), or 'disabled'")
    c.add_argument("--max-wasted-percent", metavar="PERCENT",
                   help="most wasted bytes as a percentage 0-100 of the bytes above the first layer (dive's "
                   "highestUserWastedPercent as a percentage), failing only above --wasted-floor; or 'disabled'")
    c.add_argument("--wasted-floor", metavar="SIZE",
                   help="the percentage rule fails only when the wasted bytes also exceed this (default 5MB for "
                   "--max-wasted-percent; none for a rule read from --ci-config unless given): small images "
                   "trip percentages on apt/dpkg metadata churn alone")
    c.add_argument("--max-pull", metavar="TIME@BANDWIDTH",
                   help="longest predicted `docker pull` on a cold host (moby engine), e.g. 60s@20MB/s")
    c.add_argument("--ci-config", metavar="FILE", help="a dive .dive-ci YAML file of rules")
    c.add_argument("--json", action="store_true", help="print a JSON document instead of the lines")
    c.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one testcase per rule) for CI systems")
    c.add_argument("--no-progress", action="store_true", help="no progress bar while layers are read")

    def one_line(message: str):  # CI logs: a usage error is one line, exit 2, as every other bad input
        print(f"layerlab: error: check: {message} (see `layerlab check --help`)", file=sys.stderr)
        sys.exit(2)

    c.error = one_line  # type: ignore[method-assign]


def _version() -> str:
    from . import __version__

    return f"layerlab {__version__}"


def _waste_frame(fleet):
    """``visible_waste(img).findings`` of every image of ``fleet``, one frame; notes on stderr."""
    import pandas as pd

    from .analysis.visible_waste import VISIBLE_WASTE_COLUMNS, visible_waste
    from .frames import typed_frame

    parts = []
    for img in fleet:
        res = visible_waste(img, progress=sys.stderr.isatty())
        for note in res.notes:
            print(f"layerlab: note: {img.reference}: {note}", file=sys.stderr)
        print(f"layerlab: {res._summary()}", file=sys.stderr)
        parts.append(res.findings)
    return pd.concat(parts, ignore_index=True) if parts else typed_frame([], VISIBLE_WASTE_COLUMNS)


def _frame_command(args) -> int:
    from .sources import load_many

    fmt = _output_format(args)  # a bad -o or --format is said before any image loads
    if fmt == "parquet" and args.output is None:
        raise LayerlabError("--format parquet: Parquet is binary; give the file to write with -o FILE.parquet")
    fleet = load_many(args.sources)
    if args.command == "secrets":
        from .analysis.secrets import secrets

        res = secrets(fleet, mask=not args.show_secrets)
        for note in res.notes:
            print(f"layerlab: note: {note}", file=sys.stderr)
        df = res.to_frame()
    elif args.command == "waste":
        df = _waste_frame(fleet)
        if fmt == "table" and not args.columns:  # what a person reads; csv/json keep every column
            df = df[["image", "position", "step_label", "kind", "confidence", "files", "wasted_bytes", "fix"]]
    else:
        df = getattr(fleet, args.command)()
    if args.columns:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown:
            raise LayerlabError(f"--columns: no column(s) {unknown} in {args.command}(); it has: {', '.join(df.columns)}")
        df = df[cols]
    if not args.show_secrets and args.command != "secrets":  # secrets() masks its own
        df = _masked_frame(df)
    return _emit(df, fmt, args.output, args.command, keep_all=bool(args.columns))


def _emit(df, fmt: str, output, what: str, keep_all: bool = False) -> int:
    """Print ``df`` (a table fitted to the terminal, CSV or JSON) or write it to ``output``."""
    if fmt == "table":
        from ._table import render

        text, dropped = render(df, what, keep_all=keep_all,
                               width=(1 << 20) if output else None)  # a file is not cut to the terminal
        if output is None:
            print(text)
            if dropped:
                print(f"layerlab: note: {len(dropped)} column(s) left out to fit the terminal: {', '.join(dropped)} "
                      "(--columns to choose, --format csv|json for every column)", file=sys.stderr)
            return 0
        _write(Path(output), lambda p: p.write_text(text + "\n", encoding="utf-8"))
    elif fmt == "csv":
        if output is None:
            df.to_csv(sys.stdout, index=False)
            return 0
        _write(Path(output), lambda p: df.to_csv(p, index=False))
    elif fmt == "json":
        if output is None:
            print(df.to_json(orient="records", date_format="iso"))
            return 0
        _write(Path(output), lambda p: df.to_json(p, orient="records", date_format="iso"))
    else:
        _write(Path(output), lambda p: df.to_parquet(p, index=False))
    print(f"wrote {len(df)} rows to {output}", file=sys.stderr)
    return 0


FORMATS = ("table", "csv", "json", "parquet")
_EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".txt": "table"}


def _output_format(args) -> str:
    """The format asked for: ``--format``, else the ``-o`` file's extension, else a table."""
    if args.format:
        return args.format
    if args.output is None:
        return "table"
    fmt = _EXTENSIONS.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise LayerlabError(f"-o {args.output}: say the format by the extension (.csv, .json, .parquet, .txt) "
                            "or with --format csv|json|parquet|table")
    return fmt


def _write(path: Path, write) -> None:
    if path.is_dir():
        raise LayerlabError(f"-o {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise LayerlabError(f"-o {path}: directory {path.parent} does not exist; create it first")
    try:
        write(path)
    except OSError as e:
        raise LayerlabError(f"-o {path}: cannot write it ({e.strerror or e})") from None


def _masked_frame(df):
    """``df`` with likely secrets masked in the columns that carry build text
    (``created_by``, ``author``, ``comment``, ``location``; see ``layerlab.secrets``)."""
    from .analysis._secret_rules import mask_nested

    memo: dict[str, str] = {}
    df = df.copy()
    for col in ("created_by", "author", "comment", "location"):
        if col in df.columns:
            df[col] = df[col].map(lambda v: mask_nested(v, memo) if isinstance(v, str) else v).astype(df[col].dtype)
    return df


def _report_command(args) -> int:
    from . import report

    if (args.param or args.show_input) and args.notebook is None:  # the summary report has no notebook cells
        nbs = [p.name[:2] for p in report.list_notebooks()]
        what = "--param sets a notebook's parameter" if args.param else "--show-input shows a notebook's code"
        raise report.ReportError(f"{what}: add --notebook NN ({nbs[0]}-{nbs[-1]})")
    if args.notebook is None:  # the summary report (no notebook)
        from .reporting.summary import render_summary_report

        out = render_summary_report(args.sources, args.output, progress=not args.no_progress,
                                    mask_secrets=not args.show_secrets)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    params = dict(report.parse_param(p) for p in args.param)
    if args.sources:  # a typo'd transport or a missing path: said before a kernel starts
        from .sources import split_source

        for src in args.sources:
            split_source(src)
    out = report.render_report(
        args.sources or None,
        args.output,
        notebook=args.notebook or report.DEFAULT_NOTEBOOK,
        parameters=params,
        hide_input=not args.show_input,
        timeout=args.timeout,
        progress=not args.no_progress,
        mask_secrets=not args.show_secrets,
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _notebooks_command(args) -> int:
    from . import report

    if args.list:
        for p in report.list_notebooks():
            print(f"{p.stem:32} {report.notebook_title(p)}")
        return 0
    copies = report.copy_notebooks(args.directory, force=args.force)
    for p in copies:
        print(f"{p}  {report.notebook_title(p)}")
    print(f"copied {len(copies)} notebooks into {Path(args.directory).resolve()}; open them with "
          f"`jupyter lab {args.directory}` and set the `sources` parameter (first code cell) to your images",
          file=sys.stderr)
    return 0


def _check_command(args) -> int:
    from .analysis.budget import (
        DEFAULT_WASTED_FLOOR, RULES, check_budgets, dive_budgets, flag_budget, merge_budgets, parse_size,
    )
    from .analysis.diveci import read_dive_ci
    from .sources import load

    floor_given = args.wasted_floor is not None
    floor = parse_size(args.wasted_floor, what="--wasted-floor") if floor_given else DEFAULT_WASTED_FLOOR
    from_file = []
    if args.ci_config:
        from_file = dive_budgets(read_dive_ci(args.ci_config), origin=args.ci_config,
                                 floor=floor if floor_given else 0)
    flags = [flag_budget(rule, getattr(args, rule.replace("-", "_")), floor=floor)
             for rule in RULES if getattr(args, rule.replace("-", "_")) is not None]
    budgets = merge_budgets(from_file, flags)
    if not budgets:
        raise LayerlabError("check: no budgets to check; give --max-size, --max-layers, --min-efficiency, "
                            "--max-wasted, --max-wasted-percent, --max-pull or --ci-config FILE")
    junit = Path(args.junit) if args.junit else None
    if junit is not None and not junit.parent.is_dir():
        raise LayerlabError(f"--junit {junit}: the directory {junit.parent} does not exist")
    img = load(args.source)
    result = check_budgets(img, budgets, progress=not args.no_progress and sys.stderr.isatty())
    if junit is not None:
        try:
            junit.write_text(result.to_junit(), encoding="utf-8")
        except OSError as e:
            raise LayerlabError(f"--junit {junit}: cannot write it ({e.strerror or e})") from None
    print(result.to_json() if args.json else "\n".join(result.lines()))
    return 0 if result.passed else 1


def _improve_command(args) -> int:
    from .analysis.improve import improve
    from .frames import human_bytes
    from .sources import load

    out = Path(args.output) if args.output else None
    if out is not None and out.resolve() == Path(args.dockerfile).resolve():
        raise LayerlabError(f"-o {out}: that is the input Dockerfile; write the improved one elsewhere and compare")
    if out is not None and not out.parent.is_dir():
        raise LayerlabError(f"-o {out}: the directory {out.parent} does not exist")
    imp = improve(load(args.source), Path(args.dockerfile), cleanups=not args.no_cleanups,
                  progress=not args.no_progress and sys.stderr.isatty())
    for r in imp.changes.itertuples(index=False):
        print(f"# {r.change} (lines {r.first_line}-{r.last_line}): saves {human_bytes(r.saved_bytes)}: {r.reason}",
              file=sys.stderr)
    for n in imp.notes:
        print(f"# note: {n}", file=sys.stderr)
    if imp.size_bytes is not None and imp.predicted_size_bytes is not None:
        print(f"# size {human_bytes(imp.size_bytes)} ({imp.size_bytes:,} B) -> predicted "
              f"{human_bytes(imp.predicted_size_bytes)} ({imp.predicted_size_bytes:,} B)", file=sys.stderr)
    if out is None:
        sys.stdout.write(imp.dockerfile)
    else:
        imp.write(out)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _scan_command(args) -> int:
    from . import report
    from .scan.engine import scan as run_scan

    fmt = _output_format(args)  # a bad -o or --format is said before anything is read
    if fmt == "parquet" and args.output is None:
        raise LayerlabError("--format parquet: Parquet is binary; give the file to write with -o FILE.parquet")
    options = dict(report.parse_param(o, "--storage-option") for o in args.storage_option)
    client = _dask_client(args.scheduler) if args.scheduler else None
    try:
        s = run_scan(args.sources, cache=args.cache, client=client, workers=args.workers, retries=args.retries,
                     progress=False if args.no_progress else None, storage_options=options or None)
    finally:
        if client is not None:
            client.close()
    print(f"layerlab: {s._summary()}", file=sys.stderr)
    for note in s.notes:
        print(f"layerlab: note: {note}", file=sys.stderr)
    if args.sql is not None:
        df, what = s.files_sql(args.sql), "sql"
    elif args.dedup:
        d = s.dedup()
        for note in d.notes:
            print(f"layerlab: note: {note}", file=sys.stderr)
        df, what = d.table, "dedup"
    else:
        df, what = s.failures, "failures"
    if fmt == "table":  # ratios for a person to read; csv/json/parquet keep every digit
        df = df.round(3)
    if what != "failures" or len(df) or fmt != "table":
        _emit(df, fmt, args.output, what)
    return 1 if len(s.failures) else 0


def _dask_client(address: str):
    """A ``dask.distributed.Client`` of the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError as e:
        raise LayerlabError(f"--scheduler {address}: dask.distributed is not installed ({e})") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise LayerlabError(f"--scheduler {address}: cannot reach a Dask scheduler there ({e}); check the "
                            "address (tcp://host:8786) and that the scheduler runs") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "check":  # one line, as the check parser's own errors
            print(f"layerlab: error: check: unrecognized arguments: {' '.join(extra)} (see `layerlab check --help`)",
                  file=sys.stderr)
            return 2
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "report":
            return _report_command(args)
        if args.command == "notebooks":
            return _notebooks_command(args)
        if args.command == "check":
            return _check_command(args)
        if args.command == "improve":
            return _improve_command(args)
        if args.command == "scan":
            return _scan_command(args)
        return _frame_command(args)
    except LayerlabError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"layerlab: error: {one_line(str(e), debug)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layerlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed: not an error (silence the flush at exit)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug or an unforeseen failure: still one line, the traceback on request
        if debug:
            raise
        text = " ".join(str(e).split()) or "(no message)"
        print(f"layerlab: error: {type(e).__name__}: {text} (run with --debug for the traceback)", file=sys.stderr)
        return 2


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)):\s*(.*)$")


def one_line(message: str, debug: bool = False) -> str:
    """An error message as one line.  A notebook cell's failure (the report's
    ``cell #N failed while executing:`` and the traceback after it) becomes its
    exception's own message, then where it happened."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if len(lines) <= 1 or debug:
        return message if debug else (lines[0] if lines else message)
    where = lines[0].rstrip(":").replace(" failed while executing", "")
    for ln in reversed(lines):
        m = _EXC_LINE.match(ln)
        if m:
            return f"{m.group(2) or m.group(1)} (in {where}; --debug for the traceback)"
    return f"{lines[0]} {lines[-1]} (--debug for the traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
