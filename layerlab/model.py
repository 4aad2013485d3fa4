"""The normalised model every source produces: Image, Layer, HistoryStep, Fleet.

Small dataclasses, no I/O.  Sources (``layerlab.sources.*``) build them;
``layerlab.frames`` is the one place that turns them into DataFrames.  The
model never imports a source; the frames, the snapshot writer and the
contents engine sit above it and are imported lazily by the convenience
methods (``Image.files()``, ``Fleet.save()``, …); they see the model only
for typing.

Layer identity is kept three ways:

``diff_id``
    sha256 of the *uncompressed* layer tar (what ``RootFS.diff_ids`` lists).
``digest``
    sha256 of the blob as stored/transferred (compressed for registries,
    often equal to ``diff_id`` for uncompressed saves); ``None`` when the
    source does not know it (the engine's local store, saved history).
``chain_id``
    the OCI ChainID: ``chain_id[0] = diff_id[0]``, then
    ``sha256(chain_id[i-1] + " " + diff_id[i])`` — the key Docker uses to
    decide that a layer *at this position on this base* is shared.
"""
from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

# How a history row was paired with a layer (``HistoryStep.pairing``); the
# value names the evidence, never the layer's content:
PAIRING_CONFIG = "config"             # by the image config's empty_layer flags (Docker's and dive's rule)
PAIRING_LAYER_ID = "layer_id"         # the engine's history gives each layer-making step an image id
PAIRING_SIZE = "size"                 # a reported step size > 0 marks a layer-making step
PAIRING_ALIGNMENT = "alignment"       # instruction kinds aligned to the layer count (repo-info)
PAIRING_NO_LAYER = "no_layer"         # the evidence says the step made no layer (ENV, CMD, empty_layer: true)
PAIRING_UNPAIRED = "unpaired"         # could not be paired: kept and flagged
# Values written before the rename (snapshots keep them): old → current.
PAIRING_RENAMED = {"empty_layer": PAIRING_CONFIG, "empty": PAIRING_NO_LAYER}
PAIRING_METHODS = (
    PAIRING_CONFIG,
    PAIRING_LAYER_ID,
    PAIRING_SIZE,
    PAIRING_ALIGNMENT,
    PAIRING_NO_LAYER,
    PAIRING_UNPAIRED,
)

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
"""diff_id of the 1024-byte empty tar Docker writes for a layer with no changes."""


def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def chain_ids(diff_ids: Sequence[str | None]) -> list[str | None]:
    """OCI ChainIDs for a stack of diff_ids (base first).

    Once a diff_id is unknown every chain id above it is unknown too.
    """
    out: list[str | None] = []
    prev: str | None = None
    for i, d in enumerate(diff_ids):
        if d is None or (i > 0 and prev is None):
            cur = None
        elif i == 0:
            cur = d
        else:
            cur = sha256_text(f"{prev} {d}")
        out.append(cur)
        prev = cur
    return out


class BlobProvider:
    """How a source hands out layer blobs for content analysis: every capability
    the contents engine uses, declared here (sources subclass this).

    ``iter_blobs`` (required) yields ``(positions, media_type, fileobj)`` for the
    requested layer positions (all when ``None``), in whatever order is
    cheapest for the source (a streamed ``docker save`` comes in tar order).
    ``fileobj`` is the blob as stored (possibly compressed) and is valid only
    until the next item is requested.  ``positions`` lists every position
    of the image that uses this blob.

    Optional capabilities (the defaults say "not available"):

    ``independent_readers``
        True when several blobs may be read at once from other threads or
        worker processes (a file on disk, a registry); the engine then scans
        layers in parallel.
    ``header_sizes``
        position -> (Docker size from the tar headers, uncompressed length),
        when the source walked the layer's headers while loading.
    ``byte_range(pos)``
        ``(file, offset, length)`` of the blob of layer ``pos`` when it lies
        in a plain file, so the engine can read it with ``pread``.
    ``take_index(pos)``
        the tar-header index the load walked for that blob (handed over once).
    ``close()``
        release what ``iter_blobs`` held open.
    """

    independent_readers: bool = False
    header_sizes: dict[int, tuple[int, int]] = {}

    def iter_blobs(self, positions: Iterable[int] | None = None) -> Iterator[tuple[list[int], str | None, BinaryIO]]:
        raise NotImplementedError

    def byte_range(self, pos: int) -> tuple[str, int, int] | None:
        return None

    def take_index(self, pos: int) -> Any:
        return None

    def close(self) -> None:
        return None


