"""Third-party browser libraries of the console, fetched from the npm registry, verified, kept in the data dir.

The wheel users install has no npm step and the repository carries no third-party library files, so the console's
libraries (the map's Leaflet and its plugins, the command screen's charts) are installed by
``sharpeye assets install``: for each package pinned in ``PACKAGES`` it downloads the registry's tarball over plain
HTTPS (or takes it from a directory carried into an air-gapped network, ``--from DIR``), checks it against the
pinned integrity hash (npm's ``sha512-…`` of the tarball, as the registry publishes it) and unpacks the files the
console uses into ``<data_dir>/assets/<package>/``. The hub serves them under ``/assets/<package>/…``; the console
asks ``/api/assets`` which are there and says how to install a missing one.

Adding a library is one entry in ``PACKAGES`` (name, version, integrity from ``npm view NAME@VERSION
dist.integrity``, the folders to keep).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = "https://registry.npmjs.org"
MAX_TARBALL = 64 << 20  # no console library comes near this; a bigger answer is not the pinned package
NOTE = ".installed.json"
INSTALL_HINT = "run `sharpeye assets install` (or `sharpeye assets install --from DIR` without network)"


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the parts of it the console serves."""

    name: str
    version: str
    integrity: str  # npm's integrity string of the tarball: "sha512-" + base64 of the SHA-512 digest
    keep: tuple[str, ...]  # paths inside the package (folders end with "/") to unpack; licence files always
    purpose: str

    @property
    def basename(self) -> str:
        """The tarball's file name as the registry serves it (a scope is not part of it)."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    @property
    def packed_name(self) -> str:
        """The tarball's file name as ``npm pack`` writes it (``@scope/name`` becomes ``scope-name``)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    def url(self, registry: str = DEFAULT_REGISTRY) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.basename}"

    def wanted(self, path: str) -> bool:
        """Whether a path inside the package (without the tarball's ``package/`` folder) is unpacked."""
        if PurePosixPath(path).name.upper().startswith(("LICENSE", "LICENCE")) and "/" not in path:
            return True
        return any(path == k or (k.endswith("/") and path.startswith(k)) for k in self.keep)


# The console's libraries. Integrity strings are the registry's ``dist.integrity`` of each version.
PACKAGES: dict[str, Package] = {
    p.name: p
    for p in (
        Package(
            "leaflet",
            "1.9.4",
            "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==",
            ("dist/leaflet.js", "dist/leaflet.css", "dist/images/"),
            "the console's geographic map (地图)",
        ),
        Package(
            "leaflet.markercluster",
            "1.5.3",
            "sha512-vPTw/Bndq7eQHjLBVlWpnGeLa3t+3zGiuM7fJwCkiMFq+nmRuG3RI3f7f4N4TDX7T4NpbAXpR2+NTRSEGfCSeA==",
            ("dist/leaflet.markercluster.js", "dist/MarkerCluster.css", "dist/MarkerCluster.Default.css"),
            "clusters of the map's markers",
        ),
        Package(
            "leaflet.heat",
            "0.2.0",
            "sha512-Cd5PbAA/rX3X3XKxfDoUGi9qp78FyhWYurFg3nsfhntcM/MCNK08pRkf4iEenO1KNqwVPKCmkyktjW3UD+h9bQ==",
            ("dist/leaflet-heat.js",),
            "the map's heat layer of cases",
        ),
        Package(
            "echarts",
            "6.1.0",
            "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==",
            ("dist/echarts.min.js", "NOTICE", "licenses/"),  # Apache-2.0: its NOTICE travels with it
            "the command screen's charts (大屏)",
        ),
    )
}


class AssetError(RuntimeError):
    """A package could not be fetched, verified or unpacked."""


def assets_dir(data_dir: Path) -> Path:
    return data_dir / "assets"


