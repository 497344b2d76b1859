"""A process with no AWS region, no credentials and no sandbox: `up` stops at the region, after its local checks."""

from __future__ import annotations

from pathlib import Path

import pytest


def without_cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "INFPROV_NO_PREFLIGHT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("INFPROV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INFPROV_SANDBOX_DIR", str(tmp_path / "no-sandbox"))
