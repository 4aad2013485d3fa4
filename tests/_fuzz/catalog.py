"""The fuzz targets, named once for the default test run and for ``scripts/fuzz``.

A *generated* target draws its inputs from a hypothesis strategy
(:attr:`Target.strategy`, turned into a worker case by :attr:`Target.case`);
a *seeded* one makes case ``seed`` with :attr:`Target.seeded` (byte mutation
with ``random.Random(seed)``, the hostile registry's mode and seed), so the
same seed is the same input on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import seeds, strategies as S
from .mutate import mutate


@dataclass
class Target:
    name: str
    doc: str
    strategy: Any = None                                   # hypothesis strategy (generated targets)
    case: Callable[[Any], tuple[str, dict]] | None = None  # value -> (worker target, args)
    seeded: Callable[..., tuple[str, dict]] | None = None  # (seed[, registry]) -> (worker target, args)
    needs_registry: bool = False
    needs_shared: bool = False


def _mutated_archive(pool: Callable[[], list]) -> Callable[[int], tuple[str, dict]]:
    def make(seed: int) -> tuple[str, dict]:
        items = pool()
        name, data, transport = items[seed % len(items)]
        # every fourth case goes through transport detection on the bare path, as a user's may
        return "archive", {"data": mutate(data, seed), "transport": None if seed % 4 == 3 else transport,
                           "_label": f"{name} seed {seed}"}
    return make


def _mutated_manifest(seed: int) -> tuple[str, dict]:
    items = seeds.real_manifests()
    name, m, c = items[seed % len(items)]
    if c is not None and seed % 3 == 1:  # mutate the config, keep the manifest (its digest now lies)
        return "manifest", {"manifest": m, "config": mutate(c, seed), "_label": f"{name} config seed {seed}"}
    return "manifest", {"manifest": mutate(m, seed), "config": c, "_label": f"{name} seed {seed}"}


def _mutated_history(seed: int) -> tuple[str, dict]:
    """A history file drawn once from the strategy's valid shapes, then byte-mutated."""
    good = [(b'{"Comment":"","CreatedAt":"2026-11-28T02:03:10Z","CreatedBy":"/bin/sh -c #(nop)  CMD [\\"sh\\"]",'
             b'"CreatedSince":"2 days ago","ID":"sha256:' + b"a" * 64 + b'","Size":"0"}\n'
             b'{"Comment":"","CreatedAt":"2026-11-28T02:03:09Z","CreatedBy":"/bin/sh -c #(nop) ADD file:x in / ",'
             b'"CreatedSince":"2 days ago","ID":"<missing>","Size":"4261550"}\n', ".jsonl"),
            (b"IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n"
             b"a3bc01e8f1c6   2 days ago    /bin/sh -c #(nop)  CMD [\"sh\"]                   0B        \n"
             b"<missing>      2 days ago    /bin/sh -c #(nop) ADD file:x in /               4.26MB    \n", ".txt"),
            (b'[{"Id":"sha256:' + b"b" * 64 + b'","Created":1764295390,"CreatedBy":"CMD [\\"sh\\"]","Size":0,'
             b'"Comment":""},{"Id":"<missing>","Created":1764295389,"CreatedBy":"ADD x /","Size":4261550}]', ".txt")]
    data, suffix = good[seed % len(good)]
    return "history", {"data": mutate(data, seed), "suffix": suffix, "_label": f"history{suffix} seed {seed}"}


def _registry_case(seed: int, registry) -> tuple[str, dict]:
    from .registry import MODES

    mode = MODES[seed % len(MODES)]
    registry.case = {"mode": mode, "seed": seed}
    tag = "multi" if (seed // len(MODES)) % 2 else "1"
    return "registry", {"url": registry.url(tag), "_label": f"{mode} seed {seed} tag {tag}"}


TARGETS: list[Target] = [
    Target("history", "saved docker history: JSON lines, table, API array (hypothesis)",
           strategy=S.history_files, case=lambda v: ("history", {"data": v[0], "suffix": v[1]})),
    Target("manifest", "manifest:MANIFEST+CONFIG and schema 1 manifests (hypothesis)",
           strategy=S.manifest_inputs, case=lambda v: ("manifest", {"manifest": v[0], "config": v[1]})),
    Target("oci-layout", "OCI layout directories: index.json, nested indexes, manifests, configs (hypothesis)",
           strategy=S.oci_layout(), case=lambda v: ("oci-dir", {"files": v})),
    Target("repo-info", "repo-info markdown tag files (hypothesis)",
           strategy=S.repo_info_file(), case=lambda v: ("repo-info", {"text": v})),
    Target("tar-in-archive", "hostile layer tar streams in a docker save archive (hypothesis)",
           strategy=S.tar_stream(), case=lambda v: ("layer", {"layer": v, "how": "archive"})),
    Target("tar-in-oci", "hostile layer tar streams, gzip-compressed, in an OCI layout (hypothesis)",
           strategy=S.tar_stream(), case=lambda v: ("layer", {"layer": v, "how": "oci"})),
    Target("mutate-built", "byte mutation of archives built in the tests (legacy plain/gzip/zstd, OCI)",
           seeded=_mutated_archive(seeds.built_archives)),
    Target("mutate-real", "byte mutation of ../shared/data/real-images archives",
           seeded=_mutated_archive(seeds.real_archives), needs_shared=True),
    Target("mutate-real-manifest", "byte mutation of the real schema 1/2 manifests and config",
           seeded=_mutated_manifest, needs_shared=True),
    Target("mutate-history", "byte mutation of saved docker history in its three forms",
           seeded=_mutated_history),
    Target("registry", "a hostile registry on 127.0.0.1 (docker://)", seeded=_registry_case, needs_registry=True),
]

BY_NAME = {t.name: t for t in TARGETS}


def split_label(args: dict) -> tuple[dict, str]:
    """(the worker's args, the case's label for messages)."""
    args = dict(args)
    return args, str(args.pop("_label", ""))
