import json

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.runinfo import atomic_write_json, load_json, load_tensors, save_tensors, versions


def test_tensors_roundtrip(tmp_path):
    t = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "i": torch.tensor([1, 2])}
    save_tensors(tmp_path / "a.safetensors", t)
    back = load_tensors(tmp_path / "a.safetensors")
    assert torch.equal(back["w"], t["w"]) and torch.equal(back["i"], t["i"])
    assert not list(tmp_path.glob(".*tmp"))


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    save_tensors(tmp_path / "a.safetensors", {"w": torch.zeros(100)})
    raw = (tmp_path / "a.safetensors").read_bytes()
    (tmp_path / "b.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AstrosnnError, match="b.safetensors"):
        load_tensors(tmp_path / "b.safetensors")
    with pytest.raises(AstrosnnError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")


def test_json_roundtrip_and_versions(tmp_path):
    atomic_write_json(tmp_path / "c.json", {"v": versions()})
    assert load_json(tmp_path / "c.json")["v"]["torch"] == torch.__version__
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AstrosnnError, match="bad.json"):
        load_json(tmp_path / "bad.json")
    assert json.loads((tmp_path / "c.json").read_text())
