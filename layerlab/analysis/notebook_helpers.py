"""Small analyses the notebooks need, so that their cells call functions
instead of wrangling frames: frames (or a Fleet) in, frames out.

- ``choose_measure``: the layer key and size column a fleet can answer for;
- ``image_roles``: what each image is for, from an image-config label;
- ``variant_summary``/``describe_variants``: storage and downloads per variant of a fleet, and the
  sentences that read them out;
- ``image_families``/``family_totals``/``direct_bases``/``describe_families``: images grouped
  by the image whose full layer chain they start with, the bytes each family stores, and the
  sentences that read them out;
- ``compare_plan``: a base plan's predictions against images really built;
- ``demo_archive``: a small ``docker save`` archive written from Python;
- ``efficiency_without_writing``: dive's figures from a file-table cache or small blobs;
- ``app_variants``, ``last_pull_timelines``, ``describe_pulls``,
  ``describe_scenario``: notebook 06's pull-time comparisons and the
  sentences that read them out (from the numbers, never written by hand).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import AnalysisError, LayerlabError

_ROLE = re.compile(r"app:\s*(?P<app>[^(]+?)\s*\((?P<variant>[^)]+)\)")


def choose_measure(layers: pd.DataFrame, key: str = "chain_id", compressed: bool = False) -> tuple[str, str, list[str]]:
    """``(key, size, notes)``: the layer identity and size column to count by.

    ``key`` stays unless no layer has it while some have a ``digest`` (repo-info
    and registry manifests record digests only): then ``"digest"``.  The size
    column is ``compressed_size`` when ``compressed`` else ``size``, unless no
    layer knows it and some know the other.  Each fallback adds a note.
    """
    for col in (key, "digest", "size", "compressed_size"):
        if col not in layers.columns:
            raise AnalysisError(f"choose_measure(): the layers frame has no column {col!r}")
    notes: list[str] = []
    if layers[key].isna().all() and layers["digest"].notna().any():
        notes.append(f"these images record no {key}; comparing layers by digest instead")
        key = "digest"
    size = "compressed_size" if compressed else "size"
    if layers[size].isna().all():
        other = "size" if compressed else "compressed_size"
        if layers[other].notna().any():
            notes.append(f"these images record no {size}; counting {other} instead")
            size = other
    return key, size, notes


def _labels(img) -> dict:
    return (((getattr(img, "config", None) or {}).get("config") or {}).get("Labels") or {})


def image_roles(data: Iterable[Any], label: str = "org.layerlab.sample.role",
                groups: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per image of ``data`` (a Fleet or Images): ``image``, ``kind``
    (``app``, ``base`` or ``other``), ``app`` and ``variant``, all ``string``.

    ``groups`` (group name -> image references, e.g. from
    :func:`layerlab.analysis.notebook_params.check_image_groups`) say which
    image belongs to which variant; images in no group are ``other``.
    Without ``groups``, the config label ``label`` says ``app: NAME (VARIANT)``
    or ``base…`` (a base belongs to the ``layered`` variant); when some images
    carry it, the unlabelled ones are ``other``.  When neither says, each
    image is an app named by the last part of its repository, in the variant
    named by the part before it (``all`` when there is none).  Where the label
    does not decide, an image whose layers are a proper prefix of another's
    (by chain id, else digest) is a ``base``, not an app.
    """
    images = list(data)
    labelled = groups is None and any(label in _labels(img) for img in images)
    group_of = {ref: name for name, refs in (groups or {}).items() for ref in refs}
    below = _prefix_images(images)
    rows = []
    for img in images:
        text = str(_labels(img).get(label, ""))
        m = _ROLE.match(text)
        name = img.reference.split("@")[0].rsplit(":", 1)[0]
        if groups is not None:
            g = group_of.get(img.reference)
            row = ({"kind": "other", "app": None, "variant": None} if g is None else
                   {"kind": "base" if img.reference in below else "app", "app": name.rpartition("/")[2], "variant": g})
        elif m:
            row = {"kind": "app", "app": m["app"], "variant": m["variant"]}
        elif text.startswith("base"):
            row = {"kind": "base", "app": None, "variant": "layered"}
        elif labelled:
            row = {"kind": "other", "app": None, "variant": None}
        else:
            variant, _, app = name.rpartition("/")
            row = {"kind": "base" if img.reference in below else "app", "app": app, "variant": variant or "all"}
        if row["kind"] == "base":
            row["app"] = None
        rows.append({"image": img.reference, **row})
    return pd.DataFrame(rows, columns=["image", "kind", "app", "variant"]).astype("string")


