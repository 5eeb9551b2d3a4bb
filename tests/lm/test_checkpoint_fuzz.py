"""Fuzz: a few hundred seeded mutations of a tiny LM checkpoint's files; each load is a one-line AstrosnnError or
an accepted load of exactly the original tensors (a mutation no check can see: JSON layout). Never a traceback."""

from __future__ import annotations

import copy
import json
import random
import shutil
import time

import pytest
import torch

from astrosnn.data.text import char_corpus
from astrosnn.errors import AstrosnnError
from astrosnn.lm import TrainConfig, train
from astrosnn.lm.checkpoint import (
    CHECKPOINT_DIR,
    load_checkpoint,
    load_training_state,
    read_manifest,
)
from astrosnn.lm.training import make_optimizer
from astrosnn.runinfo import json_sha256

TEXT = "a stitch in time saves nine. all that glitters is not gold. " * 6
CFG = dict(model="lstm", width=8, layers=1, seq_len=8, batch_size=2, steps=3, eval_every=3, lr=3e-3, seed=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    cfg = TrainConfig(**CFG, out=str(out))
    train(cfg, corpus=char_corpus("toy", TEXT, "test"), progress=False, log=lambda *_: None)
    model = load_checkpoint(out).model
    return out, cfg, {k: v.clone() for k, v in model.state_dict().items()}


def _load_model_folder(folder):
    return load_checkpoint(folder).model.state_dict()


def _load_for_resume(out, cfg):
    folder, _ = read_manifest(out)
    model = load_checkpoint(folder, kind=cfg.model).model
    rng = torch.get_rng_state()
    try:
        load_training_state(folder, model, make_optimizer(model, cfg), cfg.batch_size)
    finally:
        torch.set_rng_state(rng)
    return model.state_dict()


def _outcome(load, original_tensors):
    """'refused' (one-line AstrosnnError) or 'accepted' (asserting the tensors are the original ones)."""
    try:
        tensors = load()
    except AstrosnnError as e:
        assert "\n" not in str(e), str(e)
        return "refused"
    assert set(tensors) == set(original_tensors)
    for k, v in tensors.items():
        assert torch.equal(v, original_tensors[k]), k
    return "accepted"


def _json_edit(obj, rng):
    """Delete a key, change a value's type, or change a number (shape-relevant ones included), anywhere."""
    paths = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                paths.append((path, k))
                walk(v, path + (k,))

    walk(obj, ())
    path, key = rng.choice(paths)
    parent = obj
    for p in path:
        parent = parent[p]
    what = rng.randrange(3)
    if what == 0:
        del parent[key]
    elif what == 1:
        parent[key] = rng.choice(["text", None, [1, 2], {"a": 1}, 1.5, True, -3, 10**30])
    else:
        v = parent[key]
        parent[key] = (v * rng.choice([0, 2, -1]) + rng.choice([0, 1])) if isinstance(v, (int, float)) else 0
    return obj


def test_fuzzed_checkpoints_never_traceback_nor_pass_silently(trained, tmp_path, fuzz):
    out, cfg, original = trained
    folder, _ = read_manifest(out)
    step_name = folder.name
    # (file relative to OUT, how it is loaded)
    targets = [("model.safetensors", "model"), ("config.json", "model"),
               (f"{CHECKPOINT_DIR}/manifest.json", "resume"),
               (f"{CHECKPOINT_DIR}/{step_name}/training_state.safetensors", "resume"),
               (f"{CHECKPOINT_DIR}/{step_name}/training_state.json", "resume"),
               (f"{CHECKPOINT_DIR}/{step_name}/model.safetensors", "resume"),
               (f"{CHECKPOINT_DIR}/{step_name}/config.json", "resume")]
    work = tmp_path / "work"
    shutil.copytree(out, work)
    counts = {"refused": 0, "accepted": 0}
    start = time.perf_counter()
    n = 0
    for ti, (rel, how) in enumerate(targets):
        data = (out / rel).read_bytes()
        load = (lambda: _load_model_folder(work)) if how == "model" else (lambda: _load_for_resume(work, cfg))
        for _, name, mutated in fuzz.cases(data, seed=100 + ti, n=36):
            (work / rel).write_bytes(mutated)
            result = _outcome(load, original)
            if result == "accepted":  # only a JSON file whose content (not layout) is unchanged may pass
                assert rel.endswith(".json"), (rel, name)
                assert json.loads(mutated) == json.loads(data), (rel, name)
            counts[result] += 1
            n += 1
        (work / rel).write_bytes(data)
    # JSON field edits of config.json: as they come (the checksum refuses them), and re-signed (the field checks)
    rng = random.Random(7)
    config = json.loads((out / "config.json").read_bytes())
    for i in range(60):
        edited = _json_edit(copy.deepcopy(config), rng)
        if i % 2:
            edited.pop("config_sha256", None)
            edited["config_sha256"] = json_sha256(edited)
        (work / "config.json").write_text(json.dumps(edited))
        result = _outcome(lambda: _load_model_folder(work), original)
        if result == "accepted":
            loaded = load_checkpoint(work)
            assert i % 2 and (loaded.vocab, loaded.level, loaded.kind) == (tuple(config["vocab"]), config["level"],
                                                                            config["kind"])
        counts[result] += 1
        n += 1
    elapsed = time.perf_counter() - start
    print(f"{n} cases: {counts}, {elapsed:.1f} s")
    assert n >= 300 and counts["refused"] >= 0.9 * n
    assert elapsed < 30