@dataclass
class Layer:
    """One filesystem layer of one image, at one position."""

    position: int
    diff_id: str | None
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None              # Docker's layer size (file bytes + symlink target lengths; README)
    compressed_size: int | None = None   # the wire blob's length, where the source knows it (never a tar's)
    compressed_size_estimate: int | None = None  # ll.estimate_wire_sizes: gzip level 6 of the layer tar
    chain_id: str | None = None          # filled in by Image.__post_init__
    annotations: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        short = (self.diff_id or self.digest or "?")[:19]
        return f"Layer({self.position}, {short}, size={self.size})"


@dataclass
class HistoryStep:
    """One entry of an image's history (including ones that made no layer)."""

    index: int
    created_by: str | None = None
    created: datetime | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None      # as the source says; None when it does not say
    layer_position: int | None = None    # the layer this step made, if any
    pairing: str = PAIRING_UNPAIRED      # one of PAIRING_METHODS
    truncated: bool = False              # created_by was cut by the source (docker history's table)
    size: int | None = None              # the step size the source reported, if any
    id: str | None = None                # the engine's per-step image id, if any

    def __repr__(self) -> str:
        cmd = (self.created_by or "")[:40]
        return f"HistoryStep({self.index}, layer={self.layer_position}, {cmd!r})"


def pair_by_empty_layer(steps: list[HistoryStep], n_layers: int) -> None:
    """Pair steps with layers using the ``empty_layer`` flags (Docker's and dive's rule).

    Steps with ``empty_layer`` true get no layer; the others take layers in
    order.  Steps left over once layers run out are flagged ``unpaired``; if
    layers are left over, no step claims them (``Image.unpaired_layers``).
    """
    pos = 0
    for s in steps:
        if s.empty_layer:
            s.layer_position = None
            s.pairing = PAIRING_NO_LAYER
        elif pos < n_layers:
            s.layer_position = pos
            s.pairing = PAIRING_CONFIG
            pos += 1
        else:
            s.layer_position = None
            s.pairing = PAIRING_UNPAIRED


