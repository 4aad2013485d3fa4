"""The per-row reference of :func:`layerlab.analysis.waste.waste_from_results`
(used only by the tests: the library computes waste with Arrow kernels)."""
from __future__ import annotations

import pandas as pd

from layerlab.analysis.waste import WASTE_COLUMNS
from layerlab.frames import typed_frame


def waste_from(img, m, *, base_layers: int = 1) -> pd.DataFrame:
    """:func:`layerlab.analysis.waste.waste` from an already built merge, one row at
    a time (the reference :func:`~layerlab.analysis.waste.waste_from_results` is
    tested against)."""
    steps = {s.layer_position: s for s in img.history_list if s.layer_position is not None}

    def step_of(pos):
        s = steps.get(pos)
        if s is None:
            return None, None
        # an imported layer has no command, only a comment ("Imported from -")
        return s.index, s.created_by or (f"({s.comment})" if s.comment else None)

    rows = []
    order = sorted(
        (r for r in range(len(m.hidden_by)) if m.wasted(r) and m.sizes[r] > 0),
        key=lambda r: (-m.sizes[r], m.paths[r], m.positions[r]),
    )
    for r in order:
        pos, hpos = m.positions[r], m.hidden_by[r]
        si, sc = step_of(pos)
        hi, hc = step_of(hpos)
        rows.append({
            "image": img.reference, "path": m.paths[r], "type": m.types[r], "wasted_bytes": m.sizes[r],
            "position": pos, "step": si, "created_by": sc, "hidden_by_position": hpos, "hidden_by_step": hi,
            "hidden_by_created_by": hc, "how": m.how[r], "above_base": hpos >= base_layers,
        })
    return typed_frame(rows, WASTE_COLUMNS)
