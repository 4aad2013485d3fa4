"""Pull time: how many seconds ``docker pull`` takes, from the layers and what the host holds.

The model follows what the engines' code does (each assumption is a
parameter of :func:`pull_time`, defaulted per engine in :data:`ENGINES`):

* **moby** (``docker pull``, classic image store; ``distribution/xfer/
  download.go``): a layer is skipped when its chain id is already in the
  layer store — only a bottom run of layers can be skipped, the first missing
  layer makes every later one a download.  Up to 3 layers download at a time
  (``DefaultMaxConcurrentDownloads``), in manifest order, a download slot
  freeing when its bytes are in; a blob repeated in one image downloads once.
  Each layer is then decompressed, hashed and written (``layerStore.Register``)
  after its own download *and* its parent's registration: one at a time, in
  order.  The config is fetched beside the layers (Linux).  moby knows a
  layer's chain id from the blob digest only when it pulled or pushed that
  blob before: a layer built on the host and never pushed downloads again
  (give ``present`` only what the host pulled).
* **containerd** (transfer service / unpacker): blobs fetched unless the
  content store has the digest, 3 at a time; snapshots unpacked in order, one
  at a time (``max_concurrent_extractions`` when a limiter allows more),
  skipped when the chain id's snapshot exists; config before the layers.
* **podman** (containers/image ``copy``): 6 layers at a time, reuse by digest,
  layers committed to storage in order; config before the layers.

The link: every download in flight shares one ``bandwidth`` equally
(processor sharing, as TCP flows through one bottleneck roughly do); each
request waits one round trip (``rtt``) before its bytes flow.  Before the
layers: ``setup`` seconds (client, daemon and bookkeeping), ``handshake_rtts``
round trips (the ``/v2/`` ping and token) and one round trip for the
manifest; the config costs a round trip and its bytes.  Extracting a layer of
``size`` uncompressed bytes takes ``size/decompress + size/sha256 +
size/write`` at the host's rates (:class:`~layerlab.analysis.hostrates.HostRates`)
plus ``extract_overhead`` seconds.

Checked against real ``docker pull`` (moby 20.10, ``benchmarks/bench_pull.py``)
on a 2-core VM through a throttled link: within 8% at 2 and 5 MB/s on a cold
host, a host with the shared bases and one with an unrelated base; at 20 and
50 MB/s, where a pull lasts under two seconds and extraction and CPU load
weigh, between -26% and +4% from run to run.  containerd and podman are
modelled from their code, not checked against pulls.

Frames give ``compressed_size`` (bytes on the wire) and ``size``
(uncompressed).  A layer to download without a wire size takes
``compressed_size_estimate`` when :func:`layerlab.estimate_wire_sizes` filled
it (a note says how many); without either, :func:`pull_time` refuses, naming
the layers, unless ``unknown_wire="uncompressed"`` lets the uncompressed size
stand in (an upper bound, noted).  A layer to extract without an uncompressed
size takes its compressed size (a lower bound, noted).
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ..errors import AnalysisError
from ._common import resolve_image
from ._gantt_svg import gantt_svg
from ._result import Result
from .hostrates import HostRates, measure_host

__all__ = ["ENGINES", "EngineModel", "PullTime", "parse_bandwidth", "pull_time"]


@dataclass(frozen=True)
class EngineModel:
    """What one engine does while pulling (see the module doc)."""

    name: str
    max_concurrent_downloads: int
    max_concurrent_extractions: int
    key: str                 # presence key for downloads: "chain_id" or "digest"
    prefix_only: bool        # only a bottom run of present layers is skipped (moby)
    config_beside_layers: bool
    handshake_rtts: int
    setup: float             # seconds of fixed cost per pull
    extract_overhead: float  # seconds of fixed cost per extracted layer
    inflate_speed: float     # the engine's decompression rate as a fraction of the host's (zlib/libzstd) rate
    code: str                # where the behaviour comes from


ENGINES: dict[str, EngineModel] = {
    "moby": EngineModel("moby", 3, 1, "chain_id", True, True, 1, 0.15, 0.03, 0.5,
                        "moby distribution/xfer/download.go, daemon/config DefaultMaxConcurrentDownloads=3"),
    "containerd": EngineModel("containerd", 3, 1, "digest", False, False, 1, 0.1, 0.02, 0.5,
                              "containerd transfer service (3 downloads), core/unpack unpacker (1 unpack)"),
    "podman": EngineModel("podman", 6, 1, "digest", False, False, 1, 0.1, 0.02, 0.5,
                          "containers/image copy (maxParallelDownloads=6), storage commit in layer order"),
}

_UNITS = {
    "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4,
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
}
_BW_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*(?:/\s*s)?\s*$", re.IGNORECASE)


def parse_bandwidth(value: Any, *, what: str = "bandwidth") -> float:
    """Bytes per second from a number (bytes/s) or a string in Docker's SI units.

    ``"20MB/s"`` = 20,000,000 B/s (``B``, ``kB``/``KB``, ``MB``, ``GB``, ``TB``:
    powers of 1000, any case); ``KiB``/``MiB``/``GiB``/``TiB``: powers of 1024;
    ``bit``, ``kbit``, ``Mbit``, ``Gbit``: bits (divided by 8).  ``/s`` may
    follow (``"100Mbit/s"``); a bare number is bytes/s.  ``"Mbps"`` is refused
    (bits or bytes? write ``Mbit/s`` or ``MB/s``).
    Raises AnalysisError for anything else, zero, negative or infinite rates."""
    if isinstance(value, bool):
        raise AnalysisError(f"{what}={value!r}: give bytes per second or a string such as '20MB/s'")
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str):
        m = _BW_RE.match(value)
        unit = m.group(2).lower() if m else None
        if not m or unit not in _UNITS and unit != "":
            raise AnalysisError(
                f"{what}={value!r} is not a rate; use bytes/s or a number with one of "
                "B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, bit, kbit, Mbit, Gbit, then '/s' (e.g. '20MB/s')"
            )
        rate = float(m.group(1)) * _UNITS.get(unit, 1)
    else:
        raise AnalysisError(f"{what}={value!r}: give bytes per second or a string such as '20MB/s'")
    if not (rate > 0) or math.isinf(rate):
        raise AnalysisError(f"{what}={value!r}: the rate must be a positive, finite number of bytes per second")
    return rate


def human_rate(rate: float) -> str:
    for unit, f in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if rate >= f:
            return f"{rate / f:.3g} {unit}"
    return f"{rate:.3g} B/s"


def compression_of(media_type: Any) -> str:
    """``gzip``, ``zstd``, ``plain`` or ``unknown`` from a layer media type."""
    if not isinstance(media_type, str) or not media_type:
        return "unknown"
    mt = media_type.lower()
    if "zstd" in mt:
        return "zstd"
    if "gzip" in mt or mt.endswith("docker.image.rootfs.diff.tar.gzip"):
        return "gzip"
    if mt.endswith(".tar") or mt.endswith("+tar") or mt.endswith("layer.v1.tar"):
        return "plain"
    return "unknown"


# -- the link --------------------------------------------------------------

def share_link(sizes: Sequence[float], t0: float, bandwidth: float, rtt: float,
               slots: int) -> tuple[list[float], list[float]]:
    """Start and end times of downloads of ``sizes`` bytes, queued in order at ``t0``.

    At most ``slots`` run at once; a started download waits ``rtt`` before its
    bytes flow; flowing downloads share ``bandwidth`` equally."""
    n = len(sizes)
    start = [math.nan] * n
    end = [math.nan] * n
    remaining = [float(s) for s in sizes]
    flow_at: dict[int, float] = {}
    queue = deque(range(n))
    active: list[int] = []
    t = t0
    eps = 1e-12
    while queue or active:
        while queue and len(active) < slots:
            i = queue.popleft()
            start[i] = t
            flow_at[i] = t + rtt
            active.append(i)
        flowing = [i for i in active if flow_at[i] <= t + eps]
        waiting = [flow_at[i] for i in active if flow_at[i] > t + eps]
        next_flow = min(waiting) if waiting else math.inf
        dt = next_flow - t
        share = bandwidth / len(flowing) if flowing else 0.0
        if flowing:
            dt = min(dt, min(remaining[i] for i in flowing) / share)
        for i in flowing:
            remaining[i] -= share * dt
        t += dt
        for i in list(active):
            if flow_at[i] <= t + eps and remaining[i] <= 1e-6 * max(1.0, sizes[i]):
                end[i] = t
                active.remove(i)
    return start, end


# -- the plan --------------------------------------------------------------

def _layers_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    layers = getattr(data, "layers", None)
    if callable(layers):
        return layers()
    raise AnalysisError(f"pull_time(): data is a {type(data).__name__}; pass a Fleet, an Image or fleet.layers()")


def _value(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


def _host_keys(frame: pd.DataFrame, present: Any, target: str, same_repo: bool = False) -> tuple[set, list[str]]:
    """Every digest, chain id and diff_id on the host: from images in the frame or raw ``sha256:`` keys."""
    if isinstance(present, str):
        present = [present]
    all_names = sorted(set(frame["image"].astype(str)))
    names = set(all_names)
    keys: set = set()
    used: list[str] = []
    for p in present or ():
        if p not in names and not (isinstance(p, str) and p.startswith("sha256:")):
            p = resolve_image(p, all_names, same_repo, "pull_time") or p
        if p == target:
            continue
        if p in names:
            rows = frame[frame["image"].astype(str) == p]
            for col in ("digest", "chain_id", "diff_id"):
                if col in rows:
                    keys.update(str(v) for v in rows[col].dropna())
            used.append(p)
        elif isinstance(p, str) and p.startswith("sha256:"):
            keys.add(p)
        else:
            sample = sorted(names)[:3]
            raise AnalysisError(f"pull_time(): present image {p!r} is not in the data (it has e.g. {sample!r}); "
                                "name images of the data or give digests/chain ids ('sha256:…')")
    return keys, used


def _choose_key(rows: pd.DataFrame, key: str, model: EngineModel) -> str:
    if key not in ("auto", "digest", "chain_id", "diff_id"):
        raise AnalysisError(f"pull_time(): key={key!r}; use 'auto', 'digest', 'chain_id' or 'diff_id'")
    if key != "auto":
        return key
    if model.key == "digest" and ("digest" not in rows or rows["digest"].isna().any()):
        return "chain_id"  # a locally built fleet has no blob digests
    return model.key


def _plan(rows: pd.DataFrame, have: set, key: str, model: EngineModel, notes: list[str],
          unknown_wire: str = "refuse") -> list[dict]:
    """One dict per layer: keys, sizes, compression, whether it downloads and extracts."""
    plan: list[dict] = []
    still_bottom = True
    seen: dict[str, int] = {}
    for _, r in rows.iterrows():
        k = _value(r.get(key))
        chain = _value(r.get("chain_id"))
        wire = _value(r.get("compressed_size"))
        estimate = _value(r.get("compressed_size_estimate"))
        size = _value(r.get("size"))
        present = k is not None and str(k) in have
        if model.prefix_only:
            present = present and still_bottom
            still_bottom = present
        extract_present = present if model.prefix_only or chain is None else str(chain) in have
        dl_key = str(_value(r.get("digest")) or k or f"#{len(plan)}")
        dup = None if present else seen.get(dl_key)
        if not present and dup is None:
            seen[dl_key] = len(plan)
        plan.append({
            "position": int(r["position"]), "digest": _value(r.get("digest")), "chain_id": chain,
            "compression": compression_of(r.get("media_type")), "wire": wire, "estimate": estimate, "size": size,
            "download": not present and dup is None, "extract": not extract_present, "same_as": dup,
        })
    _fill_sizes(plan, notes, unknown_wire, str(rows["image"].iloc[0]) if len(rows) else "?")
    return plan


UNKNOWN_WIRE = ("refuse", "uncompressed")


def _fill_sizes(plan: list[dict], notes: list[str], unknown_wire: str = "refuse", image: str = "?") -> None:
    estimated = [p for p in plan if p["download"] and p["wire"] is None and p.get("estimate") is not None]
    for p in estimated:
        p["wire"] = p["estimate"]
    if estimated:
        notes.append(f"{len(estimated)} layer(s) to download have no stated wire size: their estimate "
                     "(compressed_size_estimate: the layer tar gzipped at Docker's level 6, "
                     "ll.estimate_wire_sizes) stands in")
    no_wire = [p for p in plan if p["download"] and p["wire"] is None]
    if no_wire and unknown_wire != "uncompressed":
        raise AnalysisError(
            f"pull_time(): the wire size of {len(no_wire)} layer(s) of {image!r} to download is unknown "
            f"(positions {[p['position'] for p in no_wire][:10]}): its source states no compressed blob length "
            "(an uncompressed docker-archive/OCI tar, the engine). Load the image from its registry "
            "(docker://…), or run ll.estimate_wire_sizes(fleet) for an estimate, or pass "
            "unknown_wire='uncompressed' to let the uncompressed size stand in (an upper bound)")
    no_size = [p for p in plan if p["extract"] and p["size"] is None]
    for p in plan:
        if p["wire"] is None:
            p["wire"] = p["size"]
        if p["size"] is None:
            p["size"] = p["wire"]
    if no_wire:
        notes.append(f"{len(no_wire)} layer(s) to download have no wire size: their uncompressed size "
                     "stands in, as unknown_wire='uncompressed' asks (more bytes than the wire carries: "
                     "the download time is an upper bound)")
    if no_size:
        notes.append(f"{len(no_size)} layer(s) to extract have no uncompressed size: their compressed size "
                     "stands in (extraction time is a lower bound; a registry does not state sizes: "
                     "ll.measure_sizes(fleet) streams each blob once, cached by diff_id)")
    if any(p["wire"] is None for p in plan if p["download"] or p["extract"]):
        raise AnalysisError("pull_time(): a layer to pull has neither size nor compressed_size; "
                            "load the image from a source that knows its sizes")
    unknown = sum(1 for p in plan if p["extract"] and p["compression"] == "unknown")
    if unknown:
        notes.append(f"{unknown} layer(s) have no known compression: taken as gzip")


# -- the result -------------------------------------------------------------

TIMELINE_COLUMNS: dict[str, str] = {
    "image": "string", "position": "Int64", "digest": "string", "chain_id": "string",
    "compression": "string", "skipped": "boolean", "download": "boolean", "extract": "boolean",
    "bytes": "Int64", "size": "Int64", "download_start": "Float64", "download_end": "Float64",
    "extract_start": "Float64", "extract_end": "Float64",
}


class PullTime(Result):
    """A predicted pull: ``seconds``, the per-layer ``timeline`` frame and notes.

    ``timeline`` columns: ``image``, ``position``, ``digest``, ``chain_id``,
    ``compression``; ``skipped`` (already on the host: neither downloaded nor
    extracted), ``download``, ``extract`` (what the pull does for the layer);
    ``bytes`` (downloaded, 0 when not), ``size`` (uncompressed); and
    ``download_start``/``download_end``/``extract_start``/``extract_end`` in
    seconds from the start of the pull (null where the step does not happen).

    ``repr(p)`` is one line; ``p._repr_html_()`` (Jupyter) shows that line,
    the notes, a timeline (Gantt) chart and the timeline table.  The chart is
    a small static inline SVG drawn by ``analysis/_gantt_svg.py`` as text
    (every label HTML-escaped), not an altair chart: analyses may not import
    ``layerlab.charts``.  For the interactive chart use
    ``layerlab.charts.timeline_chart(p)``."""

    _frame_names = ("timeline",)

    def __init__(self, image: str, seconds: float, timeline: pd.DataFrame, notes: list[str],
                 params: dict[str, Any]):
        self.image = image
        self.seconds = seconds
        self.timeline = timeline
        self.notes = notes
        self.params = params

    @property
    def bytes(self) -> int:
        """Bytes downloaded for the layers."""
        return int(self.timeline["bytes"].sum())

    @property
    def download_seconds(self) -> float:
        """When the last layer byte arrives (0 when nothing downloads)."""
        v = self.timeline["download_end"].max()
        return 0.0 if pd.isna(v) else float(v)

    def _html_figure(self) -> str:
        rows = []
        for r in self.timeline.itertuples(index=False):
            bars = [(step, float(getattr(r, f"{step}_start")), float(getattr(r, f"{step}_end")))
                    for step in ("download", "extract") if pd.notna(getattr(r, f"{step}_start"))]
            label = f"#{int(r.position)}" + (" on the host" if bool(r.skipped) else "")
            ident = _value(r.digest) or _value(r.chain_id) or ""
            rows.append({"label": label, "tip": f"{int(r.bytes):,} bytes downloaded; {ident}",
                         "bars": bars})
        return gantt_svg(rows, self.seconds, title=f"{self.image}: {self.seconds:.1f} s")

    def _summary(self) -> str:
        t = self.timeline
        n = int(t["download"].sum())
        return (f"{self.image}: {self.seconds:.1f} s at {human_rate(self.params['bandwidth'])} "
                f"({self.params['engine']}; {n} of {len(t)} layers, {self.bytes:,} bytes to download)")


def pull_time(data: Any, target: str, *, present: Any = (), bandwidth: Any, engine: str = "moby",
              rtt: float = 0.05, host: HostRates | str | None = None, key: str = "auto",
              max_concurrent_downloads: int | None = None, max_concurrent_extractions: int | None = None,
              setup: float | None = None, handshake_rtts: int | None = None,
              extract_overhead: float | None = None, inflate_speed: float | None = None,
              extract_rate: Any = None, config_bytes: int = 4096, unknown_wire: str = "refuse",
              same_repo: bool = False) -> PullTime:
    """Predict the wall time of pulling ``target`` onto a host that holds ``present``.

    ``data``: a Fleet, an Image or a layers frame (``fleet.layers()``) holding
    ``target`` and the ``present`` images.  ``present``: image names of
    ``data`` (or raw ``sha256:`` digests/chain ids) already on the host.
    ``bandwidth``: bytes/s or a string such as ``"20MB/s"``
    (:func:`parse_bandwidth`).

    Assumptions, each a parameter (``None``: the engine's default from
    :data:`ENGINES`; moby / containerd / podman):

    * ``engine``: ``"moby"``, ``"containerd"`` or ``"podman"``;
    * ``key`` (``"auto"``): what makes a layer present — moby: ``chain_id``
      (only a bottom run skips); containerd, podman: ``digest`` (``chain_id``
      when the data has no digests, e.g. a locally built fleet); or give
      ``"digest"``, ``"chain_id"``, ``"diff_id"``;
    * ``max_concurrent_downloads``: 3 / 3 / 6;
    * ``max_concurrent_extractions``: 1 / 1 / 1 (in layer order, each after
      its parent; above 1, extractions run in any free slot);
    * ``rtt`` (0.05 s): one request's round trip; ``handshake_rtts`` (1):
      round trips before the manifest; the manifest and the config cost one
      each (the config beside the layers for moby, before them otherwise),
      each layer request one before its bytes flow;
    * ``setup`` (0.15 / 0.1 / 0.1 s): fixed cost of a pull (client, daemon,
      image store bookkeeping);
    * ``host``: a :class:`HostRates` (decompression, sha256, write rates),
      ``"measure"`` for :func:`measure_host` (cached), or ``None`` for
      ``HostRates.default()`` (a note says so);
    * ``extract_overhead`` (0.03 / 0.02 / 0.02 s): fixed cost per extracted layer;
    * ``inflate_speed`` (0.5 / 0.5 / 0.5): the engine's gzip/zstd decompression
      rate as a fraction of the host's measured one (the engines are Go
      programs: Go's ``compress/gzip`` inflates at about half zlib's rate);
    * ``extract_rate`` (None): the engine's own end-to-end extraction rate
      (uncompressed bytes/s, or a string like ``"40MB/s"``) when it is known,
      e.g. timed from a pull at full speed; it replaces the host-rate sum above;
    * ``config_bytes`` (4096): the config blob's size;
    * ``unknown_wire`` (``"refuse"``): a layer to download whose wire size is
      unknown (no ``compressed_size``, no ``compressed_size_estimate``) raises
      AnalysisError naming it; ``"uncompressed"`` lets its uncompressed size
      stand in (an upper bound, noted).  Estimates are used when present, noted;
    * ``same_repo`` (False): ``target`` and ``present`` name images by any
      equivalent Docker reference (``busybox`` = ``docker.io/library/busybox:latest``);
      True also joins the same repository on another registry
      (``127.0.0.1:5000/team/app:1`` = ``team/app:1``; :func:`layerlab.reference_key`).

    Returns a :class:`PullTime` (``.seconds``, ``.timeline``, ``.notes``).
    Raises AnalysisError for an unknown engine, image or key, a bad rate, or
    layers without any size."""
    if engine not in ENGINES:
        raise AnalysisError(f"pull_time(): engine={engine!r}; use one of {sorted(ENGINES)}")
    model = _engine(engine, max_concurrent_downloads, max_concurrent_extractions, setup, handshake_rtts,
                    extract_overhead, inflate_speed)
    bw = parse_bandwidth(bandwidth)
    if not isinstance(rtt, (int, float)) or isinstance(rtt, bool) or rtt < 0 or math.isinf(rtt):
        raise AnalysisError(f"pull_time(): rtt={rtt!r}; give a round trip in seconds (>= 0)")
    if unknown_wire not in UNKNOWN_WIRE:
        raise AnalysisError(f"pull_time(): unknown_wire={unknown_wire!r}; use 'refuse' or 'uncompressed'")
    rates, notes = _rates(host)
    frame = _layers_frame(data)
    missing = [c for c in ("image", "position") if c not in frame]
    if missing:
        raise AnalysisError(f"pull_time(): the layers frame lacks {missing}; pass fleet.layers()")
    names = sorted(set(frame["image"].astype(str)))
    target = resolve_image(target, names, same_repo, "pull_time") or target
    rows = frame[frame["image"].astype(str) == str(target)].sort_values("position")
    if rows.empty:
        raise AnalysisError(f"pull_time(): image {target!r} is not in the data (it has e.g. {names[:3]!r})")
    have, used = _host_keys(frame, present, str(target), same_repo)
    chosen = _choose_key(rows, key, model)
    if chosen not in rows:
        raise AnalysisError(f"pull_time(): the layers frame has no {chosen!r} column to match presence on")
    plan = _plan(rows, have, chosen, model, notes, unknown_wire)
    erate = None if extract_rate is None else parse_bandwidth(extract_rate, what="extract_rate")
    seconds, times = _schedule(plan, model, bw, float(rtt), rates, config_bytes, erate)
    timeline = _timeline(str(target), plan, times)
    params = {"engine": engine, "bandwidth": bw, "rtt": float(rtt), "key": chosen, "present": used,
              "model": model, "host": rates}
    return PullTime(str(target), seconds, timeline, notes, params)


def _engine(engine: str, downloads, extractions, setup, handshake, overhead, inflate) -> EngineModel:
    m = ENGINES[engine]
    changes = {k: v for k, v in (("max_concurrent_downloads", downloads), ("max_concurrent_extractions", extractions),
                                 ("setup", setup), ("handshake_rtts", handshake), ("extract_overhead", overhead),
                                 ("inflate_speed", inflate))
               if v is not None}
    for k, v in changes.items():
        integral = k in ("max_concurrent_downloads", "max_concurrent_extractions", "handshake_rtts")
        low = 1 if k.startswith("max_") else 0
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integral and int(v) != v) or v < low \
                or math.isinf(v) or (k == "inflate_speed" and v == 0):
            raise AnalysisError(f"pull_time(): {k}={v!r}; give {'an integer' if integral else 'a number'} >= {low}")
    return replace(m, **changes)


def _rates(host: Any) -> tuple[HostRates, list[str]]:
    if host is None:
        return HostRates.default(), ["host rates are layerlab's defaults, not this host's: "
                                     "pass host=measure_host() or host='measure'"]
    if isinstance(host, str) and host == "measure":
        return measure_host(), []
    if isinstance(host, HostRates):
        return host, []
    raise AnalysisError(f"pull_time(): host={host!r}; pass a HostRates, 'measure' or None")


def _extract_seconds(p: dict, rates: HostRates, model: EngineModel, extract_rate: float | None) -> float:
    size = float(p["size"] or 0)
    if extract_rate is not None:
        return size / extract_rate + model.extract_overhead
    inflate = rates.decompress_rate(p["compression"])
    if p["compression"] != "plain":
        inflate *= model.inflate_speed
    return size / inflate + size / rates.sha256 + size / rates.write + model.extract_overhead


def _schedule(plan: list[dict], model: EngineModel, bw: float, rtt: float, rates: HostRates,
              config_bytes: int, extract_rate: float | None = None) -> tuple[float, list[dict]]:
    """Times per layer and the total, following ``model``."""
    t_manifest = model.setup + rtt * model.handshake_rtts + rtt
    config_end = t_manifest + rtt + config_bytes / bw
    t_layers = t_manifest if model.config_beside_layers else config_end
    dl = [i for i, p in enumerate(plan) if p["download"]]
    starts, ends = share_link([plan[i]["wire"] for i in dl], t_layers, bw, rtt, model.max_concurrent_downloads)
    times = [{"download_start": math.nan, "download_end": math.nan, "extract_start": math.nan,
              "extract_end": math.nan} for _ in plan]
    for i, s, e in zip(dl, starts, ends):
        times[i]["download_start"], times[i]["download_end"] = s, e
    slots = [t_layers] * model.max_concurrent_extractions
    previous_end = t_layers
    for i, p in enumerate(plan):
        if not p["extract"]:
            continue
        if p["download"]:
            ready = times[i]["download_end"]
        elif p["same_as"] is not None:
            ready = times[p["same_as"]]["download_end"]
        else:
            ready = t_layers  # the blob is on the host, its snapshot is not
        if model.max_concurrent_extractions == 1:
            begin = max(ready, previous_end)
        else:
            k = min(range(len(slots)), key=slots.__getitem__)
            begin = max(ready, slots[k])
        finish = begin + _extract_seconds(p, rates, model, extract_rate)
        if model.max_concurrent_extractions > 1:
            slots[k] = finish
        previous_end = finish
        times[i]["extract_start"], times[i]["extract_end"] = begin, finish
    ends_all = [t["extract_end"] for t in times if not math.isnan(t["extract_end"])]
    ends_all += [t["download_end"] for t in times if not math.isnan(t["download_end"])]
    total = max([config_end, t_manifest, *ends_all])
    return total, times


def _timeline(image: str, plan: list[dict], times: list[dict]) -> pd.DataFrame:
    rows = []
    for p, t in zip(plan, times):
        rows.append({
            "image": image, "position": p["position"], "digest": p["digest"], "chain_id": p["chain_id"],
            "compression": p["compression"], "skipped": not p["download"] and not p["extract"]
            and p["same_as"] is None, "download": p["download"], "extract": p["extract"],
            "bytes": int(p["wire"]) if p["download"] else 0, "size": p["size"],
            **{k: (None if math.isnan(v) else v) for k, v in t.items()},
        })
    df = pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
    return df.astype(TIMELINE_COLUMNS)