def _prefix_images(images: Sequence[Any]) -> set[str]:
    """References of the images whose whole layer chain is a proper prefix of another image's
    (:func:`layerlab.model.chain_prefixes`)."""
    from ..model import chain_prefixes

    return {base.reference for img in images for base in chain_prefixes(img, images)}


def variant_summary(by_variant: Mapping[str, pd.DataFrame], pulls: pd.DataFrame, *, size: str = "size",
                    key: str = "digest", variant: str = "variant") -> pd.DataFrame:
    """Per variant (``by_variant``: its layers frame): ``apps``,
    ``sum_of_image_sizes`` (each image counted whole), ``stored_on_host``
    (each distinct layer by ``key`` once), ``downloaded_after_first_app`` (the
    ``pull_bytes`` of ``pulls`` — ``pull_table`` output with a ``variant``
    column — after its first row) and ``saved_by_sharing``, indexed by variant."""
    from .totals import fleet_totals

    rows = []
    for name, frame in by_variant.items():
        t = fleet_totals(data=frame, image_id=None).set_index(["accounting", "measure"])
        pv = pulls[pulls[variant] == name]
        rows.append({
            variant: name,
            "apps": frame["image"].nunique(),
            "sum_of_image_sizes": t.loc[("references", size), "stored_bytes"],
            "stored_on_host": t.loc[(key, size), "stored_bytes"],
            "downloaded_after_first_app": int(pv["pull_bytes"].iloc[1:].sum()),
        })
    out = pd.DataFrame(rows, columns=[variant, "apps", "sum_of_image_sizes", "stored_on_host",
                                      "downloaded_after_first_app"])
    out["saved_by_sharing"] = out["sum_of_image_sizes"] - out["stored_on_host"]
    return out.set_index(variant)


def describe_variants(summary: pd.DataFrame) -> str:
    """Markdown sentences reading out ``variant_summary`` output: per variant
    its apps, bytes as separate images, stored on one host, saved by sharing
    and downloaded after the first app; then, when two or more variants have
    several apps, which downloads least per app after the first."""
    from ..frames import human_bytes

    lines = []
    for name, r in summary.iterrows():
        n = int(r["apps"])
        line = (f"* **{html_escape(name)}**: {n} app{'' if n == 1 else 's'}, "
                f"{human_bytes(int(r['sum_of_image_sizes']))} as separate images, "
                f"{human_bytes(int(r['stored_on_host']))} stored on one host "
                f"({human_bytes(int(r['saved_by_sharing']))} saved by sharing)")
        if n > 1:
            line += f"; after the first app the others download {human_bytes(int(r['downloaded_after_first_app']))}"
        lines.append(line + ".")
    text = "\n".join(lines)
    several = summary[summary["apps"] > 1]
    if len(several) >= 2:
        per_app = several["downloaded_after_first_app"] / (several["apps"] - 1)
        best, worst = per_app.idxmin(), per_app.idxmax()
        if per_app[best] < per_app[worst]:
            text += (f"\n\nAfter the first app, each further **{html_escape(best)}** app downloads "
                     f"{human_bytes(int(per_app[best]))} on average, against {human_bytes(int(per_app[worst]))} "
                     f"for **{html_escape(worst)}**.")
    return text


def _chains(layers: pd.DataFrame, image: str, position: str, key: str) -> tuple[dict[str, tuple], dict[tuple, str]]:
    """Each image's layer chain (``key`` by ``position``), and each chain's first image."""
    chains = {img: tuple(g.sort_values(position)[key]) for img, g in layers.groupby(image, sort=False)}
    full: dict[tuple, str] = {}
    for img, chain in chains.items():
        full.setdefault(chain, img)
    return chains, full


def image_families(layers: pd.DataFrame, *, image: str = "image", position: str = "position",
                   key: str = "digest") -> pd.DataFrame:
    """Each image's family: ``image``, ``root_image`` (the image whose whole
    layer chain, by ``key``, is the shortest proper start of this image's
    chain; the image itself when none is) and ``family`` (``root_image``
    without its tag).  Of images with equal chains the first seen stands for
    them all."""
    chains, full = _chains(layers, image, position, key)
    out = []
    for img, chain in chains.items():
        root = img
        for k in range(1, len(chain)):
            base = full.get(chain[:k])
            if base is not None:
                root = base
                break
        out.append({"image": img, "family": root.split(":")[0], "root_image": root})
    return pd.DataFrame(out, columns=["image", "family", "root_image"])


