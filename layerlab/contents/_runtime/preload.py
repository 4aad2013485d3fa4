"""Import pandas in the background (once) while this interpreter waits on
other work; frames built afterwards find it imported, or wait for it."""
from __future__ import annotations

import sys
import threading

_STARTED: threading.Thread | None = None


def preload_pandas() -> None:
    global _STARTED
    if "pandas" in sys.modules or _STARTED is not None:
        return

    def run() -> None:
        try:
            import pandas  # noqa: F401
        except Exception:  # noqa: BLE001 - the import where it is needed reports it
            pass

    _STARTED = threading.Thread(target=run, name="layerlab-import-pandas", daemon=True)
    _STARTED.start()
