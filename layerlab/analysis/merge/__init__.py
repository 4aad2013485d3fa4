"""What-if merges: predict what joining build steps into one layer does.

>>> pred = ll.what_if_merge(img, [(2, 4), [6, 7]], fleet=fleet)
>>> pred.summary    # layers, size, compressed size, sharing lost: before and after (pred.to_frame())
>>> pred.groups     # one row per merged group: exact merged size, measured compressed size, method
>>> pred.layers     # the predicted layer list
>>> pred.sharing    # per other image of the fleet: bytes shared before and after
>>> pred.rebuild    # per step: bytes rebuilt (and pushed) when it changes, before and after
>>> ll.suggest_merges(img)   # merges ranked by bytes saved, with the reason and the merged RUN line;
...                         # `chosen` marks the best set of merges sharing no layer (their savings add up)

Steps are **layer positions** (the ``position`` column of ``img.layers()``,
0 = base).  A group is ``(first, last)`` (inclusive), a ``range``, or a list
of consecutive positions; several groups at once: ``[(2, 4), [6, 7]]``.

How the numbers are obtained
----------------------------
*Uncompressed size of a merged layer* — exact, from the layers' file tables
(``img.files()``; or the blobs scanned with :mod:`layerlab.contents`): the
layers are stacked once with the OCI rules of :mod:`layerlab.contents.merge`
(a whiteout removes the path and everything under it; an opaque directory
hides what lower layers had under it), and the merged layer is what turns the
filesystem below the group into the filesystem after it (:mod:`.table`).
What survives is the merged layer: a file added then deleted inside the
group vanishes, a file written twice counts once (last version), whiteouts
and opaque markers of *lower* paths stay.  Its size is the sum of the tar
entries' sizes (directories, symlinks, whiteouts: 0; a hardlink whose target
was deleted inside the group becomes a regular file of the target's size):
what the engine reports for a layer it builds (:mod:`.table` says why this is
not the symlink-counting rule of :mod:`layerlab.contents.sizes`).

*Compressed size* — measured (:mod:`layerlab.contents.recompress`): the
merged layer tar is actually written (streamed from the source blobs into a
temporary file, or into ``output_dir`` when given) and compressed with the algorithm and level the source used: gzip
level read from the blob header's XFL byte (2 -> 9, 4 -> 1, otherwise the
default 6, what Docker pushes with), zstd level 3 (zstd records no level);
uncompressed sources (``docker save``) are compressed with gzip 6, as a push
would.  The group's original layers are recompressed the same way, so the
``compressed_method`` column can tell how close our compressor is to the one
that made the real blobs.

*Sharing lost* — every layer from the first changed position up gets a new
chain id, so layers of this image that other images of the fleet share (same
chain id) stop being shared.

*Rebuild cost* — when the step that made layer k changes, that layer and every
layer above it are rebuilt (and pushed: builds are not byte-reproducible, so
the new blobs are new); after a merge a change anywhere inside a group
rebuilds the whole merged layer.

Without layer contents (a snapshot, saved history), exact sizes cannot be
computed: those cells are ``<NA>`` with the reason in ``status``; the upper
bound (the group's current size) is given separately, never as the answer.

The frames (all byte counts ``Int64``, ``<NA>`` when unknown)
-------------------------------------------------------------
``summary`` (``to_frame()``): ``metric`` (``layers``, ``size_bytes``,
``compressed_bytes``, ``sharing_lost_bytes``, ``fleet_stored_bytes``),
``before``, ``after``, ``change``; read one cell with ``pred.metric(name)``.

``groups``: ``group``, ``first``, ``last``, ``layers_merged``, ``commands``,
``size_before_bytes``, ``size_after_bytes``, ``saved_bytes``,
``vanished_entries`` (entries the group writes that a later step of it
deletes or replaces; a directory or link written again does not count),
``compressed_before_bytes`` (the real blobs; the recompressed originals for
uncompressed sources), ``compressed_after_bytes``,
``recompressed_before_bytes``, ``compressed_method``, ``status``.

``layers``: the layer list after: ``position``, ``from_positions`` (tuple),
``created_by``, ``size_bytes``, ``compressed_bytes``, ``chain_changed``,
``shared_before``.

``sharing``: per other image of the fleet: ``image``, ``other_image``,
``shared_layers_before``, ``shared_before_bytes``, ``shared_layers_after``,
``shared_after_bytes``, ``lost_bytes``.

``rebuild``: per layer position: ``position``, ``created_by``,
``layers_rebuilt_before``, ``layers_rebuilt_after``, ``rebuilt_before_bytes``,
``rebuilt_after_bytes``, ``pushed_before_bytes``, ``pushed_after_bytes``.
"""
from __future__ import annotations

from .groups import parse_groups
from .predict import MergePrediction, what_if_merge
from .suggest import suggest_merges
from .table import merged_layer_table

__all__ = ["MergePrediction", "what_if_merge", "suggest_merges", "merged_layer_table", "parse_groups"]
