"""Docker's ``certs.d`` layout: per-registry CA certificates and client certificate pairs.

The Docker Engine reads ``/etc/docker/certs.d/HOST[:PORT]/`` (rootless:
``$XDG_CONFIG_HOME/docker/certs.d``) when it talks TLS to a registry; podman
and skopeo read the same layout under ``/etc/containers/certs.d`` and
``~/.config/containers/certs.d`` as well.  In a host's directory, as moby's
``registry.ReadCertsDirectory`` reads it:

* ``*.crt`` — CA certificates, trusted *in addition to* the system's;
* ``*.cert`` + ``*.key`` with the same stem — a client certificate and its key
  (a ``.cert`` without its ``.key``, or the reverse, is an error: CA files
  must be named ``.crt``).

:func:`host_tls` returns what ``requests`` takes: ``verify`` (True or the path
of a CA bundle: the system bundle followed by the ``.crt`` files, written once
per content under the temp directory) and ``cert`` (``(cert, key)`` paths, or
None).  ``requests`` loads one client pair; with several, the first by name is
used.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from ..errors import SourceError


def default_dirs() -> list[Path]:
    """Where certs.d trees are looked for, first match wins (the user's before the system's)."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [config / "docker/certs.d", config / "containers/certs.d",
            Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d")]


def host_dir(host: str, certs_dir) -> Path | None:
    """The certs.d directory for ``host`` (``name[:port]``), or None when there is none.

    ``certs_dir``: None for :func:`default_dirs`, False for none, a path or a
    list of paths of certs.d trees."""
    if certs_dir is False:
        return None
    if certs_dir is None:
        roots = default_dirs()
    elif isinstance(certs_dir, (str, os.PathLike)):
        roots = [Path(certs_dir)]
    else:
        roots = [Path(p) for p in certs_dir]
    for root in roots:
        d = root / host  # docker names the directory "host:port"
        if d.is_dir():
            return d
    return None


def host_tls(host: str, certs_dir, verify: bool | str) -> tuple[bool | str, tuple[str, str] | None, Path | None]:
    """(verify, cert, directory) for talking TLS to ``host``; ``verify`` as given when no certs.d applies."""
    d = host_dir(host, certs_dir)
    if d is None:
        return verify, None, None
    try:
        names = sorted(p.name for p in d.iterdir())
    except OSError as e:
        raise SourceError(f"{d}: cannot read the registry's certificate directory ({e})") from e
    cas = [d / n for n in names if n.endswith(".crt")]
    certs = [n for n in names if n.endswith(".cert")]
    keys = [n for n in names if n.endswith(".key")]
    for c in certs:
        if c[:-5] + ".key" not in names:
            raise SourceError(
                f"{d / c}: client certificate without its key {c[:-5] + '.key'}; "
                "CA certificates must be named *.crt"
            )
    for k in keys:
        if k[:-4] + ".cert" not in names:
            raise SourceError(f"{d / k}: key without its client certificate {k[:-4] + '.cert'}")
    cert = (str(d / certs[0]), str(d / certs[0][:-5]) + ".key") if certs else None
    if verify is False or not cas:
        return verify, cert, d
    return _bundle(cas, verify, d), cert, d


def _bundle(cas: list[Path], verify: bool | str, d: Path) -> str:
    """A CA bundle: the system's (or the given bundle) followed by ``cas``; cached by content."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    base = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    parts = []
    for p in [Path(base), *cas]:
        try:
            parts.append(p.read_bytes().rstrip(b"\n") + b"\n")
        except OSError as e:
            raise SourceError(f"{p}: cannot read this CA certificate file ({e})") from e
    for p, data in zip(cas, parts[1:]):
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise SourceError(f"{p}: not a PEM certificate (certs.d/{d.name}/*.crt must hold CA certificates)")
    blob = b"".join(parts)
    where = Path(tempfile.gettempdir()) / f"layerlab-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    where.mkdir(mode=0o700, exist_ok=True)
    path = where / f"ca-{hashlib.sha256(blob).hexdigest()[:24]}.pem"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return str(path)
