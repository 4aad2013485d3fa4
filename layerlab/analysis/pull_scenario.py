"""What-if questions on the pull-time model: which link gives a pull of N
seconds, and a layered app of a given size and split, built on paper.

* :func:`bandwidth_for`: the bandwidth at which :func:`~layerlab.analysis.pull.pull_time`
  predicts ``seconds`` (the model's time falls as the bandwidth rises; found
  by bisection on a log scale);
* :func:`layered_app_fleet`: a Fleet of bases ``os -> … -> libraries`` and an
  app on top, from a total size and the share of it in the app's own layers;
* :func:`cold_and_warm`: for such an app, the bandwidth that gives a cold
  pull of ``cold_seconds`` and what the pull takes there with the bases on
  the host — per app share, and (given ``warm_seconds``) the share at which
  the model matches a measured warm pull.

Used by notebook 06 for the article's scenario (a 1.9 GB app: over 7 min
cold, 1 min 33 s with its shared bases present).
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping, Sequence

import pandas as pd

from ..errors import AnalysisError
from ..model import Fleet, Image, Layer
from .pull import parse_bandwidth, pull_time

__all__ = ["bandwidth_for", "cold_and_warm", "layered_app_fleet"]

GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BASES = ("os", "security tools", "general tools", "libraries")


def _positive(value: Any, what: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise AnalysisError(f"{fn}(): {what}={value!r}; give a positive, finite number")
    return float(value)


def bandwidth_for(data: Any, target: str, seconds: float, *, present: Any = (),
                  model: Mapping[str, Any] | None = None, low: Any = "1B/s", high: Any = "100GB/s") -> float:
    """Bytes/s at which pulling ``target`` onto a host holding ``present`` takes ``seconds``.

    ``model``: :func:`~layerlab.analysis.pull.pull_time`'s options (``engine``,
    ``host``, ``rtt``, …) as a dict.  The answer lies between ``low`` and
    ``high``; AnalysisError when no bandwidth there gives that time (a pull
    never beats its extraction and fixed costs)."""
    want = _positive(seconds, "seconds", "bandwidth_for")
    opts = dict(model or {})
    if "bandwidth" in opts:
        raise AnalysisError("bandwidth_for(): model= must not hold 'bandwidth' (it is what is solved for)")
    lo, hi = parse_bandwidth(low, what="low"), parse_bandwidth(high, what="high")
    layers = getattr(data, "layers", None)
    data = layers() if callable(layers) else data  # once, not per try

    def t(bw: float) -> float:
        return pull_time(data, target, present=present, bandwidth=bw, **opts).seconds

    fastest, slowest = t(hi), t(lo)
    if want < fastest:
        raise AnalysisError(f"bandwidth_for(): no link up to {high} pulls {target!r} in {want:g} s; even then it "
                            f"takes {fastest:.1f} s (extraction and fixed costs)")
    if want > slowest:
        raise AnalysisError(f"bandwidth_for(): even at {low} the pull of {target!r} takes only {slowest:.1f} s; "
                            f"lower low= to reach {want:g} s")
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if t(mid) > want:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-4:
            break
    return math.sqrt(lo * hi)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def layered_app_fleet(image_bytes: float, app_share: float, *, bases: Sequence[str] = BASES,
                      base_weights: Sequence[float] | None = None, wire_fraction: float = 1.0,
                      prefix: str = "scenario/") -> Fleet:
    """A Fleet of ``bases`` built one on another (``scenario/os``,
    ``scenario/security-tools``, …, each ``FROM`` the previous and adding one
    layer) and ``scenario/app`` on the last, ``image_bytes`` in all.

    ``app_share`` (0–1): the part of ``image_bytes`` in the app's own layer;
    the rest is split over the bases by ``base_weights`` (equal by default).
    ``wire_fraction``: compressed bytes per byte (gzip layers; 1.0 when
    ``image_bytes`` is what crossed the wire).  Sizes are rounded to bytes."""
    total = _positive(image_bytes, "image_bytes", "layered_app_fleet")
    if isinstance(app_share, bool) or not isinstance(app_share, (int, float)) or not 0 < app_share < 1:
        raise AnalysisError(f"layered_app_fleet(): app_share={app_share!r}; give a fraction between 0 and 1")
    wire = _positive(wire_fraction, "wire_fraction", "layered_app_fleet")
    weights = [1.0] * len(bases) if base_weights is None else [float(w) for w in base_weights]
    if not bases or len(weights) != len(bases) or any(not w > 0 for w in weights):
        raise AnalysisError("layered_app_fleet(): give one positive weight per base (and at least one base)")
    sizes = [total * (1 - app_share) * w / sum(weights) for w in weights] + [total * app_share]
    names = [prefix + b.replace(" ", "-") for b in bases] + [prefix + "app"]
    layers: list[Layer] = []
    images = []
    for i, (name, size) in enumerate(zip(names, sizes)):
        layers = layers + [Layer(position=i, diff_id=_digest(f"{name} diff"), digest=_digest(f"{name} blob"),
                                 media_type=GZIP, size=round(size), compressed_size=max(1, round(size * wire)))]
        images.append(Image(reference=f"{name}:1", source="scenario", layer_list=list(layers)))
    return Fleet(images)


def cold_and_warm(image_bytes: float, cold_seconds: float, app_shares: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
                  *, warm_seconds: float | None = None, wire_fraction: float = 1.0,
                  model: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """For a layered app of ``image_bytes`` (:func:`layered_app_fleet`), per
    share of it in the app's own layer: the bandwidth that makes its cold pull
    take ``cold_seconds``, and the pull there with all its bases present.

    With ``warm_seconds`` (a measured warm pull), one more row, ``solved``
    True: the app share at which the model's warm pull takes that long.

    Columns: ``app_share`` (Float64), ``app_bytes``, ``base_bytes`` (Int64),
    ``bandwidth`` (bytes/s, Float64), ``cold_seconds``, ``warm_seconds``
    (Float64, the model's), ``warm_bytes`` (Int64, downloaded warm),
    ``solved`` (boolean).  ``model``: pull_time's options, as a dict."""
    cold = _positive(cold_seconds, "cold_seconds", "cold_and_warm")

    def row(share: float) -> dict:
        fleet = layered_app_fleet(image_bytes, share, wire_fraction=wire_fraction)
        app, bases = fleet[-1].reference, [img.reference for img in fleet[:-1]]
        layers = fleet.layers()
        bw = bandwidth_for(layers, app, cold, model=model)
        warm = pull_time(layers, app, present=bases, bandwidth=bw, **dict(model or {}))
        sizes = [int(x.size) for x in fleet[-1].layer_list]
        return {"app_share": share, "app_bytes": sizes[-1], "base_bytes": sum(sizes[:-1]), "bandwidth": bw,
                "cold_seconds": cold, "warm_seconds": warm.seconds, "warm_bytes": warm.bytes, "solved": False}

    rows = [row(float(s)) for s in app_shares]
    if warm_seconds is not None:
        want = _positive(warm_seconds, "warm_seconds", "cold_and_warm")
        lo, hi = 1e-4, 1 - 1e-4
        if not row(lo)["warm_seconds"] <= want <= row(hi)["warm_seconds"]:
            raise AnalysisError(f"cold_and_warm(): no app share gives a {want:g} s warm pull next to a "
                                f"{cold:g} s cold one under this model")
        for _ in range(16):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if row(mid)["warm_seconds"] < want else (lo, mid)
        rows.append({**row((lo + hi) / 2), "solved": True})
    out = pd.DataFrame(rows)
    return out.astype({"app_share": "Float64", "app_bytes": "Int64", "base_bytes": "Int64", "bandwidth": "Float64",
                       "cold_seconds": "Float64", "warm_seconds": "Float64", "warm_bytes": "Int64",
                       "solved": "boolean"})
