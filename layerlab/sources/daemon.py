"""``docker-daemon:REF`` — an image in a Docker Engine, read through the docker SDK.

>>> img = layerlab.load("docker-daemon:python:3.12-slim")

What the engine tells us and how we use it:

* ``images.get(ref).attrs`` (``docker image inspect``): ``RootFS.Layers``
  (the diff_ids), ``Id`` (config digest), ``RepoTags``, ``RepoDigests``,
  ``Os``/``Architecture``/``Variant``, ``Created``, ``Size``.
* ``image.history()`` (``docker history``): one entry per history step of the
  image config, newest first.  Its ``Size`` is exact: the engine looks up the
  layer a step made (by chain id) and reports that layer's ``DiffSize`` — the
  same number ``docker history`` shows and the layerdb ``size`` file holds —
  and 0 for steps that made no layer (moby ``daemon/images/image_history.go``).
  What the API does *not* say is which steps made a layer (a layer-making step
  can have size 0: ``RUN rm /big`` writes only a whiteout, BuildKit's
  ``WORKDIR`` an empty dir).  So each layer's size is exact once the steps are
  paired with layers.

Pairing (recorded per history row, ``HistoryStep.pairing``):

``exact_history="auto"`` (default)
    Use the image config itself when it can be read cheaply: a local engine's
    image store keeps it at ``<DockerRootDir>/image/<driver>/imagedb/content/
    sha256/<id>`` (readable when we run as root on the engine's host).  The
    file is accepted only if it hashes to the image id, so a stale or foreign
    file is never trusted.  Its ``history[].empty_layer`` flags give the exact
    pairing (``config``) — Docker's and dive's rule.  Otherwise fall back
    to the evidence pairing of :mod:`layerlab.sources._pairing` (a size > 0
    decides, then the instruction kind, then the layer count settles the rest:
    methods ``size``/``alignment``/``no_layer``).  Steps that leaves ambiguous are
    settled, where the engine still has them, by the per-step images the
    legacy builder leaves (``layer_id``: :func:`pair_by_step_images`); the
    rest stay ``unpaired`` and flagged, never guessed.
``exact_history=True``
    As "auto", but when the store is not readable, stream ``image.save()``
    until the config file passes by (the engine exports the whole image to do
    that, so it costs as much as a ``docker save``; a progress bar shows it).
``exact_history=False``
    The engine's API only (evidence pairing).

Layer contents (:class:`DaemonBlobs`, the BlobProvider): ``image.save()``
streamed through ``tarfile`` in stream mode (``r|``), blobs yielded as they
pass — nothing of the whole image is copied to disk.  See that class for how
the legacy ``docker save`` layout is mapped to layer positions while streaming.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ..errors import EngineError, FormatError
from ..model import (
    PAIRING_NO_LAYER,
    PAIRING_LAYER_ID,
    PAIRING_UNPAIRED,
    HistoryStep,
    Image,
    Layer,
    chain_ids,
)
from ._config import history_from_config, parse_time
from ._engine import (
    client,
    engine_host,
    get_image,
    layer_sizes_from_store,
    read_config_from_store,
)
from ._export import DaemonBlobs, read_config_from_save
from ._pairing import pair_by_evidence
from ._platform import format_platform, matches
from ._stream import short_error


def load(ref: str, transport: str = "docker-daemon", *, exact_history: bool | str = "auto",
         platform: str | None = None, docker_client=None, fill_wire_sizes: bool = False, **_options) -> Image:
    """Read image ``ref`` (name, name:tag, name@digest or id) from the engine;
    ``fill_wire_sizes=True``: the layers' wire sizes from the registry its
    ``RepoDigests`` name (:func:`layerlab.sources.wire.registry_wire_sizes`,
    given the ``docker://`` options among ``_options``)."""
    if exact_history not in ("auto", True, False):
        raise ValueError(f"exact_history must be 'auto', True or False, not {exact_history!r}")
    ref = ref.strip()
    if not ref:
        raise EngineError("docker-daemon: no image named; write e.g. 'docker-daemon:busybox:latest'")
    c = docker_client or client()
    image = get_image(c, ref)
    attrs = image.attrs or {}
    where = f"docker-daemon:{ref}"
    image_id = attrs.get("Id") or image.id
    diff_ids = _diff_ids(attrs, where)

    try:
        api_history = list(reversed(image.history() or []))  # oldest first, like the config
    except Exception as e:  # noqa: BLE001 - APIError / connection trouble
        raise EngineError(f"{where}: the engine at {engine_host()} did not give the image's history: {short_error(e)}") from e

    config = None
    if exact_history in ("auto", True):
        config = read_config_from_store(c, image_id)
        if config is None and exact_history is True:
            config = read_config_from_save(image, image_id, where)

    if config is not None:
        steps = _steps_from_config(config, api_history, len(diff_ids), where)
    else:
        steps = _steps_from_api(api_history)
        pair_by_evidence(steps, len(diff_ids))
        if any(s.pairing == "unpaired" for s in steps):
            pair_by_step_images(c, steps, len(diff_ids))

    sizes: dict[int, int] = {}
    for s in steps:
        if s.layer_position is not None and s.size is not None:
            sizes[s.layer_position] = s.size
    layers = [
        Layer(position=i, diff_id=d, digest=None, media_type=None, size=sizes.get(i), compressed_size=None)
        for i, d in enumerate(diff_ids)
    ]
    warnings: list[str] = []
    missing = [l.position for l in layers if l.size is None]
    if missing:
        # No history step claims these layers (images written without history, or an
        # ambiguous one): ask the engine's layer store for the same DiffSize, when local.
        from_store = layer_sizes_from_store(c, chain_ids(diff_ids))
        for pos in missing:
            if from_store.get(pos) is not None:
                layers[pos].size = from_store[pos]
        still = [l.position for l in layers if l.size is None]
        if still:
            warnings.append(
                f"layers {still} have no size: no history step of the engine's claims them and the engine's "
                "layer store is not readable here"
            )

    plat = format_platform(attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant"))
    if platform and plat and not matches(plat, platform):
        raise EngineError(
            f"{where}: the engine holds this image for {plat}, not {platform}; "
            f"pull that platform (`docker pull --platform {platform} {ref}`) or drop platform="
        )
    if config is None:
        unpaired = [s.index for s in steps if s.pairing == "unpaired"]
        if unpaired:
            warnings.append(
                f"history steps {unpaired} could not be paired with layers from the engine's API alone; "
                "load with exact_history=True to read the image config"
            )
    repo_digests = [d for d in attrs.get("RepoDigests") or [] if isinstance(d, str)]
    img = Image(
        reference=ref,
        source="docker-daemon",
        layer_list=layers,
        history_list=steps,
        id=image_id,
        manifest_digest=_manifest_digest(ref, repo_digests),
        repo_tags=[t for t in attrs.get("RepoTags") or [] if isinstance(t, str)],
        repo_digests=repo_digests,
        platform=plat,
        created=_parse_time(attrs.get("Created")),
        config=config,
        reported_size=attrs.get("Size") if isinstance(attrs.get("Size"), int) else None,
        location=f"docker-daemon:{ref} @ {engine_host()}",
        warnings=warnings,
    )
    img.blobs = DaemonBlobs(image, diff_ids, where)
    if fill_wire_sizes:
        from .wire import registry_wire_sizes

        wire = ("tls_verify", "insecure", "auth", "timeout", "retries", "certs_dir", "docker_config")
        registry_wire_sizes(img, **{k: v for k, v in _options.items() if k in wire})
    return img


# ---------------------------------------------------------------------------
# attrs -> model
# ---------------------------------------------------------------------------
def _diff_ids(attrs: dict, where: str) -> list[str]:
    rootfs = attrs.get("RootFS") or {}
    layers = rootfs.get("Layers") or []
    if not isinstance(layers, list) or not all(isinstance(d, str) and d.startswith("sha256:") for d in layers):
        raise FormatError(f"{where}: the engine's RootFS.Layers is not a list of sha256 digests: {layers!r}")
    return list(layers)


def _manifest_digest(ref: str, repo_digests: list[str]) -> str | None:
    """The registry manifest digest the engine recorded for this reference's repository."""
    if "@" in ref:
        return ref.rsplit("@", 1)[1]
    digests = {d.rsplit("@", 1)[1] for d in repo_digests if "@" in d}
    if len(digests) == 1:
        return digests.pop()
    repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    for d in repo_digests:
        name, _, dig = d.rpartition("@")
        if name == repo or name.endswith("/" + repo):
            return dig
    return None


def _parse_time(value: Any) -> datetime | None:
    """The engine's times: Unix seconds (history API) or RFC 3339 (inspect)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc) if value > 0 else None
    return parse_time(value)


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def _api_size(h: dict) -> int | None:
    size = h.get("Size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _api_id(h: dict) -> str | None:
    i = h.get("Id")
    return i if isinstance(i, str) and i != "<missing>" else None


def _steps_from_api(api_history: list[dict]) -> list[HistoryStep]:
    return [
        HistoryStep(
            index=i,
            created_by=_str(h.get("CreatedBy")),
            created=_parse_time(h.get("Created")),
            comment=_str(h.get("Comment")) or None,
            empty_layer=None,  # the API does not say
            size=_api_size(h),
            id=_api_id(h),
        )
        for i, h in enumerate(api_history)
    ]


def _steps_from_config(config: dict, api_history: list[dict], n_layers: int, where: str) -> list[HistoryStep]:
    """The config's history (:func:`~._config.history_from_config`) with the API's step sizes and ids."""
    steps = history_from_config(config, n_layers, where)
    # The API walks the same config history (one entry per step), so sizes line up 1:1.
    if len(api_history) == len(steps):
        for s, h in zip(steps, api_history):
            s.size = _api_size(h)
            s.id = _api_id(h)
    return steps


def pair_by_step_images(c, steps: list[HistoryStep], n_layers: int) -> None:
    """Pair steps through the engine's per-step images (method ``layer_id``).

    The legacy builder leaves an image behind for every step, and the history
    API names it (``Id``; pulled steps say ``<missing>``).  Each such image has
    its own ``RootFS.Layers``: a step made a layer exactly when its image has
    more layers than the step below it, and that layer's position is its
    image's layer count - 1.  The step below the first named one is the named
    image's ``Parent`` when the engine still has it.  Steps this cannot decide
    keep the pairing they had.
    """
    counts: dict[int, int] = {}
    parents: dict[int, int] = {}
    for s in steps:
        if not s.id:
            continue
        try:
            attrs = c.api.inspect_image(s.id)
        except Exception:  # noqa: BLE001 - the step image may be gone: nothing to learn
            continue
        layers = (attrs.get("RootFS") or {}).get("Layers")
        if isinstance(layers, list):
            counts[s.index] = len(layers)
        parent = attrs.get("Parent")
        if parent:
            try:
                p_layers = (c.api.inspect_image(parent).get("RootFS") or {}).get("Layers")
                if isinstance(p_layers, list):
                    parents[s.index] = len(p_layers)
            except Exception:  # noqa: BLE001
                pass
    decided: dict[int, int | None] = {}
    for s in steps:
        if s.index not in counts:
            continue
        below = counts.get(s.index - 1, parents.get(s.index, 0 if s.index == 0 else None))
        if below is None:
            continue
        n = counts[s.index]
        if n == below + 1 and n <= n_layers:
            decided[s.index] = n - 1
        elif n == below:
            decided[s.index] = None
    if not decided:
        return
    taken = {p for p in decided.values() if p is not None}
    for s in steps:
        if s.index in decided:
            s.layer_position = decided[s.index]
            s.pairing = PAIRING_LAYER_ID if s.layer_position is not None else PAIRING_NO_LAYER
        elif s.layer_position in taken:  # an evidence guess now contradicted
            s.layer_position, s.pairing = None, PAIRING_UNPAIRED
    # steps below the first decided one: pair by evidence against the layers left below it
    first = min(decided)
    below_layers = counts[first] - (0 if decided[first] is None else 1)
    prefix = [s for s in steps if s.index < first]
    if prefix and all(s.pairing == PAIRING_UNPAIRED for s in prefix):
        pair_by_evidence(prefix, below_layers)
