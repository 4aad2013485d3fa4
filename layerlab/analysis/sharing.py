"""The sharing tree: images as paths in a trie of layers.

Each image is the path base -> top of its layers; images that start with
the same layers share the start of their paths.  Keyed by ``chain_id`` (the
default) a node *is* a chain id — the engine stores each node once.  With
another key (``digest`` for registry records that have no diff_ids,
``diff_id``) the trie is built from the key sequence, so a node is "this key
on this exact stack of keys below it", which is what a chain id would be.

The tree shows which images stand on which common bases, and how many bytes
each base holds for how many images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ._common import as_frame, factorize, int_sizes, key_label, keys_list, natural_size, require, select_images


def sharing_tree(
    data: Any,
    key: str | Sequence[str] = "chain_id",
    size: str | None = None,
    image: str = "image",
    position: str = "position",
    images: Sequence[str] | None = None,
    *,
    names: bool = True,
) -> pd.DataFrame:
    """Build the trie of image layer paths; one row per node.

    ``sharing_tree(data=fleet.layers(), key="chain_id", size="size")``.
    Rows of an image are ordered by ``position``; a row whose key is null
    (identity unknown) becomes a node of its own that no other image can
    share.  Nodes come in depth-first order (a node is followed by its
    subtree), so ``x0``/``x1`` lay the tree out as an icicle: each image is
    one unit of width, and a node spans the images that pass through it.

    ====================  =========  =================================================
    column                dtype      meaning
    ====================  =========  =================================================
    node                  Int64      node id, 0.. in depth-first order
    parent                Int64      parent node id (null for a base layer)
    depth                 Int64      0 = base layer (the layer's position)
    <key column(s)>       as input   the layer's key (e.g. ``chain_id``)
    size                  Int64      this layer's bytes (null: unknown)
    cumulative_size       Int64      bytes from the base up to and including it
                                     (unknown sizes count 0)
    subtree_bytes         Int64      bytes stored once for this node and all nodes
                                     above it: what a host holding every image
                                     under it stores
    count                 Int64      images whose path passes through the node
    ends                  Int64      images whose top layer is this node
    saved_bytes           Int64      size * (count - 1): what sharing it saves
    x0, x1                Int64      icicle layout: the node spans images x0..x1-1
                                     in depth-first order (x1 - x0 == count)
    created_by            string     the step that made the layer (when the frame
                                     has ``created_by``; from the first image)
    images                object     list of the images through it (``names=True``)
    ====================  =========  =================================================
    """
    df = as_frame(data, fn="sharing_tree")
    kcols = keys_list(key)
    size = natural_size(kcols, size)
    require(df, [image, position, *kcols, size], fn="sharing_tree")
    if images is not None:
        df = select_images(df, image, images, fn="sharing_tree")
    df = df[df[image].notna()]
    frame, img_s, img_names = _ordered(df, image, position)
    key_codes, kspace = _layer_keys(frame, kcols)
    sizes, size_null = int_sizes(frame[size])
    nodes = _Nodes.build(img_s, key_codes, kspace, sizes, size_null)
    x0, img_order = _icicle(nodes, img_s, len(img_names))
    out = _tree_frame(nodes, frame, kcols, x0)
    img_name_arr = np.asarray(img_names.astype(str), dtype=object)
    in_layout_order = img_name_arr[img_order]
    if names:
        # a node's images are the run x0..x1 of the layout order
        out["images"] = pd.Series(
            [in_layout_order[a:b].tolist() for a, b in zip(out["x0"].to_numpy(int), out["x1"].to_numpy(int))],
            dtype=object,
        )
    out.attrs["key"] = key_label(kcols)
    out.attrs["images"] = int(len(img_names))
    out.attrs["image_order"] = in_layout_order.tolist()
    return out


def _ordered(df: pd.DataFrame, image: str, position: str) -> tuple[pd.DataFrame, np.ndarray, pd.Index]:
    """The rows sorted by (image in frame order, position): (frame, per-row
    image code, image names).  Raises when a position is missing or repeated."""
    img_codes, img_names = pd.factorize(df[image], sort=False)
    img_codes = np.asarray(img_codes, dtype=np.int64)
    pos = pd.to_numeric(df[position], errors="coerce")
    if pos.isna().any():
        raise AnalysisError(f"sharing_tree(): {int(pos.isna().sum())} rows have no {position!r}; each layer needs its position")
    pos = pos.to_numpy().astype(np.int64)
    order = np.lexsort((pos, img_codes))
    img_s = img_codes[order]
    pos_s = pos[order]
    if len(order) and np.any((img_s[1:] == img_s[:-1]) & (pos_s[1:] == pos_s[:-1])):
        dup = int(np.sum((img_s[1:] == img_s[:-1]) & (pos_s[1:] == pos_s[:-1])))
        raise AnalysisError(
            f"sharing_tree(): {dup} (image, {position}) pairs occur twice; is {image!r} unique per image? "
            "(a fleet keys images by reference; pass image='image')"
        )
    return df.iloc[order].reset_index(drop=True), img_s, img_names


def _layer_keys(frame: pd.DataFrame, kcols: list[str]) -> tuple[np.ndarray, int]:
    """Per row, its key code (each unknown layer a key of its own), and the key space."""
    key_codes, n_keys = factorize(frame, kcols)
    null = key_codes < 0
    key_codes = key_codes.copy()
    key_codes[null] = n_keys + np.arange(int(null.sum()))
    return key_codes, n_keys + int(null.sum()) + 1


@dataclass
class _Nodes:
    """The trie's nodes as arrays (nodes numbered by increasing depth)."""

    row_node: np.ndarray     # per row: its node
    row_depth: np.ndarray    # per row: rank within its image
    first_row: np.ndarray    # per node: the first row that reaches it
    parent: np.ndarray       # per node: parent node (-1 for a base layer)
    depth: np.ndarray
    size: np.ndarray         # bytes (0 where unknown)
    known: np.ndarray        # some row knows its size
    count: np.ndarray        # images through it
    ends: np.ndarray         # images whose top layer it is
    cum: np.ndarray          # bytes from the base up to it
    sub: np.ndarray          # bytes of it and everything above it

    @classmethod
    def build(cls, img_s, key_codes, kspace, sizes, size_null) -> "_Nodes":
        n = len(img_s)
        # depth = rank within the image (positions may have gaps)
        starts = np.flatnonzero(np.r_[True, img_s[1:] != img_s[:-1]]) if n else np.zeros(0, dtype=np.int64)
        counts = np.diff(np.r_[starts, n]) if n else np.zeros(0, dtype=np.int64)
        depth = np.arange(n) - np.repeat(starts, counts)
        node = _row_nodes(depth, key_codes, kspace)
        n_nodes = int(node.max()) + 1 if n else 0
        first_row = np.full(n_nodes, -1, dtype=np.int64)
        _, fr = np.unique(node, return_index=True)
        first_row[np.unique(node)] = fr
        parent_node = np.where(depth[first_row] > 0, node[np.maximum(first_row - 1, 0)], -1)
        node_size = np.zeros(n_nodes, dtype=np.int64)
        np.maximum.at(node_size, node, sizes)
        is_top = np.r_[img_s[1:] != img_s[:-1], True] if n else np.zeros(0, dtype=bool)
        nodes = cls(
            row_node=node, row_depth=depth, first_row=first_row, parent=parent_node, depth=depth[first_row],
            size=node_size,
            known=np.bincount(node, weights=(~size_null).astype(np.int64), minlength=n_nodes) > 0,
            count=np.bincount(node, minlength=n_nodes).astype(np.int64),
            ends=np.bincount(node[is_top], minlength=n_nodes).astype(np.int64),
            cum=node_size.copy(), sub=node_size.copy(),
        )
        nodes._sums()
        return nodes

    def _sums(self) -> None:
        """Cumulative (down from the base) and subtree (up from the leaves)
        sizes, level by level."""
        bounds = np.searchsorted(self.depth, np.arange(int(self.depth.max()) + 2 if len(self.depth) else 1))
        for d in range(1, len(bounds) - 1):
            lvl = np.arange(bounds[d], bounds[d + 1])
            self.cum[lvl] += self.cum[self.parent[lvl]]
        for d in range(len(bounds) - 2, 0, -1):
            lvl = np.arange(bounds[d], bounds[d + 1])
            np.add.at(self.sub, self.parent[lvl], self.sub[lvl])


def _row_nodes(depth: np.ndarray, key_codes: np.ndarray, kspace: int) -> np.ndarray:
    """Node per row, one depth level at a time (a loop over levels, not rows):
    node = (parent node, key) factorised."""
    n = len(depth)
    node = np.full(n, -1, dtype=np.int64)
    by_depth = np.argsort(depth, kind="stable")
    level_bounds = np.searchsorted(depth[by_depth], np.arange(int(depth.max()) + 2 if n else 1))
    next_id = 0
    for d in range(len(level_bounds) - 1):
        rows = by_depth[level_bounds[d]:level_bounds[d + 1]]
        if len(rows) == 0:
            continue
        parent = node[rows - 1] if d > 0 else np.full(len(rows), -1, dtype=np.int64)
        codes, uniq = pd.factorize((parent + 1) * kspace + key_codes[rows])
        node[rows] = next_id + codes
        next_id += len(uniq)
    return node


def _icicle(nodes: _Nodes, img_s: np.ndarray, n_img: int) -> tuple[np.ndarray, np.ndarray]:
    """Icicle layout: images sorted lexicographically by their node path, so
    every node's images are a contiguous run.  Returns (per node x0, image order)."""
    depth = nodes.row_depth
    max_d = int(depth.max()) + 1 if len(depth) else 0
    paths = np.full((n_img, max_d), -1, dtype=np.int64)
    paths[img_s, depth] = nodes.row_node
    img_order = np.lexsort(tuple(paths[:, d] for d in range(max_d - 1, -1, -1))) if max_d else np.arange(n_img)
    rank = np.empty(n_img, dtype=np.int64)
    rank[img_order] = np.arange(n_img)
    x0 = np.full(len(nodes.size), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(x0, nodes.row_node, rank[img_s])
    return x0, img_order


def _tree_frame(nodes: _Nodes, frame: pd.DataFrame, kcols: list[str], x0: np.ndarray) -> pd.DataFrame:
    """The output frame, nodes renumbered depth-first (by x0, then depth)."""
    n_nodes = len(nodes.size)
    dfs = np.lexsort((nodes.depth, x0))
    new_id = np.empty(n_nodes, dtype=np.int64)
    new_id[dfs] = np.arange(n_nodes)

    def take(a):
        return a[dfs]

    par = take(nodes.parent)
    par_new = np.where(par >= 0, new_id[np.maximum(par, 0)], -1)
    size_arr = pd.array(take(nodes.size), dtype="Int64")
    size_arr[~take(nodes.known)] = pd.NA
    out = pd.DataFrame({"node": pd.array(np.arange(n_nodes), dtype="Int64")})
    parent_arr = pd.array(par_new, dtype="Int64")
    parent_arr[par_new < 0] = pd.NA
    out["parent"] = parent_arr
    out["depth"] = pd.array(take(nodes.depth), dtype="Int64")
    fr_rows = frame.iloc[take(nodes.first_row)].reset_index(drop=True)
    for c in kcols:
        out[c] = fr_rows[c].to_numpy()
        try:
            out[c] = out[c].astype(frame[c].dtype)
        except (TypeError, ValueError):
            pass
    out["size"] = size_arr
    out["cumulative_size"] = pd.array(take(nodes.cum), dtype="Int64")
    out["subtree_bytes"] = pd.array(take(nodes.sub), dtype="Int64")
    out["count"] = pd.array(take(nodes.count), dtype="Int64")
    out["ends"] = pd.array(take(nodes.ends), dtype="Int64")
    out["saved_bytes"] = out["size"] * (out["count"] - 1)
    out["x0"] = pd.array(take(x0), dtype="Int64")
    out["x1"] = pd.array(take(x0 + nodes.count), dtype="Int64")
    if "created_by" in frame.columns:
        out["created_by"] = pd.array(fr_rows["created_by"].to_numpy(), dtype="string")
    return out


def image_order(tree: pd.DataFrame) -> list[str]:
    """The images in the tree's depth-first (icicle) order, left to right.

    Uses the ``images`` column (``names=True``), else the order the tree
    was built with (``tree.attrs["image_order"]``).
    """
    if "images" not in tree.columns:
        order = tree.attrs.get("image_order")
        if order is None:
            raise AnalysisError("image_order(): the tree has no 'images' column; build it with sharing_tree(..., names=True)")
        return list(order)
    roots = tree[tree["parent"].isna()].sort_values("x0")
    return [name for imgs in roots["images"] for name in imgs]