@dataclass
class Image:
    """One image (one platform) from any source."""

    reference: str
    source: str                                   # transport: docker-daemon, docker-archive, oci, ...
    layer_list: list[Layer] = field(default_factory=list)
    history_list: list[HistoryStep] = field(default_factory=list)
    id: str | None = None                         # config digest (``docker images --no-trunc`` ID)
    manifest_digest: str | None = None
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    platform: str | None = None                   # os/arch[/variant]
    created: datetime | None = None
    config: dict[str, Any] | None = None          # the image config JSON, when known
    reported_size: int | None = None              # a size the source reported for the whole image
    location: str | None = None                   # the path or reference it was read from
    blobs: BlobProvider | None = field(default=None, repr=False, compare=False)
    files_dir: str | None = field(default=None, repr=False, compare=False)
    """A read-only per-layer file-table cache that came with the image (a snapshot's ``files/``)."""
    warnings: list[str] = field(default_factory=list)
    _memo: Any = field(default=None, init=False, repr=False, compare=False)
    """The contents engine's per-image cache (a :class:`layerlab.contents.memo.ImageMemo`, made on
    first use): the file tables, merge and results computed for these layers, so ``files()``,
    ``filesystem()``, ``efficiency()`` and ``waste()`` read and merge once.  Not part of the
    image's identity; ``dataclasses.replace`` starts a fresh one."""

    def __post_init__(self) -> None:
        self.refresh_chain_ids()

    def refresh_chain_ids(self) -> None:
        for layer, cid in zip(self.layer_list, chain_ids([l.diff_id for l in self.layer_list])):
            layer.chain_id = cid

    # -- derived facts -------------------------------------------------
    @property
    def size(self) -> int | None:
        """Sum of the layers' sizes; None if any is unknown."""
        sizes = [l.size for l in self.layer_list]
        if any(s is None for s in sizes):
            return self.reported_size
        return int(sum(sizes))  # type: ignore[arg-type]

    @property
    def compressed_size(self) -> int | None:
        sizes = [l.compressed_size for l in self.layer_list]
        if not sizes or any(s is None for s in sizes):
            return None
        return int(sum(sizes))  # type: ignore[arg-type]

    @property
    def unpaired_layers(self) -> list[int]:
        claimed = {s.layer_position for s in self.history_list if s.layer_position is not None}
        return [l.position for l in self.layer_list if l.position not in claimed]

    @property
    def has_contents(self) -> bool:
        return self.blobs is not None

    @property
    def has_file_tables(self) -> bool:
        """Layer contents can be listed: blobs to read, or file tables shipped with a snapshot."""
        return self.blobs is not None or self.files_dir is not None

    # -- frames ----------------------------------------------------------
    def layers(self):
        """One row per layer: see ``layerlab.frames.LAYER_COLUMNS``."""
        from . import frames

        return frames.layers_frame([self])

    def history(self):
        """One row per history step: see ``layerlab.frames.HISTORY_COLUMNS``."""
        from . import frames

        return frames.history_frame([self])

    def images(self):
        from . import frames

        return frames.images_frame([self])

    # -- layer contents (layerlab.contents; read from the source, cached by diff_id) --
    def files(self, hash: str | None = "fast", cache_dir=None, progress: bool = True, verify: bool = True,
              workers: int | None = None):
        """One row per (layer, tar entry): see ``layerlab.contents.schema.FILE_COLUMNS``.

        ``hash``: "fast" (xxh128, or blake2b without the xxhash package), "sha256" or None.
        ``cache_dir``: the per-layer Parquet cache (default ``$LAYERLAB_CACHE`` or
        ``~/.cache/layerlab``; False: no cache).  ``verify``: a layer whose content
        does not hash to its diff_id raises DigestMismatchError.
        """
        from .contents.layers import files_frame

        return files_frame([self], hash=hash, cache_dir=cache_dir, progress=progress, verify=verify,
                           workers=workers)

    def filesystem(self, hash: str | None = "fast", cache_dir=None, progress: bool = True, verify: bool = True,
                   workers: int | None = None):
        """The final merged filesystem after whiteouts (OCI rules), one row per visible path,
        with the layer it comes from: see ``layerlab.contents.schema.FILESYSTEM_COLUMNS``."""
        from .contents.layers import filesystem_frame

        return filesystem_frame(self, hash=hash, cache_dir=cache_dir, progress=progress, verify=verify,
                                workers=workers)

    # -- display ---------------------------------------------------------
    def __repr__(self) -> str:
        from .frames import human_bytes

        return (
            f"<layerlab.Image {self.reference!r} from {self.source}: "
            f"{len(self.layer_list)} layers, {human_bytes(self.size)}>"
        )

    def _repr_html_(self) -> str:
        from .frames import human_bytes

        rows = []
        for layer in self.layer_list:
            step = next((s for s in self.history_list if s.layer_position == layer.position), None)
            cmd = (step.created_by or "") if step else ""
            rows.append(
                "<tr><td>{}</td><td>{}</td><td style='text-align:right'>{}</td><td><code>{}</code></td></tr>".format(
                    layer.position,
                    html.escape((layer.diff_id or layer.digest or "?")[:19]),
                    html.escape(human_bytes(layer.size)),
                    html.escape(cmd[:120]),
                )
            )
        return (
            "<div class='layerlab-image'><strong>layerlab.Image</strong> "
            f"<code>{html.escape(self.reference)}</code> "
            f"({html.escape(self.source)}; {html.escape(self.platform or 'platform unknown')}; "
            f"{len(self.layer_list)} layers; {html.escape(human_bytes(self.size))})"
            "<table><thead><tr><th>#</th><th>diff_id</th><th>size</th><th>created by</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )


def images_in(data: Any) -> list[Image] | None:
    """``data`` as a list of Images when it is an Image, a Fleet or a list of
    Images; else None (the caller says what it needs)."""
    if isinstance(data, Image):
        return [data]
    if isinstance(data, Fleet) or (isinstance(data, (list, tuple)) and all(isinstance(i, Image) for i in data)):
        return list(data)
    return None


def chain_prefixes(img: Image, pool: Iterable[Image]) -> list[Image]:
    """The images of ``pool`` whose whole layer chain is a proper prefix of
    ``img``'s — the images it was built on, as far as layers tell — longest
    first (equal lengths in ``pool``'s order).  A layer is known by its chain
    id, else its blob digest (repo-info and manifests record digests only:
    the same blobs from the bottom up are the same stored layers); a pool
    image with a layer known by neither, with no layers, or with ``img``'s
    reference is left out."""
    mine = [l.chain_id or l.digest for l in img.layer_list]
    found = []
    for other in pool:
        if other is img or other.reference == img.reference:
            continue
        theirs = [l.chain_id or l.digest for l in other.layer_list]
        if 0 < len(theirs) < len(mine) and None not in theirs and mine[: len(theirs)] == theirs:
            found.append(other)
    return sorted(found, key=lambda o: -len(o.layer_list))  # stable: ties stay in pool order


class Fleet(Sequence[Image]):
    """Several images, analysed together."""

    def __init__(self, images: Iterable[Image] = ()):  # noqa: D401
        self._images: list[Image] = []
        self._names: set[str] = set()
        for img in images:
            self.add(img)

    def add(self, img: Image) -> None:
        if img.reference in self._names:
            # keep image keys unique: the frames use `image` as a key column
            n = 2
            while f"{img.reference}#{n}" in self._names:
                n += 1
            img.reference = f"{img.reference}#{n}"
        self._names.add(img.reference)
        self._images.append(img)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            for img in self._images:
                if img.reference == key:
                    return img
            raise KeyError(key)
        if isinstance(key, slice):
            return Fleet(self._images[key])
        return self._images[key]

    def __len__(self) -> int:
        return len(self._images)

    def __iter__(self):
        return iter(self._images)

    def images(self):
        from . import frames

        return frames.images_frame(self._images)

    def files(self, hash: str | None = "fast", cache_dir=None, progress: bool = True, verify: bool = True,
              workers: int | None = None):
        """``Image.files()`` of every image, concatenated (shared layers are read once)."""
        from .contents.layers import files_frame

        return files_frame(self._images, hash=hash, cache_dir=cache_dir, progress=progress, verify=verify,
                           workers=workers)

    def layers(self):
        from . import frames

        return frames.layers_frame(self._images)

    def history(self):
        from . import frames

        return frames.history_frame(self._images)

    def save(self, directory) -> None:
        """Write a Parquet snapshot (``load_many("snapshot:DIR")`` reads it back;
        the format: :mod:`layerlab.snapshot`)."""
        from .snapshot import save

        save(self, directory)

    def __repr__(self) -> str:
        return f"<layerlab.Fleet: {len(self)} images, {sum(len(i.layer_list) for i in self)} layers>"

    def _repr_html_(self) -> str:
        from .frames import human_bytes

        rows = "".join(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td></tr>".format(
                html.escape(i.reference), html.escape(i.source), len(i.layer_list), html.escape(human_bytes(i.size))
            )
            for i in self._images
        )
        return (
            f"<div class='layerlab-fleet'><strong>layerlab.Fleet</strong> ({len(self)} images)"
            "<table><thead><tr><th>image</th><th>source</th><th>layers</th><th>size</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )


OpenBlob = Callable[[], BinaryIO]