def family_totals(layers: pd.DataFrame, families: pd.DataFrame, *, size: str = "compressed_size",
                  key: str = "digest", image: str = "image") -> pd.DataFrame:
    """Per family (``image_families`` output): ``images``, ``repos``,
    ``unshared_bytes`` (every image's layers counted), ``shared_stored_bytes``
    (each distinct ``key`` once) and ``stored_fraction``, largest first."""
    per = layers.merge(families, on=image)
    rows = []
    for fam, g in per.groupby("family"):
        rows.append({
            "family": fam,
            "images": g[image].nunique(),
            "repos": g[image].str.split(":").str[0].nunique(),
            "unshared_bytes": int(g[size].sum()),
            "shared_stored_bytes": int(g.drop_duplicates(key)[size].sum()),
        })
    out = pd.DataFrame(rows, columns=["family", "images", "repos", "unshared_bytes", "shared_stored_bytes"])
    out = out.sort_values("unshared_bytes", ascending=False, kind="stable").reset_index(drop=True)
    out["stored_fraction"] = (out["shared_stored_bytes"] / out["unshared_bytes"]).round(3)
    return out


def direct_bases(layers: pd.DataFrame, *, image: str = "image", position: str = "position",
                 key: str = "digest") -> dict[str, str]:
    """Each image's nearest base among ``layers``' images: the image whose whole
    chain (by ``key``) is the longest proper start of this image's chain.
    Images with no such base are left out; of equal chains the first seen
    stands for them all (as in :func:`image_families`)."""
    chains, full = _chains(layers, image, position, key)
    out = {}
    for img, chain in chains.items():
        for k in range(len(chain) - 1, 0, -1):
            base = full.get(chain[:k])
            if base is not None:
                out[img] = base
                break
    return out


def describe_families(by_family: pd.DataFrame, bases: Mapping[str, str], families: pd.DataFrame) -> str:
    """Markdown reading out ``family_totals`` rows (those charted): the family
    that shares most, the bases its images stand on most often (``bases``:
    :func:`direct_bases`), and the family that shares least.  Families of one
    image are left out (nothing to share); every figure comes from the frames."""
    from ..frames import human_bytes

    rows = by_family[by_family["images"] >= 2].sort_values("stored_fraction", kind="stable")
    if rows.empty:
        return "Reading it: no family shown has two images or more, so there is no sharing to compare."
    best = rows.iloc[0]
    text = (f"Reading it: the **{best['family']}** family's {best['images']:,} images store "
            f"{human_bytes(best['shared_stored_bytes'])} of their summed {human_bytes(best['unshared_bytes'])} "
            f"({best['stored_fraction']:.0%})")
    members = set(families.loc[families["family"] == best["family"], "image"])
    counts = pd.Series([b for img, b in bases.items() if img in members], dtype="object").value_counts()
    counts = counts[counts >= 2]
    if len(counts):
        named = ", ".join(f"`{b}` ({n} images)" for b, n in counts.head(3).items())
        text += (f": its images stand on common bases — most often {named} — and each base layer is "
                 "stored once.")
    else:
        text += ": its images share layers, though no base image among these tags is common to several of them."
    if len(rows) >= 2:
        worst = rows.iloc[-1]
        text += (f" **{worst['family']}** shares least of the families shown: its {worst['images']:,} images "
                 f"store {worst['stored_fraction']:.0%} of their summed size.")
    return text


def compare_plan(savings: pd.DataFrame, layers: pd.DataFrame, apps: Sequence[str], *,
                 key: str = "chain_id", size: str = "size", image: str = "image") -> pd.DataFrame:
    """A base plan's predictions (``plan.savings``) against the images built
    with the shared bases: rows ``bytes stored for both apps`` and ``bytes the
    second app adds``, columns ``predicted``, ``built`` and ``difference``
    (built − predicted).  ``apps``: the built app images, in the plan's order;
    ``layers``: their layers frame."""
    if len(apps) < 2:
        raise AnalysisError(f"compare_plan(): needs two built apps, got {list(apps)}")
    lay = layers[layers[image].isin(apps)]
    stored = lay.drop_duplicates(key)[size].sum()
    first = set(lay.loc[lay[image] == apps[0], key])
    second = lay[(lay[image] == apps[1]) & ~lay[key].isin(first)][size].sum()
    host = savings.set_index("scope").loc["host"]
    second_app = savings[savings["scope"] == "app"].iloc[1]
    out = pd.DataFrame({
        "quantity": ["bytes stored for both apps", "bytes the second app adds"],
        "predicted": [int(host["stored_after_bytes"]), int(second_app["pulled_after_bytes"])],
        "built": [int(stored), int(second)],
    })
    out["difference"] = out["built"] - out["predicted"]
    return out


