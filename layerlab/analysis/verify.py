"""``verify(img_or_fleet)``: read every stored layer blob and check it against
both of its digests, reporting each mismatch instead of raising.

Unlike ``files(verify=True)``, which stops at the first bad layer and skips
layers whose file tables are cached, this reads every blob from the source
(no cache), so it answers "is this copy intact?" for the whole image.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import AnalysisError, LayerlabError

VERIFY_COLUMNS: dict[str, str] = {
    "image": "string",
    "position": "Int64",
    "positions": "string",
    "media_type": "string",
    "digest": "string",
    "actual_digest": "string",
    "diff_id": "string",
    "actual_diff_id": "string",
    "compressed_size": "Int64",
    "actual_compressed_size": "Int64",
    "ok": "boolean",
    "error": "string",
}


def _images(data: Any) -> list:
    from ..model import Fleet, Image

    if isinstance(data, Image):
        return [data]
    if isinstance(data, Fleet):
        return list(data)
    if isinstance(data, (list, tuple)) and all(isinstance(i, Image) for i in data):
        return list(data)
    raise AnalysisError(f"verify: expected an Image or a Fleet, got {type(data).__name__}")


def _check_blob(img, poss: list[int], media_type, fileobj) -> dict:
    """One row: the blob read to its end through a digest-hashing reader and a decoder."""
    from ..contents.compression import DecodedStream
    from ..contents.options import layer_label
    from ..contents.verify import DigestReader, checkable

    layer = img.layer_list[poss[0]]
    label = layer_label(img, poss[0])
    row = {"image": img.reference, "position": poss[0], "positions": ",".join(map(str, poss)),
           "media_type": media_type or layer.media_type, "digest": layer.digest, "diff_id": layer.diff_id,
           "compressed_size": layer.compressed_size}
    errors: list[str] = []
    reader = DigestReader(fileobj, layer.digest or "", label)
    try:
        stream = DecodedStream(reader, label=label, media_type=row["media_type"])
        try:
            stream.drain()
            row["actual_diff_id"] = stream.sha256
        finally:
            stream.close()
    except LayerlabError as e:
        errors.append(str(e))
    try:
        row["actual_digest"] = reader.digest()
        row["actual_compressed_size"] = reader.length
    except LayerlabError as e:
        errors.append(str(e))
    finally:
        reader.close()
    checked = False
    for what, want, got in (("digest", layer.digest, row.get("actual_digest")),
                            ("diff_id", layer.diff_id, row.get("actual_diff_id"))):
        if checkable(want) and got is not None:
            checked = True
            if want != got:
                errors.append(f"{label}: the blob's {what} is {got}, not {want}")
    want_len, got_len = layer.compressed_size, row.get("actual_compressed_size")
    if want_len is not None and got_len is not None and want_len != got_len:
        errors.append(f"{label}: the blob is {got_len} bytes, not the {want_len} its manifest states")
    if not checked and not errors:
        errors.append(f"{label}: the source states no digest to check this blob against")
        row["ok"] = None
    else:
        row["ok"] = not errors
    row["error"] = "; ".join(errors) or None
    return row


def _image_rows(img, bar) -> list[dict]:
    if img.blobs is None:
        return [{"image": img.reference, "position": l.position, "positions": str(l.position), "digest": l.digest,
                 "diff_id": l.diff_id, "media_type": l.media_type, "compressed_size": l.compressed_size,
                 "ok": None, "error": f"{img.reference}: a {img.source!r} source has no layer blobs to read"}
                for l in img.layer_list]
    rows: list[dict] = []
    seen: set[int] = set()
    blobs = img.blobs.iter_blobs(None)
    try:
        for poss, media_type, fileobj in blobs:
            if poss[0] in seen:
                continue
            seen.update(poss)
            rows.append(_check_blob(img, list(poss), media_type, fileobj))
            if bar is not None:
                bar.update(len(poss))
    except LayerlabError as e:
        rows.append({"image": img.reference, "ok": False, "error": str(e)})
    finally:
        blobs.close()
    for layer in img.layer_list:
        if layer.position not in seen and not any(r.get("position") is None for r in rows):
            rows.append({"image": img.reference, "position": layer.position, "positions": str(layer.position),
                         "digest": layer.digest, "diff_id": layer.diff_id, "ok": False,
                         "error": f"{img.reference}: the source did not provide the blob of layer {layer.position}"})
    return sorted(rows, key=lambda r: (r.get("position") is None, r.get("position") or 0))


def verify(data: Any, *, progress: bool = True) -> pd.DataFrame:
    """Read every layer blob of an Image or Fleet and check it: its stored
    bytes against the manifest's ``digest`` (and ``compressed_size``), its
    uncompressed bytes against the config's ``diff_id``.  Mismatches,
    corrupt compression and unreadable blobs are reported, never raised.

    One row per distinct blob of each image (a blob used at several positions
    is read once):

    ======================  ========  ===============================================
    image                   string    the image
    position                Int64     the first position using the blob
    positions               string    every position using it, comma-separated
    media_type              string    as stored (or declared)
    digest                  string    the blob digest the source states (null: none)
    actual_digest           string    sha256 of the stored bytes
    diff_id                 string    the diff_id the config states
    actual_diff_id          string    sha256 of the uncompressed bytes
    compressed_size         Int64     the length the manifest states
    actual_compressed_size  Int64     the bytes read
    ok                      boolean   every stated digest and length matched, no error
                                      (null: the source states nothing to check)
    error                   string    what failed, in words (null when ok)
    ======================  ========  ===============================================

    Images without blobs (history, manifests, snapshots) give one row per
    layer with ``ok`` null and the reason.  The cache is neither read nor
    written."""
    from ..frames import typed_frame

    images = _images(data)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(i.layer_list) for i in images), desc="verifying blobs", unit="layer", leave=False)
    try:
        rows = [r for img in images for r in _image_rows(img, bar)]
    finally:
        if bar is not None:
            bar.close()
    return typed_frame(rows, VERIFY_COLUMNS)


__all__ = ["VERIFY_COLUMNS", "verify"]
