"""Evidence that holds up outside SharpEye: a ZIP of an alarm's or a case's files with a signed SHA-256 manifest.

A bundle holds ``files/<name>`` (snapshots, clips, photos, as they are stored), ``manifest.json`` (what the bundle
is about, when and by which hub it was made, and every file's size and SHA-256), ``manifest.sig`` (the raw 64-byte
Ed25519 signature of the exact bytes of ``manifest.json``), ``hub-key.pem`` (the hub's public key) and
``VERIFY.txt`` (how to check it with SharpEye or with openssl and sha256sum alone).

The hub's signing key is made at first use under the data directory (``keys/evidence-ed25519.pem``, mode 0600) and
kept; its fingerprint (SHA-256 of the raw public key) is what a recipient compares with the one the hub publishes,
since a forger could put a key of their own into a bundle.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "hub-key.pem"
README = "VERIFY.txt"
FILES = "files/"
FORMAT = "sharpeye-evidence/1"
KEY_FILE = Path("keys") / "evidence-ed25519.pem"

VERIFY_TEXT = """SharpEye 证据包 / evidence bundle

校验 (verify) with SharpEye:
    sharpeye evidence verify THIS.zip --fingerprint <the hub's key fingerprint>

Without SharpEye (OpenSSL 3 and coreutils), after unzipping:
    openssl pkeyutl -verify -pubin -inkey hub-key.pem -rawin -in manifest.json -sigfile manifest.sig
    python3 -c "import json; m = json.load(open('manifest.json'))
    [print(f['sha256'] + '  files/' + f['name']) for f in m['files']]" | sha256sum -c
    openssl pkey -pubin -in hub-key.pem -outform DER | tail -c 32 | sha256sum   # the key's fingerprint

The fingerprint must equal the one the hub publishes (GET /api/evidence/key, or `sharpeye evidence key` on the hub):
anyone can sign a bundle with a key of their own.
"""


class BundleError(ValueError):
    """A bundle that cannot be read or does not verify: the message says what is wrong."""


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex in groups of four."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def normalise_fingerprint(text: str) -> str:
    digest = "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
    if len(digest) != 64:
        raise BundleError(f"a key fingerprint is 64 hex digits (SHA-256), got {len(digest)}")
    return ":".join(digest[i : i + 4] for i in range(0, 64, 4))


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def hub_key(data_dir: Path) -> Ed25519PrivateKey:
    """The hub's evidence signing key, made at first use and kept under the data directory (0600)."""
    path = data_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise BundleError(f"{path} holds no Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    try:
        os.link(tmp, path)  # the first writer wins; a concurrent one reads the kept key
    except FileExistsError:
        tmp.unlink()
        return hub_key(data_dir)
    tmp.unlink()
    return key


@dataclass(frozen=True)
class Item:
    """One file of a bundle: its name inside ``files/`` and where it is stored now."""

    name: str
    source: Path


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _safe_name(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise BundleError(f"evidence file name {name!r} is empty")
    return "/".join(parts)


def write_bundle(
    out: IO[bytes],
    subject: dict[str, Any],
    items: list[Item],
    key: Ed25519PrivateKey,
    now: datetime,
    hub: str,
) -> dict[str, Any]:
    """Write a bundle of ``items`` about ``subject`` (e.g. ``{"type": "alarm", "id": ...}``) to ``out``; returns
    the manifest. Files that no longer exist are listed as missing, never silently left out."""
    files: list[dict[str, Any]] = []
    missing: list[str] = []
    present: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for item in items:
        name = _safe_name(item.name)
        if name in seen:
            continue
        seen.add(name)
        if not item.source.is_file():
            missing.append(name)
            continue
        digest, size = _sha256(item.source)
        files.append({"name": name, "sha256": digest, "size": size})
        present.append((name, item.source))
    manifest = {
        "format": FORMAT,
        "subject": subject,
        "hub": hub,
        "created_at": now.isoformat(),
        "key_fingerprint": fingerprint(key.public_key()),
        "files": files,
        "missing": missing,
    }
    body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MANIFEST, body)
        zf.writestr(SIGNATURE, key.sign(body))
        zf.writestr(PUBLIC_KEY, public_pem(key.public_key()))
        zf.writestr(README, VERIFY_TEXT)
        for name, source in present:
            zf.write(source, FILES + name)
    return manifest


@dataclass
class Verification:
    """What ``verify_bundle`` found: ``ok`` only when the signature, the key and every file check out."""

    manifest: dict[str, Any] = field(default_factory=dict)
    key_fingerprint: str = ""
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(source: Path | IO[bytes], trusted_fingerprint: str | None = None) -> Verification:
    """Check a bundle: the signature over ``manifest.json`` with the bundled key, that key against
    ``trusted_fingerprint`` when given, and every file's SHA-256 and size; extra files are problems too."""
    result = Verification()
    try:
        zf = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"not a ZIP file: {exc}") from None
    with zf:
        names = set(zf.namelist())
        for required in (MANIFEST, SIGNATURE, PUBLIC_KEY):
            if required not in names:
                raise BundleError(f"the bundle has no {required}")
        body = zf.read(MANIFEST)
        try:
            public = serialization.load_pem_public_key(zf.read(PUBLIC_KEY))
        except ValueError as exc:
            raise BundleError(f"{PUBLIC_KEY} is not a PEM public key: {exc}") from None
        if not isinstance(public, Ed25519PublicKey):
            raise BundleError(f"{PUBLIC_KEY} is not an Ed25519 key")
        result.key_fingerprint = fingerprint(public)
        if trusted_fingerprint is not None and normalise_fingerprint(trusted_fingerprint) != result.key_fingerprint:
            trusted = normalise_fingerprint(trusted_fingerprint)
            result.problems.append(f"signed with key {result.key_fingerprint}, not the trusted key {trusted}")
        try:
            public.verify(zf.read(SIGNATURE), body)
        except InvalidSignature:
            result.problems.append("the signature does not match manifest.json (the manifest was changed)")
        try:
            manifest = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BundleError(f"manifest.json is not JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(f"manifest.json is not a {FORMAT} manifest")
        result.manifest = manifest
        listed: set[str] = set()
        for entry in manifest.get("files", []):
            name = str(entry.get("name", ""))
            listed.add(FILES + name)
            member = FILES + name
            if member not in names:
                result.problems.append(f"{name}: listed in the manifest but not in the bundle")
                continue
            digest = hashlib.sha256()
            size = 0
            with zf.open(member) as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            if digest.hexdigest() != entry.get("sha256") or size != entry.get("size"):
                result.problems.append(f"{name}: content differs from the manifest (SHA-256 or size)")
            else:
                result.checked.append(name)
        for extra in sorted(n for n in names if n.startswith(FILES) and n not in listed and not n.endswith("/")):
            result.problems.append(f"{extra[len(FILES) :]}: in the bundle but not in the signed manifest")
    return result


def bundle_bytes(subject: dict[str, Any], items: list[Item], key: Ed25519PrivateKey, now: datetime, hub: str) -> bytes:
    """``write_bundle`` into memory (bundles are a few clips and photos: megabytes)."""
    buf = io.BytesIO()
    write_bundle(buf, subject, items, key, now, hub)
    return buf.getvalue()
