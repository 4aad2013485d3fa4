"""Execute a notebook with parameters and write one self-contained HTML report.

>>> from layerlab import report
>>> report.render_report(["snapshot:data/sample"], "report.html")

How it works:

1. ``execute_notebook`` runs a bundled notebook (``layerlab/notebooks/``,
   package data found with ``importlib.resources``) or any ``.ipynb``
   with nbclient, top to bottom, in the notebook's own directory, with a
   progress bar.  Parameters follow papermill's convention: the cell tagged
   ``parameters`` holds the defaults, and a cell tagged
   ``injected-parameters`` is inserted right after it with the caller's values.
   (papermill would do this too, but pulls click/requests/aiohttp in for what
   is ~30 lines here; notebooks written this way run under papermill as well.)
   A hidden first cell switches altair to its ``mimetype`` renderer so that
   charts are stored as Vega-Lite JSON, not as HTML that loads Vega from a CDN.
2. ``notebook_to_html`` exports the executed notebook with nbconvert's ``lab``
   template, minus every script tag it would load from a CDN (require.js,
   MathJax, mermaid, the widget manager).  Each Vega-Lite output becomes an
   empty ``<div>``; the specs travel in one ``<script type="application/json">``
   block (``<``, ``>`` and ``&`` escaped, so no string in the data can close
   the tag) and one inline module script — Vega, Vega-Lite and vega-embed from
   ``vl_convert.javascript_bundle()`` — draws them.  A Content-Security-Policy
   allows only those two scripts (by hash) and no network at all, so even
   markup that slipped into an output could neither run nor fetch anything.
   (That machinery is :mod:`layerlab.reporting.page`, shared with the
   summary report ``layerlab report`` writes without ``--notebook``.)

Nothing is written but the ``output`` path.
"""
from __future__ import annotations

import ast
import copy
import html
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from .reporting.page import chart_scripts, check_output, write_page
from .reporting.page import stamp_html as _stamp_html
from .notebooks import (  # noqa: F401 - finding notebooks is part of the report's API
    ReportError,
    copy_notebooks,
    list_notebooks,
    notebook_path,
    notebook_title,
    notebooks_dir,
)

DEFAULT_NOTEBOOK = "02-fleet-overlap"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
SETUP_TAG = "layerlab-report-setup"

_VEGALITE_MIME = re.compile(r"^application/vnd\.vegalite\.v\d+[+.]json$")
_VEGA_MIME = re.compile(r"^application/vnd\.vega\.v\d+[+.]json$")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# Transports whose reference is a local path (made absolute before the
# notebook runs in its own directory).
_PATH_TRANSPORTS = {"docker-archive", "oci", "oci-archive", "history", "manifest", "repo-info", "snapshot"}


# -- parameters -----------------------------------------------------------
def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def notebook_parameters(nb) -> dict[str, Any]:
    """Names and default values declared in the notebook's ``parameters`` cell
    (values that are not literals are given as their source text)."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETERS_TAG in _tags(cell):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError as e:
                raise ReportError(f"the parameters cell does not parse as Python ({e})") from e
            for node in tree.body:
                targets = []
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets, value = [node.target], node.value
                for t in targets:
                    if isinstance(t, ast.Name):
                        try:
                            out[t.id] = ast.literal_eval(value)
                        except ValueError:
                            out[t.id] = ast.get_source_segment(cell.source, value)
    return out


def _py_literal(value: Any, name: str) -> str:
    """A Python literal for a JSON-like value (repr round-trips these exactly)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py_literal(v, name) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_py_literal(str(k), name)}: {_py_literal(v, name)}" for k, v in value.items()) + "}"
    raise ReportError(
        f"parameter {name!r}: a {type(value).__name__} cannot be passed to a notebook; "
        "use str, int, float, bool, None, or lists/dicts of them"
    )


