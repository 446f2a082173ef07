"""Shared test fixtures.

Real images live in ../shared/data beside the checkout (never copied into the project).
Set MAI_SR_DATA to point elsewhere.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding Set5, Set14, B100, T91, BSD200."""
    if not (SHARED_DATA / "Set14").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}: put ../shared/data beside the "
                    "checkout or set MAI_SR_DATA")
    return SHARED_DATA


SHARED_ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS",
                                       ROOT.parent / "shared" / "artifacts")).resolve()


@pytest.fixture(scope="session")
def shared_artifacts() -> Path:
    """Folder of real published models (nju_abpn, megsr_ncnet, etds_abpn; see its SOURCES.md)."""
    if not (SHARED_ARTIFACTS / "SOURCES.md").is_file():
        pytest.skip(f"published models not found at {SHARED_ARTIFACTS}: put ../shared/artifacts "
                    "beside the checkout or set MAI_SR_ARTIFACTS")
    return SHARED_ARTIFACTS


def link_images(folder: Path, shared_data: Path, names) -> Path:
    """A folder of symlinks to real images in the shared data (never copies), e.g.
    ``link_images(tmp, shared_data, ["Set5/bird.png"])``; returns the folder."""
    for name in names:
        (folder / Path(name).name).symlink_to(shared_data / name)
    return folder


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path_factory):
    """Tests never read or fill the user's ~/.cache/mai-sr (eval's bicubic baselines): one
    cache for the whole test session, in pytest's temp folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
