"""dive's FileTree, as :mod:`layerlab.contents.dive` needs it: the reference
traversal (:func:`layerlab.contents.dive.dive_efficiency`) builds these trees
where the set formulation cannot match dive's order.

The nodes follow dive's ``filetree`` package: ``AddPath`` creates missing
parents as size-0 non-directories and never adds ``.wh..wh.*`` names; ``Stack``
grafts a layer onto the stack below it (whiteouts remove, everything else
overwrites); visits go children first, in byte order of names.  The whiteout
and marker names are :mod:`layerlab.contents.whiteouts`'.
"""
from __future__ import annotations

from .whiteouts import META_PREFIX as _WHWH, WHITEOUT_PREFIX as _WH, is_meta_name, opaque_name, whiteout_name


class _Node:
    __slots__ = ("name", "path", "parent", "children", "size", "is_dir")

    def __init__(self, name: str, path: str, parent: "_Node | None"):
        self.name = name
        self.path = path            # without the leading "/"
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.size = 0
        self.is_dir = False


class _Tree:
    """dive's FileTree, plus an index path -> node (dive walks from the root on
    every call; the index gives the same results without the walks)."""

    def __init__(self, budget=None) -> None:
        self.root = _Node("", "", None)
        self.index: dict[str, _Node] = {"": self.root}
        self.has_whiteouts = False
        self.budget = budget  # counts the implied parents' path strings (see ImpliedBudget)

    def copy(self) -> "_Tree":
        t = _Tree()
        t.has_whiteouts = self.has_whiteouts

        stack = [(self.root, t.root)]  # iterative: a path may be thousands of components deep
        while stack:
            src, parent = stack.pop()
            for name, c in src.children.items():
                n = _Node(name, c.path, parent)
                n.size, n.is_dir = c.size, c.is_dir
                parent.children[name] = n
                t.index[c.path] = n
                stack.append((c, n))
        return t

    def add_path(self, path: str, size: int, is_dir: bool) -> None:
        """dive's FileTree.AddPath (``path`` clean, without the leading "/")."""
        node = self.index.get(path)
        if node is None:
            parent_path, _, name = path.rpartition("/")
            parent = self.index.get(parent_path)
            if parent is None:
                parent = self._make_parents(parent_path)
                if parent is None:
                    return
            if name.startswith(_WHWH):
                return
            node = _Node(name, path, parent)
            parent.children[name] = node
            self.index[path] = node
        node.size, node.is_dir = size, is_dir

    def add_parents_of(self, path: str) -> None:
        """What dive's AddPath does for a ``.wh..wh.*`` name: create its parents only."""
        parent_path = path.rpartition("/")[0]
        if parent_path and parent_path not in self.index:
            self._make_parents(parent_path)

    def _make_parents(self, dir_path: str) -> _Node | None:
        """Create the missing nodes down to ``dir_path`` the way dive does; None
        when a ``.wh..wh.*`` name stops it."""
        node = self.root
        for name in dir_path.split("/"):
            child = node.children.get(name)
            if child is None:
                if name.startswith(_WHWH):
                    return None
                cpath = f"{node.path}/{name}" if node.path else name
                if self.budget is not None:
                    self.budget.add(cpath)
                child = _Node(name, cpath, node)
                node.children[name] = child
                self.index[cpath] = child
            node = child
        return node

    def get(self, path: str) -> _Node | None:
        return self.index.get(path)

    def remove(self, node: _Node) -> None:
        if node is self.root:
            return
        del node.parent.children[node.name]  # type: ignore[union-attr]
        stack = [node]
        while stack:
            n = stack.pop()
            self.index.pop(n.path, None)
            stack.extend(n.children.values())


def _subtree_size(node: _Node) -> int:
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += n.size
        stack.extend(n.children.values())
    return total


def _layer_tree(rows: list[tuple[str, str, int]]) -> _Tree:
    """dive's tree of one layer's file-table rows ``(path, type, size)``: whiteout and
    opaque rows go back to their tar names, as dive reads them."""
    from .merge import ImpliedBudget

    t = _Tree(ImpliedBudget("dive's tree of a layer"))
    for path, kind, size in rows:
        if kind == "whiteout":
            t.add_path(whiteout_name(path), size, False)
            t.has_whiteouts = True
        elif kind == "opaque":
            t.add_parents_of(opaque_name(path))
        elif is_meta_name(path):
            t.add_parents_of(path)
        else:
            t.add_path(path, size, kind == "dir")
    return t


def _dive_path(node: _Node) -> str:
    """dive's FileNode.Path(): "/" + path, the whiteout prefix stripped on the leaf."""
    if node.name.startswith(_WH):
        head = node.path[: len(node.path) - len(node.name)]
        return "/" + head + node.name[len(_WH):]
    return "/" + node.path


def _visit_sorted(root: _Node, fn, leaves_only: bool) -> None:
    """dive's VisitDepthChildFirst: children by name (byte order), then the node; never the root.
    Iterative (a path may be thousands of components deep): each node is pushed with its
    children still to visit, and visited once they are done."""
    stack = [(root, iter(sorted(root.children)))]
    while stack:
        node, names = stack[-1]
        name = next(names, None)
        if name is not None:
            child = node.children[name]
            stack.append((child, iter(sorted(child.children))))
            continue
        stack.pop()
        if node is root or (leaves_only and node.children):
            continue
        fn(node)


def _visit(tree: _Tree, fn, leaves_only: bool) -> None:
    """Visit like dive.  The order only matters in a layer with whiteouts (a
    failed whiteout stops dive's visit; grafting removes before it adds), so
    other layers are walked in index order, without sorting."""
    if tree.has_whiteouts:
        _visit_sorted(tree.root, fn, leaves_only)
        return
    for node in list(tree.index.values()):
        if node is tree.root or (leaves_only and node.children):
            continue
        fn(node)


def _stack(lower: _Tree, upper: _Tree) -> None:
    """dive's FileTree.Stack: graft ``upper`` onto ``lower`` in place."""

    def graft(node: _Node) -> None:
        if node.name.startswith(_WH):
            target = lower.get(_dive_path(node)[1:])
            if target is not None:
                lower.remove(target)
        else:
            lower.add_path(node.path, node.size, node.is_dir)

    _visit(upper, graft, leaves_only=False)


class _StopLayer(Exception):
    pass
