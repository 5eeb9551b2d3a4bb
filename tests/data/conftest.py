"""Data tests run with checksum verification on, whatever the calling shell has set."""

import pytest


@pytest.fixture(autouse=True)
def _verification_on(monkeypatch):
    monkeypatch.delenv("ASTROSNN_SKIP_CHECKSUMS", raising=False)