def demo_archive(path: str | os.PathLike, layers: Sequence[Sequence[tuple[str, bytes | None, int]]],
                 commands: Sequence[str], tag: str = "demo/merge:1") -> Path:
    """Write a small ``docker save`` archive to ``path`` and return it: one
    uncompressed layer tar (PAX) per item of ``layers``, each a sequence of
    ``(name, content, mode)`` entries (``content`` None: an empty entry, as a
    ``.wh.`` whiteout is), the config's history one step per ``commands``
    item, tagged ``tag``.  Only ``path`` is written."""
    if len(commands) != len(layers):
        raise AnalysisError(f"demo_archive(): {len(layers)} layers but {len(commands)} commands")
    tars = []
    for files in layers:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, content, mode in files:
                ti = tarfile.TarInfo(name)
                if content is None:
                    tf.addfile(ti)
                    continue
                ti.size, ti.mode = len(content), mode
                tf.addfile(ti, io.BytesIO(content))
        tars.append(buf.getvalue())
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": c} for c in commands]}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": [f"l{i}/layer.tar" for i in range(len(tars))]}]).encode()
    out = Path(path)
    with tarfile.open(out, "w") as tf:
        for name, data in [*((f"l{i}/layer.tar", t) for i, t in enumerate(tars)),
                           ("config.json", config), ("manifest.json", manifest)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return out


def efficiency_without_writing(img, files_cache: str | os.PathLike | None, max_bytes: int | None = None,
                               limit_name: str = "max_bytes"):
    """``(efficiency, (target, options), notes)`` for ``img``, reading its
    layer contents without writing anywhere: first from the per-layer file
    tables in ``files_cache`` (through a copy of ``img`` without blobs, which
    can only read them), else from ``img``'s own blobs, with no cache, when
    it has them and is at most ``max_bytes`` (None: any size).  ``target``
    and ``options`` say how to read the same contents again (for ``waste``);
    ``(None, None, notes)`` when neither works, the notes saying why, one
    sentence per way tried or skipped (``limit_name``: how the caller calls
    ``max_bytes``, for the note that says to raise it)."""
    import dataclasses

    from ..frames import human_bytes
    from .efficiency import efficiency

    notes: list[str] = []
    if files_cache is not None:
        try:
            target, opts = dataclasses.replace(img, blobs=None), {"cache_dir": files_cache, "progress": False}
            return efficiency(target, **opts), (target, opts), notes
        except LayerlabError as e:
            missing = "not in the cache" in str(e)
            notes.append(f"{img.reference}: the file tables in {files_cache} do not cover its layers"
                         + ("" if missing else f" ({e})"))
    if not img.has_contents:
        notes.append(f"{img.reference}: loaded without layer contents (snapshots, histories and manifests keep "
                     "none); load the image from "
                     "docker-daemon:, docker-archive:, oci: or oci-archive: to measure its efficiency")
    elif max_bytes is not None and (img.size or 0) > max_bytes:
        notes.append(f"{img.reference}: its layers hold {human_bytes(img.size)}, over {limit_name} "
                     f"({human_bytes(max_bytes)}), so they were not read; raise {limit_name} to read them")
    else:
        opts = {"cache_dir": False, "progress": False}
        try:
            return efficiency(img, **opts), (img, opts), notes
        except LayerlabError as e:
            notes.append(f"{img.reference}: reading its layers failed: {e}")
    return None, None, notes


# -- pull time (notebook 06) -----------------------------------------------

def app_variants(fleet, label: str = "org.layerlab.sample.role") -> dict[str, list[str]]:
    """Variant -> its app images in name order (``image_roles``: the apps only;
    their bases come along in their layers)."""
    roles = image_roles(fleet, label=label)
    apps = roles[roles["kind"] == "app"].sort_values(["variant", "app"])
    return {str(v): [str(i) for i in g["image"]] for v, g in apps.groupby("variant", sort=True)}


def last_pull_timelines(layers: pd.DataFrame, variants: Mapping[str, Sequence[str]], *, bandwidth: Any,
                        model: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The timelines of each variant's last app pulled onto a host holding
    the variant's other apps, concatenated (``image`` tells them apart)."""
    from .pull import pull_time

    frames = [pull_time(layers, apps[-1], present=list(apps[:-1]), bandwidth=bandwidth, **dict(model or {})).timeline
              for apps in variants.values() if apps]
    if not frames:
        raise AnalysisError("last_pull_timelines(): no variant has an app")
    return pd.concat(frames, ignore_index=True)


def _md(text: Any) -> str:
    """Text from the data (image names) made safe for Markdown: HTML-escaped, code-quoted."""
    import html

    return "`" + html.escape(str(text)).replace("`", "'") + "`"


def describe_pulls(pulls: pd.DataFrame, bandwidth: Any, engine: str = "moby", variant: str = "fleet") -> str:
    """Markdown sentences reading out ``pull_table(by_variant, present="previous",
    bandwidth=...)``: each variant's pulls in turn, then which variant's later
    pulls (after its first app) take least time in all."""
    from ..frames import human_bytes
    from .pull import human_rate, parse_bandwidth

    rate = human_rate(parse_bandwidth(bandwidth))
    lines, later = [], {}
    for name, g in pulls.groupby(variant, sort=False):
        parts = [f"{_md(r.image)} {r.seconds:.1f} s ({human_bytes(int(r.model_bytes))}"
                 + (f", with {_md(r.present)} on the host)" if r.present else ", cold)") for r in g.itertuples()]
        lines.append(f"* **{html_escape(name)}**: " + "; ".join(parts) + ".")
        later[str(name)] = float(g["seconds"].iloc[1:].sum())
    text = f"At {rate} ({html_escape(engine)}), pulling the apps in turn onto one host:\n\n" + "\n".join(lines)
    if len(later) >= 2:
        best, worst = min(later, key=later.get), max(later, key=later.get)
        if later[best] > 0:
            text += (f"\n\nAfter the first app, the **{html_escape(best)}** design's pulls take {later[best]:.1f} s "
                     f"in all against {later[worst]:.1f} s for **{html_escape(worst)}**: "
                     f"{later[worst] / later[best]:.1f}× faster.")
    return text


def html_escape(text: Any) -> str:
    import html

    return html.escape(str(text))


def describe_scenario(scenario: pd.DataFrame, image_bytes: float, cold_seconds: float,
                      warm_seconds: float | None = None) -> str:
    """Markdown sentences reading out ``pull_scenario.cold_and_warm`` output."""
    from ..frames import human_bytes
    from .pull import human_rate

    tried = scenario[~scenario["solved"].astype(bool)]
    bw = tried["bandwidth"] if len(tried) else scenario["bandwidth"]
    text = (f"Under the model, a cold pull of a {human_bytes(int(image_bytes))} layered app takes "
            f"{cold_seconds / 60:.1f} min on a link of about {human_rate(float(bw.min()))}"
            + (f" to {human_rate(float(bw.max()))}" if human_rate(float(bw.min())) != human_rate(float(bw.max())) else "")
            + f" ({float(bw.mean()) * 8 / 1e6:.0f} Mbit/s)"
            + (": the layer split barely matters cold, everything downloads." if bw.max() < 1.05 * bw.min() else "."))
    if len(tried):
        parts = [f"{r.warm_seconds:.0f} s when the app's own layer holds {r.app_share:.0%} "
                 f"({human_bytes(int(r.app_bytes))})" for r in tried.itertuples()]
        text += "\n\nOn that link, with the bases already on the host, the pull takes " + "; ".join(parts) + "."
    solved = scenario[scenario["solved"].astype(bool)]
    if warm_seconds is not None and len(solved):
        r = solved.iloc[0]
        text += (f"\n\nThe article's warm pull of {warm_seconds // 60:.0f} min {warm_seconds % 60:.0f} s matches an app "
                 f"whose own layers hold {r['app_share']:.0%} of the image ({human_bytes(int(r['app_bytes']))}), "
                 f"the shared bases the other {human_bytes(int(r['base_bytes']))}: a "
                 f"{cold_seconds / warm_seconds:.1f}× faster pull for having them.")
    return text
