"""The ``layerlab`` command (also ``python -m layerlab``).

::

    layerlab report [SOURCES...] -o report.html [--notebook NAME] [--param k=v ...] [--show-input] [--show-secrets]
    layerlab images SOURCE... [-o images.csv|images.parquet] [--show-secrets]
    layerlab layers SOURCE... [-o layers.csv|layers.parquet] [--show-secrets]
    layerlab history SOURCE... [-o history.csv|history.parquet] [--show-secrets]
    layerlab secrets SOURCE... [-o secrets.csv|secrets.parquet] [--show-secrets]
    layerlab notebooks [DIR] [--force] [--list]

Sources are layerlab source strings (``snapshot:DIR``, ``docker-archive:FILE``,
``oci:DIR``, ``docker-daemon:NAME``, a bare path or name …).  Errors print one
line (``layerlab: error: …``) and exit with status 2; nothing is written but
the ``-o`` path.  Likely secrets (build arguments, tokens, keys in commands,
env and labels) are printed and written masked unless ``--show-secrets``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import LayerlabError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="layerlab",
        description="Container-image layers as DataFrames: frames, sharing, and offline HTML reports.",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser(
        "report",
        help="execute a notebook on SOURCES and write one self-contained HTML file",
        description="Execute a bundled notebook (see `layerlab notebooks --list`) with SOURCES as its `sources` parameter and write "
        "one self-contained HTML report (no network needed to read it).",
    )
    r.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="images to report on (default: the notebook's own default, the sample in a layerlab checkout)")
    r.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    r.add_argument("--notebook", default=None, metavar="NAME",
                   help="notebook name (02, 02-fleet-overlap, fleet-overlap) or path to an .ipynb "
                   "(default: 02-fleet-overlap)")
    r.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="set a notebook parameter; VALUE is read as JSON when it parses, else as text (repeatable)")
    r.add_argument("--show-input", action="store_true", help="include the code cells (hidden by default)")
    r.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--show-secrets", action="store_true",
                   help="show likely secrets (build args, tokens, keys) as they are; masked by default")

    for name, what in (("images", "one row per image"), ("layers", "one row per layer"),
                       ("history", "one row per history step"),
                       ("secrets", "likely credentials in history, config and the files of every layer")):
        f = sub.add_parser(name, help=f"print the {name} frame ({what}) or write it as CSV/Parquet",
                           description=f"Load SOURCES and print the {name}() frame ({what}); with -o, write it "
                           "as CSV (.csv) or Parquet (.parquet) instead.")
        f.add_argument("sources", nargs="+", metavar="SOURCE")
        f.add_argument("-o", "--output", default=None, help="write to FILE.csv or FILE.parquet instead of printing")
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
    return p


def _version() -> str:
    from . import __version__

    return f"layerlab {__version__}"


def _frame_command(args) -> int:
    import pandas as pd

    from .sources import load_many

    fleet = load_many(args.sources)
    if args.command == "secrets":
        from .analysis.secrets import secrets

        res = secrets(fleet, mask=not args.show_secrets)
        for note in res.notes:
            print(f"layerlab: note: {note}", file=sys.stderr)
        df = res.to_frame()
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
    if args.output is None:
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                               "display.max_colwidth", 60):
            print(df.to_string(index=False))
        return 0
    out = Path(args.output)
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
    elif out.suffix in (".parquet", ".pq"):
        df.to_parquet(out, index=False)
    else:
        raise LayerlabError(f"-o {out}: say the format by the extension: .csv or .parquet")
    print(f"wrote {len(df)} rows to {out}", file=sys.stderr)
    return 0


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

    params = dict(report.parse_param(p) for p in args.param)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            return _report_command(args)
        if args.command == "notebooks":
            return _notebooks_command(args)
        return _frame_command(args)
    except LayerlabError as e:
        print(f"layerlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layerlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed: not an error (silence the flush at exit)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
