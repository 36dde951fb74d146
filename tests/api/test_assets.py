"""``sharpeye assets install``: pinned tarballs verified before anything is unpacked, from a registry or a folder."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sharpeye.api import assets
from sharpeye.api.assets import AssetError, Package

from sharpeye.node.cli import main


def make_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def pinned(tarball: Path, name: str = "maplib", version: str = "1.2.3") -> Package:
    return Package(name, version, assets.integrity_of(tarball), ("dist/map.js", "dist/images/"), "a test library")


FILES = {
    "package/dist/map.js": b"window.MapLib = 1;",
    "package/dist/images/marker.png": b"\x89PNG fake",
    "package/dist/map-src.js": b"not wanted",
    "package/LICENSE": b"BSD-2-Clause",
    "package/../escape.js": b"never written",
    "/abs.js": b"never written",
}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A folder served over HTTP as a registry (``/<name>/-/<file>``), recording every request path."""
    root = tmp_path / "registry"
    root.mkdir()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, seen
    server.shutdown()
    server.server_close()


def test_install_from_registry_unpacks_only_wanted_files(tmp_path: Path, registry: tuple[str, Path, list[str]]) -> None:
    url, root, seen = registry
    (root / "maplib" / "-").mkdir(parents=True)
    tarball = make_tarball(root / "maplib" / "-" / "maplib-1.2.3.tgz", FILES)
    package = pinned(tarball)
    data = tmp_path / "data"
    assert assets.missing(data, {"maplib": package}) == ["maplib"]
    done = assets.install(data, registry=url, packages={"maplib": package})
    assert done == {"maplib": "installed"}
    assert seen and seen[0].startswith("/maplib/-/maplib-1.2.3.tgz")
    target = data / "assets" / "maplib"
    kept = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert kept == [".installed.json", "LICENSE", "dist/images/marker.png", "dist/map.js"]
    assert not (tmp_path / "escape.js").exists() and not (data / "assets" / "escape.js").exists()
    assert assets.installed(data, {"maplib": package}) == {"maplib": "1.2.3"}
    # a second run is a no-op: nothing fetched
    requests = len(seen)
    assert assets.install(data, registry=url, packages={"maplib": package}) == {"maplib": "already installed"}
    assert len(seen) == requests


def test_a_tarball_whose_hash_differs_is_refused(tmp_path: Path, registry: tuple[str, Path, list[str]]) -> None:
    url, root, _ = registry
    (root / "maplib" / "-").mkdir(parents=True)
    tarball = make_tarball(root / "maplib" / "-" / "maplib-1.2.3.tgz", FILES)
    package = pinned(tarball)
    tampered = dict(FILES, **{"package/dist/map.js": b"window.MapLib = 'evil';"})
    make_tarball(tarball, tampered)  # the registry now serves other bytes than those pinned
    data = tmp_path / "data"
    with pytest.raises(AssetError, match="does not match the pinned"):
        assets.install(data, registry=url, packages={"maplib": package})
    assert not (data / "assets" / "maplib").exists()
    # the same from a carried folder
    with pytest.raises(AssetError, match="does not match the pinned"):
        assets.install(data, source=tarball.parent, packages={"maplib": package})
    assert not (data / "assets" / "maplib").exists()


def test_install_from_folder_and_missing_member(tmp_path: Path) -> None:
    carried = tmp_path / "carried"
    carried.mkdir()
    tarball = make_tarball(carried / "maplib-1.2.3.tgz", FILES)
    package = pinned(tarball)
    data = tmp_path / "data"
    assert assets.install(data, source=carried, packages={"maplib": package}) == {"maplib": "installed"}
    with pytest.raises(AssetError, match=r"no maplib-1\.2\.3\.tgz"):
        assets.install(data, source=tmp_path, packages={"maplib": package}, force=True)
    incomplete = make_tarball(tmp_path / "maplib-1.2.3.tgz", {"package/dist/other.js": b"x"})
    with pytest.raises(AssetError, match=r"has no dist/map\.js"):
        assets.install(data, source=tmp_path, packages={"maplib": pinned(incomplete)}, force=True)
    # the earlier install is untouched by the failed one
    assert (data / "assets" / "maplib" / "dist" / "map.js").read_bytes() == b"window.MapLib = 1;"
    with pytest.raises(AssetError, match="unknown package nope"):
        assets.install(data, names=["nope"], packages={"maplib": package})


def test_served_file_stays_inside_the_package(tmp_path: Path) -> None:
    leaflet = tmp_path / "assets" / "leaflet"
    (leaflet / "dist").mkdir(parents=True)
    (leaflet / "dist" / "leaflet.js").write_text("L")
    (tmp_path / "secret").write_text("s")
    assert assets.served_file(tmp_path, "leaflet", "dist/leaflet.js") == (leaflet / "dist" / "leaflet.js").resolve()
    assert assets.served_file(tmp_path, "leaflet", "../../secret") is None
    assert assets.served_file(tmp_path, "leaflet", ".installed.json") is None
    assert assets.served_file(tmp_path, "other", "dist/leaflet.js") is None


def test_pinned_packages_are_well_formed() -> None:
    for name, package in assets.PACKAGES.items():
        assert name == package.name and package.keep
        assert package.integrity.startswith("sha512-") and len(package.integrity) == 95


def test_cli_refuses_a_carried_tarball_with_another_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    carried = tmp_path / "carried"
    carried.mkdir()
    make_tarball(carried / assets.PACKAGES["leaflet"].basename, FILES)  # right name, wrong bytes
    code = main(["assets", "install", "leaflet", "--from", str(carried), "--data-dir", str(tmp_path / "data")])
    assert code == 1
    assert "does not match the pinned" in capsys.readouterr().err
    assert assets.installed(tmp_path / "data") == {}
