import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

import astrosnn
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


def test_atomic_writes_honour_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o640


def test_fingerprint_differences_and_refusal(tmp_path):
    from astrosnn.runinfo import differences, json_sha256, refuse_changed_options

    saved = {"lr": 0.1, "model": {"width": 16, "heads": 2}, "seed": 0}
    given = {"lr": 0.2, "model": {"width": 16, "heads": 4}, "seed": 0, "extra": 1}
    assert differences(saved, given) == ["extra", "lr", "model.heads"]
    refuse_changed_options(tmp_path, saved, json.loads(json.dumps(saved)))
    with pytest.raises(AstrosnnError, match=r"other settings \(extra, lr, model.heads\)"):
        refuse_changed_options(tmp_path, saved, given)
    assert json_sha256({"a": 1, "b": [1.0]}) == json_sha256(json.loads('{ "b": [1.0],  "a": 1 }'))
    assert json_sha256({"a": 1}) != json_sha256({"a": 2})


def test_unreadable_json_is_one_line(tmp_path):
    (tmp_path / "big.json").write_text("1" * 5000)  # beyond Python's int-from-text limit
    with pytest.raises(AstrosnnError, match="big.json"):
        load_json(tmp_path / "big.json")


def test_git_commit_recorded_from_a_checkout():
    src = Path(astrosnn.__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(src), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    if Path(top).resolve() / "src" / "astrosnn" != src:
        pytest.skip("astrosnn is installed, not run from its checkout")
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", versions()["git_commit"])
