"""Build small docker-save / OCI archives by hand (python tarfile + json) for tests.

Independent of layerlab: these write the formats as Docker and the OCI image
spec define them, and return what was written so tests compare against it.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes | int]) -> bytes:
    """An uncompressed layer tar; an int value makes a file of that many zero bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, content in files.items():
            if name.endswith("/"):
                ti = tarfile.TarInfo(name.rstrip("/"))
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
                continue
            data = content if isinstance(content, bytes) else b"\0" * content
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def config_for(diff_ids: list[str], history: list[dict] | None = None, arch: str = "amd64") -> dict:
    if history is None:
        history = [{"created": "2024-01-02T03:04:05.123456789Z", "created_by": f"step {i}"} for i in range(len(diff_ids))]
    return {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05.123456789Z",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }


def compress(data: bytes, how: str | None) -> bytes:
    if how is None:
        return data
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(how)


def write_legacy_archive(path: Path, layers: list[bytes], *, tags=("test/img:latest",), history=None,
                         compress_with: str | None = None, share_with_symlink: bool = False,
                         manifest_override=None, config_bytes: bytes | None = None) -> dict:
    """A legacy ``docker save`` tar: <id>/layer.tar, <hex>.json config, manifest.json, repositories."""
    diff_ids = [sha(l) for l in layers]
    cfg = config_bytes if config_bytes is not None else json.dumps(config_for(diff_ids, history)).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    layer_names = []
    seen: dict[bytes, str] = {}
    with tarfile.open(path, "w") as tf:
        for i, l in enumerate(layers):
            lid = hashlib.sha256(f"{i}".encode() + l).hexdigest()
            name = f"{lid}/layer.tar"
            if share_with_symlink and l in seen:
                ti = tarfile.TarInfo(name)
                ti.type = tarfile.SYMTYPE
                ti.linkname = f"../{seen[l]}"
                tf.addfile(ti)
            else:
                add_bytes(tf, name, compress(l, compress_with))
                seen[l] = name
            add_bytes(tf, f"{lid}/VERSION", b"1.0")
            add_bytes(tf, f"{lid}/json", json.dumps({"id": lid}).encode())
            layer_names.append(name)
        add_bytes(tf, cfg_name, cfg)
        manifest = manifest_override if manifest_override is not None else [
            {"Config": cfg_name, "RepoTags": list(tags), "Layers": layer_names}
        ]
        add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
    return {"diff_ids": diff_ids, "config": cfg, "config_name": cfg_name, "layer_names": layer_names}


def write_oci_layout(root: Path, layers: list[tuple[bytes, str]], *, ref_name: str | None = "v1",
                     arch: str = "amd64", extra_manifests: list[dict] | None = None,
                     history=None) -> dict:
    """An OCI image layout directory; ``layers`` = [(uncompressed tar, media type)]."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    descs, diff_ids = [], []
    for raw, mt in layers:
        how = "gzip" if mt.endswith("gzip") else "zstd" if mt.endswith("zstd") else None
        blob = compress(raw, how)
        descs.append({"mediaType": mt, "digest": put(blob), "size": len(blob)})
        diff_ids.append(sha(raw))
    cfg = json.dumps(config_for(diff_ids, history, arch)).encode()
    cfg_d = put(cfg)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": len(cfg)},
        "layers": descs,
    }
    mbytes = json.dumps(manifest).encode()
    m_d = put(mbytes)
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_d, "size": len(mbytes),
            "platform": {"os": "linux", "architecture": arch}}
    if ref_name:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [desc] + list(extra_manifests or [])}
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return {"diff_ids": diff_ids, "config_digest": cfg_d, "manifest_digest": m_d, "layer_descs": descs,
            "manifest_desc": desc, "config": cfg, "manifest": mbytes}


def tar_dir(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)


def gnu_tar_sizes(data_or_path) -> int:
    """Docker's layer size from GNU ``tar -tvf``'s listing: regular files their size,
    symlinks their target's length (the engine counts lstat sizes), everything
    else 0; a path listed twice counts once (the last wins)."""
    cmd = ["tar", "--quoting-style=literal", "-tvf"]
    if isinstance(data_or_path, (bytes, bytearray)):
        out = subprocess.run(cmd + ["-"], input=data_or_path, capture_output=True, check=True).stdout
    else:
        out = subprocess.run(cmd + [str(data_or_path)], capture_output=True, check=True).stdout
    sizes: dict[str, int] = {}
    for line in out.decode("utf-8", errors="surrogateescape").splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        kind, size, name = line[0], parts[2], parts[5]
        if kind == "-":
            sizes[name] = int(size)
        elif kind == "l":
            name, _, target = name.partition(" -> ")
            sizes[name] = len(target.encode("utf-8", "surrogateescape"))
        else:
            name = name.partition(" link to ")[0]
            sizes[name.rstrip("/")] = 0
    return sum(sizes.values())


def tarfile_sizes(path) -> int:
    """Docker's layer size as the stdlib ``tarfile`` reads the headers (a second
    independent reader, sparse files at their unpacked size): regular files
    their size, symlinks their target's length, everything else 0; a path
    listed twice counts once (the last wins)."""
    sizes: dict[str, int] = {}
    with tarfile.open(path, mode="r:") as tf:
        for m in tf:
            if m.isreg():
                n = m.size
            elif m.issym():
                n = len(m.linkname.encode("utf-8", "surrogateescape"))
            else:
                n = 0
            sizes[m.name.rstrip("/").removeprefix("./")] = n
    return sum(sizes.values())


def member_bytes(archive: Path, name: str) -> bytes:
    """One member's bytes, by GNU tar (an independent reader)."""
    return subprocess.run(["tar", "-xOf", str(archive), name], capture_output=True, check=True).stdout