def package_dir(data_dir: Path, name: str) -> Path:
    return assets_dir(data_dir) / name


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def installed(data_dir: Path, packages: dict[str, Package] | None = None) -> dict[str, str]:
    """The pinned packages present in the data dir, name -> version (a stale or foreign install is absent)."""
    found: dict[str, str] = {}
    for name, package in (packages or PACKAGES).items():
        note = package_dir(data_dir, name) / NOTE
        try:
            kept = json.loads(note.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(kept, dict) and kept.get("integrity") == package.integrity:
            found[name] = package.version
    return found


def missing(data_dir: Path, packages: dict[str, Package] | None = None) -> list[str]:
    there = installed(data_dir, packages)
    return [name for name in (packages or PACKAGES) if name not in there]


def download(package: Package, into: Path, registry: str = DEFAULT_REGISTRY, *, timeout: float = 60,
             deadline: float | None = None) -> Path:  # fmt: skip
    """Fetch the package's tarball into ``into`` and verify it; returns its path. ``deadline`` (monotonic time)
    bounds the whole download."""
    url = package.url(registry)
    target = into / package.basename
    partial = target.with_name(target.name + ".part")
    size = 0
    if not url.startswith(("https://", "http://")):
        raise AssetError(f"registry {registry!r} is not an http(s) address")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "sharpeye-assets"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response, partial.open("wb") as out:  # noqa: S310
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_TARBALL:
                    raise AssetError(f"{url}: larger than {MAX_TARBALL >> 20} MiB, not the pinned package")
                if deadline is not None and time.monotonic() > deadline:
                    raise AssetError(f"{url}: download took too long")
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise AssetError(f"{package.name}@{package.version}: cannot download {url}: {exc}") from exc
    except AssetError:
        partial.unlink(missing_ok=True)
        raise
    verify(package, partial)
    partial.replace(target)
    return target


def verify(package: Package, tarball: Path) -> None:
    found = integrity_of(tarball)
    if found != package.integrity:
        raise AssetError(
            f"{tarball.name}: integrity {found} does not match the pinned {package.integrity} of "
            f"{package.name}@{package.version}; refused"
        )


def _from_dir(package: Package, source: Path) -> Path:
    for name in (package.basename, package.packed_name):
        if (source / name).is_file():
            return source / name
    raise AssetError(f"{source}: no {package.basename} for {package.name}@{package.version}")


def unpack(package: Package, tarball: Path, target: Path) -> list[str]:
    """Unpack the wanted regular files of a verified tarball into ``target`` (replaced whole); returns them."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    files: list[str] = []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 2 or ".." in parts or member.name.startswith("/"):
                    continue
                inner = "/".join(parts[1:])  # npm tarballs hold one top folder, normally "package"
                if not package.wanted(inner):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                out = staging / inner
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(source.read())
                files.append(inner)
        absent = [k for k in package.keep if not any(f == k or f.startswith(k) for f in files)]
        if absent:
            raise AssetError(f"{tarball.name} has no {', '.join(absent)}")
        (staging / NOTE).write_text(
            json.dumps(
                {
                    "package": package.name,
                    "version": package.version,
                    "integrity": package.integrity,
                    "files": sorted(files),
                },
                indent=2,
            )
        )
        if target.exists():
            old = target.with_name(f".{target.name}-old-{os.getpid()}")
            target.replace(old)
            shutil.rmtree(old, ignore_errors=True)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(files)


def install(
    data_dir: Path,
    *,
    source: Path | None = None,
    names: list[str] | None = None,
    registry: str = DEFAULT_REGISTRY,
    force: bool = False,
    timeout: float = 60,
    budget: float | None = None,
    packages: dict[str, Package] | None = None,
) -> dict[str, str]:
    """Install the pinned packages (all, or ``names``) into the data dir: from ``source`` (a directory of tarballs)
    or the registry. Returns name -> "installed" / "already installed". ``budget`` bounds the whole run, seconds."""
    catalogue = packages or PACKAGES
    chosen = names or list(catalogue)
    unknown = [n for n in chosen if n not in catalogue]
    if unknown:
        raise AssetError(f"unknown package {', '.join(unknown)}; known: {', '.join(catalogue)}")
    deadline = time.monotonic() + budget if budget is not None else None
    there = installed(data_dir, catalogue)
    done: dict[str, str] = {}
    for name in chosen:
        package = catalogue[name]
        if name in there and not force:
            done[name] = "already installed"
            continue
        with tempfile.TemporaryDirectory(prefix="sharpeye-assets-") as tmp:
            if source is not None:
                tarball = _from_dir(package, source)
                verify(package, tarball)
            else:
                tarball = download(package, Path(tmp), registry, timeout=timeout, deadline=deadline)
            unpack(package, tarball, package_dir(data_dir, name))
        log.info("installed %s@%s into %s", name, package.version, package_dir(data_dir, name))
        done[name] = "installed"
    return done


def fetch_to(into: Path, *, names: list[str] | None = None, registry: str = DEFAULT_REGISTRY,
             timeout: float = 60, packages: dict[str, Package] | None = None) -> list[Path]:  # fmt: skip
    """Download the verified tarballs into a directory (to carry into an air-gapped network)."""
    catalogue = packages or PACKAGES
    chosen = names or list(catalogue)
    unknown = [n for n in chosen if n not in catalogue]
    if unknown:
        raise AssetError(f"unknown package {', '.join(unknown)}; known: {', '.join(catalogue)}")
    into.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in chosen:
        package = catalogue[name]
        existing = into / package.basename
        if existing.is_file():
            try:
                verify(package, existing)
                paths.append(existing)
                continue
            except AssetError:
                existing.unlink()
        paths.append(download(package, into, registry, timeout=timeout))
    return paths


def served_file(data_dir: Path, name: str, path: str) -> Path | None:
    """The installed file ``path`` of package ``name``, or None (unknown package, absent file, escape attempt)."""
    if name not in PACKAGES:
        return None
    root = package_dir(data_dir, name).resolve()
    if not path or path == NOTE:
        return None
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate
