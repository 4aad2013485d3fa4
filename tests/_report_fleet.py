"""Tiny fleets built straight from the model, for the presentation tests
(report, CLI, widgets, notebooks) — no engine needed.

``article_fleet()`` mirrors the article's scenario in miniature: two apps built
naively (each installs everything itself, in a different order) and the same
two apps on shared bases (os -> security -> tools -> libs -> app).
"""
from __future__ import annotations

import hashlib

from layerlab.model import Fleet, HistoryStep, Image, Layer, pair_by_empty_layer

XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '"><img src=x onerror="window.__pwned=2">'


def did(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def make_image(ref: str, steps: list[tuple[str, int | None]], role: str | None = None) -> Image:
    """``steps``: (command, size) — size None means an empty (metadata-only) step."""
    layers, hist = [], []
    for i, (cmd, size) in enumerate(steps):
        empty = size is None
        hist.append(HistoryStep(index=i, created_by=cmd, empty_layer=empty))
        if not empty:
            # content identity is the command text (same step => same diff_id)
            layers.append(Layer(position=len(layers), diff_id=did(cmd), size=size, compressed_size=size // 3))
    pair_by_empty_layer(hist, len(layers))
    config = {"config": {"Labels": {"org.layerlab.sample.role": role}}} if role else None
    return Image(
        reference=ref, source="test", layer_list=layers, history_list=hist, platform="linux/amd64", config=config
    )


OS = ("ADD rootfs.tar.xz / # debian minbase", 80_000_000)
SEC = ("RUN apt-get install -y ca-certificates openssl", 12_000_000)
TOOLS = ("RUN apt-get install -y curl git", 30_000_000)
LIBS = ("RUN pip install numpy pandas", 90_000_000)


def article_fleet() -> Fleet:
    app1 = ("COPY app1 /srv/app", 2_000_000)
    app2 = ("COPY app2 /srv/app", 3_000_000)
    cmd1 = ("CMD [\"python\", \"/srv/app/main.py\"]", None)
    return Fleet(
        [
            make_image("naive/app1:1", [OS, TOOLS, SEC, LIBS, app1, cmd1], "app: app1 (naive)"),
            make_image("naive/app2:1", [OS, SEC, LIBS, TOOLS, app2, cmd1], "app: app2 (naive)"),
            make_image("layered/f1:1", [OS, SEC], "base: security tools"),
            make_image("layered/f2:1", [OS, SEC, TOOLS], "base: general tools"),
            make_image("layered/f3:1", [OS, SEC, TOOLS, LIBS], "base: libraries"),
            make_image("layered/app1:1", [OS, SEC, TOOLS, LIBS, app1, cmd1], "app: app1 (layered)"),
            make_image("layered/app2:1", [OS, SEC, TOOLS, LIBS, app2, cmd1], "app: app2 (layered)"),
        ]
    )


def xss_fleet() -> Fleet:
    return Fleet(
        [
            make_image("evil/one:1", [OS, (f"RUN echo {XSS_SCRIPT}", 1_000), ("ENV X=1", None)]),
            make_image("evil/two:1", [OS, (f"RUN echo {XSS_IMG}", 2_000)]),
        ]
    )