ATTESTATION = "attestation-manifest"


def platform_layout(root: Path, platforms: list[str], *, ref_name: str = "multi") -> dict[str, dict]:
    """An OCI layout whose ``index.json`` names (``ref_name``) a nested index of one
    image per ``os/arch[/variant]`` in ``platforms`` (each descriptor's platform
    object and its config say the same), each followed by a BuildKit-style
    attestation manifest (platform ``unknown/unknown``, annotation
    ``vnd.docker.reference.type: attestation-manifest``).  Returns
    ``{platform: {"manifest_digest", "config_digest"}}``."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict:
        d = sha(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return {"digest": d, "size": len(data)}

    def plat_obj(text: str) -> dict:
        os_, arch, *variant = text.split("/")
        return {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}

    entries, facts = [], {}
    for text in platforms:
        tar = layer_tar({f"made-for-{text.replace('/', '-')}": text.encode()})
        gz = compress(tar, "gzip")
        config = dict(config_for([sha(tar)]), **plat_obj(text))
        cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **put(json.dumps(config).encode())}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cdesc,
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(gz)}]}
        mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(json.dumps(manifest).encode()),
                 "platform": plat_obj(text)}
        facts[text] = {"manifest_digest": mdesc["digest"], "config_digest": cdesc["digest"]}
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": [mdesc["digest"]]}).encode()
        att_cfg = {"architecture": "unknown", "os": "unknown", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": [sha(statement)]}}
        att = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          **put(json.dumps(att_cfg).encode())},
               "layers": [{"mediaType": "application/vnd.in-toto+json", **put(statement),
                           "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]}
        adesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(json.dumps(att).encode()),
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": ATTESTATION,
                                 "vnd.docker.reference.digest": mdesc["digest"]}}
        entries += [mdesc, adesc]
    inner = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    idesc = {"mediaType": "application/vnd.oci.image.index.v1+json", **put(json.dumps(inner).encode()),
             "annotations": {"org.opencontainers.image.ref.name": ref_name}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [idesc]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return facts


def repo_info_text(name: str, platforms: list[str]) -> str:
    """A repo-info tag file (current format) with one section per ``os/arch[/variant]``,
    each followed by an ``unknown; unknown`` attestation section; Image IDs are
    the sha256 of the platform string."""
    def line(text: str) -> str:
        os_, arch, *variant = text.split("/")
        return f"{os_}; {arch}" + (f" variant {variant[0]}" if variant else "")

    out = [f"## `{name}`", "", "```console", f"$ docker pull {name.split(':')[0]}@{sha(name.encode())}", "```", ""]
    for text in platforms:
        for plat, ident in ((line(text), text), ("unknown; unknown", "attestation of " + text)):
            out += [f"### `{name}` - {plat}", "", "```console",
                    f"$ docker pull {name.split(':')[0]}@{sha(('manifest ' + ident).encode())}", "```", "",
                    f"-\tImage ID: `{sha(ident.encode())}`", ""]
    return "\n".join(out) + "\n"
