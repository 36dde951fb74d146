"""Evidence bundles: a signed SHA-256 manifest that verifies, and every kind of tampering that must not."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sharpeye.governance.evidence_bundle import (
    BundleError,
    Item,
    bundle_bytes,
    fingerprint,
    hub_key,
    verify_bundle,
)

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


@pytest.fixture
def evidence(tmp_path: Path) -> list[Item]:
    snap = tmp_path / "evidence" / "cam-1" / "snap.jpg"
    clip = tmp_path / "evidence" / "cam-1" / "clip.mp4"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"\xff\xd8jpeg" * 100)
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" * 1000)
    return [Item("cam-1/snap.jpg", snap), Item("cam-1/clip.mp4", clip), Item("cam-1/gone.jpg", tmp_path / "nope")]


def _rewrite(data: bytes, change: dict[str, bytes | None]) -> bytes:
    """The bundle with members replaced (bytes), removed (None) or added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name in change:
                continue
            dst.writestr(name, src.read(name))
        for name, body in change.items():
            if body is not None:
                dst.writestr(name, body)
    return out.getvalue()


def test_a_bundle_verifies_and_names_what_it_holds(tmp_path: Path, evidence: list[Item]) -> None:
    key = hub_key(tmp_path)
    data = bundle_bytes({"type": "alarm", "id": "a1"}, evidence, key, NOW, "qingshui")
    result = verify_bundle(io.BytesIO(data), fingerprint(key.public_key()))
    assert result.ok, result.problems
    assert sorted(result.checked) == ["cam-1/clip.mp4", "cam-1/snap.jpg"]
    assert result.manifest["missing"] == ["cam-1/gone.jpg"]
    assert result.manifest["subject"] == {"type": "alarm", "id": "a1"}


def test_the_hub_key_is_kept_and_private(tmp_path: Path) -> None:
    first = hub_key(tmp_path)
    again = hub_key(tmp_path)
    assert fingerprint(first.public_key()) == fingerprint(again.public_key())
    assert (tmp_path / "keys" / "evidence-ed25519.pem").stat().st_mode & 0o077 == 0


def test_tampering_is_refused(tmp_path: Path, evidence: list[Item]) -> None:
    key = hub_key(tmp_path)
    good = bundle_bytes({"type": "case", "id": "c1"}, evidence, key, NOW, "qingshui")
    trusted = fingerprint(key.public_key())

    changed_file = verify_bundle(io.BytesIO(_rewrite(good, {"files/cam-1/snap.jpg": b"another picture"})), trusted)
    assert not changed_file.ok and any("cam-1/snap.jpg" in p for p in changed_file.problems)

    removed = verify_bundle(io.BytesIO(_rewrite(good, {"files/cam-1/clip.mp4": None})), trusted)
    assert not removed.ok and any("cam-1/clip.mp4" in p and "not in the bundle" in p for p in removed.problems)

    added = verify_bundle(io.BytesIO(_rewrite(good, {"files/planted.jpg": b"x"})), trusted)
    assert not added.ok and any("planted.jpg" in p for p in added.problems)

    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        manifest = zf.read("manifest.json").replace(b'"c1"', b'"c2"')
    edited = verify_bundle(io.BytesIO(_rewrite(good, {"manifest.json": manifest})), trusted)
    assert not edited.ok and any("signature" in p for p in edited.problems)


def test_a_bundle_signed_by_another_key_is_refused_against_the_trusted_one(
    tmp_path: Path, evidence: list[Item]
) -> None:
    ours = hub_key(tmp_path / "ours")
    forger = hub_key(tmp_path / "forger")
    forged = bundle_bytes({"type": "alarm", "id": "a1"}, evidence, forger, NOW, "qingshui")
    assert verify_bundle(io.BytesIO(forged)).ok  # self-consistent...
    result = verify_bundle(io.BytesIO(forged), fingerprint(ours.public_key()))
    assert not result.ok and any("not the trusted key" in p for p in result.problems)


def test_not_a_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a ZIP"):
        verify_bundle(io.BytesIO(b"hello"))
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x.txt", "x")
    with pytest.raises(BundleError, match=r"manifest\.json"):
        verify_bundle(io.BytesIO(empty.getvalue()))
    with pytest.raises(BundleError, match="64 hex digits"):
        verify_bundle(io.BytesIO(bundle_bytes({}, [], hub_key(tmp_path), NOW, "h")), "abc")


def test_verify_command_and_openssl_agree(tmp_path: Path, evidence: list[Item]) -> None:
    key = hub_key(tmp_path)
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle_bytes({"type": "alarm", "id": "a1"}, evidence, key, NOW, "qingshui"))
    printed = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "evidence", "key", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    fp = printed.strip().splitlines()[-1].removeprefix("fingerprint ")
    assert fp == fingerprint(key.public_key())
    ok = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "evidence", "verify", str(path), "--fingerprint", fp],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.strip().endswith("VALID"), ok.stdout + ok.stderr
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_rewrite(path.read_bytes(), {"files/cam-1/snap.jpg": b"changed"}))
    refused = subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "evidence", "verify", str(bad), "--fingerprint", fp],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "INVALID" in refused.stdout and "cam-1/snap.jpg" in refused.stdout
    # Outside SharpEye: OpenSSL checks the same signature over the same manifest bytes.
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(out)
    openssl = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "hub-key.pem", "-rawin", "-in", "manifest.json",
         "-sigfile", "manifest.sig"],
        cwd=out, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert openssl.returncode == 0 and "Signature Verified Successfully" in openssl.stdout
