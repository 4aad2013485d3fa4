"""Platforms: how ``os/arch[/variant]`` is read, normalised and matched, once for
every source (``oci:``, ``oci-archive:``, ``docker://``, ``repo-info:``,
``docker-daemon:``), and which index entries are attestations, not images.

The rule follows the OCI image-index spec's ``platform`` object and the
defaults of containerd's ``platforms`` package (``Normalize``, matched as
``OnlyStrict`` does) and containers/image (``WantedPlatforms``):

* names are normalised: lower case; ``x86_64``/``x86-64`` → ``amd64``,
  ``aarch64`` → ``arm64``, ``i386`` → ``386``, ``armhf`` → ``arm/v7``,
  ``armel`` → ``arm/v6``, ``macos`` → ``darwin``;
* variants: ``v8`` is arm64's base variant (every arm64 CPU has it), so
  ``linux/arm64``, ``linux/arm64/v8`` (and ``8``, ``v8.0``) are one platform;
  arm without a variant is ``arm/v7`` (``7`` → ``v7``); ``amd64/v1`` is
  ``amd64``;
* two platforms match when they are equal after normalisation:
  ``linux/arm64`` matches an entry ``linux/arm64/v8`` and a variant-less
  ``linux/arm64``; ``linux/arm/v7`` matches ``linux/arm/v7`` and a
  variant-less ``linux/arm``, never ``linux/arm/v6`` (an older variant is
  another image, chosen only when asked for);
* among several matching entries, one spelt exactly as asked wins, then the
  first in index order (containers/image tries the wanted variant first);
* attestation manifests (BuildKit's provenance/SBOM: annotation
  ``vnd.docker.reference.type: attestation-manifest``, platform
  ``unknown/unknown``) are not images and are never chosen.
"""
from __future__ import annotations

import functools
import platform as _platform
from typing import Any, Sequence

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_TYPE = "attestation-manifest"

_OS = {"macos": "darwin"}
_ARCH = {"x86_64": ("amd64", None), "x86-64": ("amd64", None), "aarch64": ("arm64", None),
         "i386": ("386", ""), "armhf": ("arm", "v7"), "armel": ("arm", "v6")}
_ARM64_BASE = {"", "8", "v8", "v8.0"}
_ARM64_V9 = {"9", "9.0", "v9.0"}

# uname -m -> the platform Docker pulls on such a host
_MACHINE = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm/v7", "armv6l": "arm/v6", "armv5tel": "arm/v5", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}


def format_platform(os_: Any, arch: Any, variant: Any = None) -> str | None:
    """``os/arch[/variant]``, or None unless ``os_`` and ``arch`` are non-empty strings."""
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    return f"{os_}/{arch}" + (f"/{variant}" if isinstance(variant, str) and variant else "")


def platform_of(obj: Any) -> str | None:
    """The platform an image config or an index entry's ``platform`` object states
    (keys ``os``, ``architecture``, ``variant``); None when it states none."""
    if not isinstance(obj, dict):
        return None
    return format_platform(obj.get("os"), obj.get("architecture"), obj.get("variant"))


def descriptor_platform(desc: dict) -> str | None:
    """The platform of an index entry (its ``platform`` object), or None."""
    return platform_of(desc.get("platform"))


@functools.lru_cache(maxsize=256)
def normalise(text: str) -> str | None:
    """The canonical form of ``os/arch[/variant]`` (see the module doc); None when
    ``text`` does not name both an OS and an architecture."""
    parts = [p.strip().lower() for p in text.strip().strip("/").split("/")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    os_, arch = _OS.get(parts[0], parts[0]), parts[1]
    variant = parts[2] if len(parts) > 2 else ""
    if arch in _ARCH:
        arch, forced = _ARCH[arch]
        variant = forced if forced is not None else variant
    if arch == "arm64":
        variant = "" if variant in _ARM64_BASE else ("v9" if variant in _ARM64_V9 else variant)
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return f"{os_}/{arch}" + (f"/{variant}" if variant else "")


def matches(have: str | None, want: str) -> bool:
    """Whether an image of platform ``have`` is the platform ``want`` asks for."""
    if have is None:
        return False
    w = normalise(want)
    return w is not None and normalise(have) == w


def matching(platforms: Sequence[str | None], want: str) -> list[int]:
    """Indices of the entries of ``platforms`` (one per entry, None when unstated)
    that are ``want``: the ones spelt exactly as asked when there are any,
    else every match."""
    hits = [i for i, p in enumerate(platforms) if matches(p, want)]
    exact = [i for i in hits if platforms[i] == want.strip()]
    return exact or hits


def choose(platforms: Sequence[str | None], want: str) -> int | None:
    """Index of the entry to take for ``want`` (the first of :func:`matching`), or None."""
    hits = matching(platforms, want)
    return hits[0] if hits else None


def host_platform() -> str:
    """The platform Docker would pull for this host (``linux/amd64`` on x86_64,
    ``linux/arm/v7`` on an ARMv7 host)."""
    machine = _platform.machine().lower()
    return "linux/" + _MACHINE.get(machine, machine)


def is_attestation(platform: str | None, annotations: Any = None) -> bool:
    """Whether an index entry (its platform, its annotations) is an attestation manifest."""
    if isinstance(annotations, dict) and annotations.get(ATTESTATION_ANNOTATION) == ATTESTATION_TYPE:
        return True
    return platform is not None and normalise(platform) == "unknown/unknown"