def parse_param(text: str, flag: str = "--param") -> tuple[str, Any]:
    """``k=v`` from the command line (the option ``flag``): ``v`` as JSON when it
    parses (numbers, true/false/null, lists), else as the plain string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ReportError(f"{flag} {text!r}: expected NAME=VALUE with NAME a Python identifier")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def inject_parameters(nb, parameters: Mapping[str, Any]) -> Any:
    """Return a copy of ``nb`` with an ``injected-parameters`` cell after the
    ``parameters`` cell (papermill's convention).  Unknown names are an error."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in _tags(c)]
    if not parameters:
        return nb
    declared = notebook_parameters(nb)
    idx = next((i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)), None)
    if idx is None:
        raise ReportError(
            f"parameters {sorted(parameters)} given, but the notebook has no cell tagged {PARAMETERS_TAG!r}"
        )
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ReportError(
            f"unknown parameter(s) {unknown}; this notebook declares: {sorted(declared) or 'none'}"
        )
    lines = ["# Parameters injected by layerlab"]
    lines += [f"{k} = {_py_literal(v, k)}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(idx + 1, cell)
    return nb


def absolute_source(source: str, base: Path | None = None) -> str:
    """Make the path inside a source string absolute (relative to ``base`` or
    the current directory), so the notebook finds it from its own directory."""
    base = Path(base) if base else Path.cwd()
    s = os.fspath(source)
    head, sep, rest = s.partition(":")
    if sep and head in _PATH_TRANSPORTS:
        parts = rest.split("+") if head == "manifest" else [rest]
        fixed = []
        for part in parts:
            # oci:DIR:TAG — keep the tag
            path, tag = part, ""
            if head in ("oci", "oci-archive") and not (base / part).exists() and ":" in part:
                path, _, tag = part.rpartition(":")
            q = base / path
            fixed.append((str(q.resolve()) if q.exists() else path) + (f":{tag}" if tag else ""))
        return f"{head}:{'+'.join(fixed)}"
    if sep and head not in ("", ".", "..") and "/" not in head:
        return s  # docker-daemon:..., docker://..., or a name:tag
    q = base / s
    return str(q.resolve()) if q.exists() else s


# -- execution ------------------------------------------------------------
def _setup_cell():
    import nbformat

    # altair's own "mimetype" renderer (altair 6) stores the spec under a key
    # nbformat rejects ("...vegalite.v6.json"), so register a minimal one.
    src = (
        "# layerlab report: store charts as Vega-Lite JSON (drawn offline in the report)\n"
        "try:\n"
        "    import altair as _alt\n"
        "    def _layerlab_report_renderer(spec, **_meta):\n"
        "        major = _alt.SCHEMA_VERSION.lstrip('v').split('.')[0]\n"
        "        return {f'application/vnd.vegalite.v{major}+json': spec,\n"
        "                'text/plain': '<altair chart: drawn in the HTML report>'}\n"
        "    _alt.renderers.register('layerlab-report', _layerlab_report_renderer)\n"
        "    _alt.renderers.enable('layerlab-report')\n"
        "except ImportError:\n"
        "    pass\n"
        "# and show DataFrames as the reports show tables: human sizes, 'unknown', escaped text\n"
        "try:\n"
        "    from layerlab.frames import human_tables as _human_tables\n"
        "    _human_tables()\n"
        "except Exception:\n"
        "    pass\n"
    )
    return nbformat.v4.new_code_cell(src, metadata={"tags": [SETUP_TAG]})


def execute_notebook(
    notebook,
    parameters: Mapping[str, Any] | None = None,
    *,
    for_report: bool = False,
    timeout: int = 600,
    progress: bool = True,
    kernel_name: str = "python3",
):
    """Execute a notebook (name, path or ``NotebookNode``) top to bottom in its
    directory and return the executed ``NotebookNode``.  Nothing is written.

    ``for_report`` stores altair charts as Vega-Lite JSON (a hidden first cell,
    removed again afterwards) for ``notebook_to_html``.  A failing cell raises
    ``ReportError`` naming the notebook, the cell and the error.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(notebook, nbformat.NotebookNode):
        nb, path, label = copy.deepcopy(notebook), None, "<notebook>"
    else:
        path = notebook_path(notebook)
        label = path.name
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # nbformat raises several unrelated types
            raise ReportError(f"{path}: not a readable notebook ({e})") from e
    nb = inject_parameters(nb, dict(parameters or {}))
    if for_report:
        nb.cells.insert(0, _setup_cell())
    cwd = str(path.parent) if path else os.getcwd()

    n_code = sum(1 for c in nb.cells if c.cell_type == "code")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_code, desc=f"executing {label}", unit="cell", leave=True)

    def _done(**_kw):
        if bar is not None:
            bar.update(1)

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": cwd}},
        on_cell_executed=_done,
        # the kernel warns on every start that local TCP is unencrypted; keep stderr for real errors
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    env = dict(os.environ)
    if for_report:
        env["TQDM_DISABLE"] = "1"  # progress bars are widgets in a kernel: noise in a static page
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        cell_no = _failed_cell(nb)
        raise ReportError(f"{label}: cell {cell_no} failed while executing:\n{_short_error(e)}") from None
    except (CellTimeoutError, DeadKernelError) as e:
        raise ReportError(f"{label}: execution stopped ({type(e).__name__}: {e}); raise --timeout or check the kernel") from None
    except Exception as e:
        if type(e).__name__ in ("NoSuchKernel",):
            raise ReportError(f"{label}: no Jupyter kernel {kernel_name!r}; install ipykernel in this environment") from e
        raise
    finally:
        if bar is not None:
            bar.close()
    if for_report:
        nb.cells = [c for c in nb.cells if SETUP_TAG not in _tags(c)]
    return nb


def _failed_cell(nb) -> str:
    code_no = 0
    for c in nb.cells:
        if c.cell_type != "code" or SETUP_TAG in _tags(c):
            continue
        code_no += 1
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                first = (c.source.strip().splitlines() or [""])[0][:80]
                return f"#{code_no} ({first!r})"
    return "?"


def _short_error(e: Exception) -> str:
    text = str(e)
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-12:])


# -- HTML -----------------------------------------------------------------
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_widget_view -%}{%- endblock data_widget_view -%}
"""


def _convert_outputs(nb, notebook_label: str) -> list[dict]:
    """Vega(-Lite) outputs -> placeholder divs (specs collected); widget views
    -> a note; returns the collected specs."""
    specs: list[dict] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            mime = next((m for m in data if _VEGALITE_MIME.match(m) or _VEGA_MIME.match(m)), None)
            if mime is not None:
                spec = data[mime]
                if isinstance(spec, str):
                    spec = json.loads(spec)
                div_id = f"layerlab-chart-{len(specs)}"
                specs.append({"id": div_id, "spec": spec, "mode": "vega-lite" if "vegalite" in mime else "vega"})
                out["data"] = {"text/html": f'<div class="layerlab-chart" id="{div_id}"></div>'}
                out.setdefault("metadata", {})
            elif _WIDGET_MIME in data:
                plain = str(data.get("text/plain", ""))
                if re.search(r"\d+%\|", plain) or "Progress" in plain:
                    out["data"] = {"text/plain": ""}  # a progress bar's leftover: nothing to read
                    continue
                note = (
                    "<p class='layerlab-widget-note'><em>An interactive widget stood here: open "
                    f"<code>{html.escape(notebook_label)}</code> in Jupyter to use it.</em></p>"
                )
                out["data"] = {"text/html": note}
    return specs


def notebook_to_html(
    nb,
    *,
    hide_input: bool = True,
    title: str | None = None,
    notebook_label: str = "the notebook",
    parameters: Mapping[str, Any] | None = None,
    mask_secrets: bool = True,
) -> str:
    """One self-contained HTML page for an executed notebook (see module doc).

    ``mask_secrets`` (default): every likely secret in the outputs and the
    charts' data (a build argument, an ``ENV`` value, a token in a command) is
    shown masked (:func:`layerlab.analysis._secret_rules.mask_secrets`)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    specs = _convert_outputs(nb, notebook_label)
    if mask_secrets:
        specs = _masked(nb, specs)
    if title:
        nb.metadata["title"] = title

    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"layerlab_report.html.j2": _TEMPLATE})],
        template_file="layerlab_report.html.j2",
        exclude_input=hide_input,
        exclude_input_prompt=hide_input,
        exclude_output_prompt=hide_input,
    )
    body, _ = exporter.from_notebook_node(nb)

    stamp = _stamp_html(notebook_label, parameters)
    csp, tail = chart_scripts(specs)
    # <head> gets the CSP first thing; the stamp opens the page; scripts end it.
    body = _remove_cdn_tags(body)
    body = body.replace("<head>", "<head>\n" + csp, 1)
    body = re.sub(r"(<main>)", lambda m: m.group(1) + stamp, body, count=1)
    head, sep, rest = body.rpartition("</body>")
    body = head + tail + sep + rest if sep else body + tail
    return body


def _masked(nb, specs: list[dict]) -> list[dict]:
    """Mask likely secrets in every code cell's outputs (in place) and in ``specs``."""
    from .analysis._secret_rules import mask_nested

    memo: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            for key in ("text", "evalue", "traceback"):
                if key in out:
                    out[key] = mask_nested(out[key], memo)
            data = out.get("data") or {}
            for mime in list(data):
                if mime.startswith("text/") or mime.endswith("json"):  # not images: base64 is not text
                    data[mime] = mask_nested(data[mime], memo)
    return mask_nested(specs, memo)


def _remove_cdn_tags(page: str) -> str:
    """Belt and braces: drop any <script src=http...> or <link href=http...> the
    template still emits (the overridden blocks should leave none)."""
    page = re.sub(r"<script[^>]+src=\"https?://[^\"]*\"[^>]*>\s*</script>", "", page)
    page = re.sub(r"<link[^>]+href=\"https?://[^\"]*\"[^>]*>", "", page)
    return page


# -- the whole job ----------------------------------------------------------
def render_report(
    sources: Iterable[str] | str | None = None,
    output: str | os.PathLike = "report.html",
    *,
    notebook: str | os.PathLike = DEFAULT_NOTEBOOK,
    parameters: Mapping[str, Any] | None = None,
    hide_input: bool = True,
    timeout: int = 600,
    progress: bool = True,
    mask_secrets: bool = True,
) -> Path:
    """Execute ``notebook`` with ``parameters`` (``sources`` goes to its
    ``sources`` parameter, paths made absolute) and write the HTML to ``output``
    (a ``.pdf`` name: the same page printed through Chromium).
    Returns the output path.  Nothing else is written.  Likely secrets are
    masked unless ``mask_secrets=False`` (see :func:`notebook_to_html`)."""
    out = check_output(output)
    params = dict(parameters or {})
    if sources:
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        params["sources"] = [absolute_source(s) for s in sources]
        from .sources import split_source

        for s in params["sources"]:
            split_source(s)  # fail now, not after starting a kernel, on a missing path
    path = notebook_path(notebook)
    if "sources" not in params:
        _check_default_sources(path)
    nb = execute_notebook(path, params, for_report=True, timeout=timeout, progress=progress)
    page = notebook_to_html(
        nb, hide_input=hide_input, notebook_label=path.name, parameters=params, mask_secrets=mask_secrets
    )
    return write_page(page, out)


def _check_default_sources(path: Path) -> None:
    """Fail before starting a kernel when the notebook's default ``sources``
    (paths relative to it, the sample of a layerlab checkout) are not there,
    as in an installed wheel: the user must name the images."""
    import nbformat

    from .errors import SourceError
    from .sources import split_source

    try:
        defaults = notebook_parameters(nbformat.read(path, as_version=4)).get("sources")
    except Exception:  # an unreadable notebook is reported by execute_notebook
        return
    if isinstance(defaults, str):
        defaults = [defaults]
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        return
    for d in defaults:
        try:
            split_source(absolute_source(d, path.parent))
        except SourceError:
            raise ReportError(
                f"{path.name}: its default sources {defaults} are not here (they name the sample of a layerlab "
                "checkout); give the images to report on, e.g. `layerlab report docker-archive:app.tar -o report.html`"
            ) from None
