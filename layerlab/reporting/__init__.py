"""The summary report and the offline page machinery every layerlab report uses.

- :mod:`layerlab.reporting.page`: Vega inlined, the Content-Security-Policy,
  script-safe JSON, the stamp line, writing HTML or printing PDF through Chromium
  (also used by the notebook report, :mod:`layerlab.report`);
- :mod:`layerlab.reporting.findings`: the library results the summary report shows;
- :mod:`layerlab.reporting.cells`: escaped text, human sizes, "unknown" with a footnote, tables;
- :mod:`layerlab.reporting.sections`: the report's sections;
- :mod:`layerlab.reporting.summary`: the page and ``render_summary_report``.

Nothing is imported here: ``from layerlab.reporting.summary import render_summary_report``.
"""
