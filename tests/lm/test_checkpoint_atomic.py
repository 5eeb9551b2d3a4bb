"""LM checkpoints are one atomic, hashed unit; every file is checked on load; a resume repeats the run's options."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import astrosnn.lm.checkpoint as ckpt_mod
from astrosnn.data.text import char_corpus
from astrosnn.errors import AstrosnnError
from astrosnn.lm import TrainConfig, build_model, train
from astrosnn.lm.checkpoint import (
    CHECKPOINT_DIR,
    MANIFEST,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
)
from astrosnn.lm.generation import Vocabulary, generate
from astrosnn.runinfo import json_sha256

TEXT = ("the quick brown fox jumps over the lazy dog. a stitch in time saves nine. " * 10)
QUIET = {"progress": False, "log": lambda *_: None}


@pytest.fixture(scope="module")
def corpus():
    return char_corpus("toy", TEXT, "test")


def cfg(out, **kw) -> TrainConfig:
    options = dict(model="lstm", width=16, layers=1, seq_len=16, batch_size=4, steps=8, eval_every=2, lr=3e-3,
                   out=str(out), seed=3)
    options.update(kw)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    metrics = train(cfg(out), corpus=corpus, **QUIET)
    return out, metrics


def resign(path, config):
    """Write a config.json whose checksum matches its (edited) content: what a careful forger would do."""
    config = {k: v for k, v in config.items() if k != "config_sha256"}
    config["config_sha256"] = json_sha256(config)
    path.write_text(json.dumps(config))


# ------------------------------------------------------------------------------------------ layout


def test_layout_one_step_folder_and_a_manifest(finished):
    out, metrics = finished
    root = out / CHECKPOINT_DIR
    folders = [p.name for p in root.iterdir() if p.is_dir()]
    assert folders == ["step-00000008"]  # older steps pruned
    folder, manifest = read_manifest(out)
    assert manifest["step"] == 8 and set(manifest["files"]) == {"model.safetensors", "config.json",
                                                                "training_state.safetensors", "training_state.json"}
    # the exported model at OUT is the step folder's, byte for byte
    assert (out / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert load_checkpoint(out).verified
    assert metrics["wall_time_s"] >= metrics["train_time_s"]
    assert not (out / ".lock").read_text().strip()  # released


def test_kill_during_a_save_resumes_from_the_last_complete_step(tmp_path, corpus, monkeypatch):
    straight = train(cfg(tmp_path / "straight"), corpus=corpus, **QUIET)
    real = ckpt_mod.save_training_state

    def dies_at_step_6(directory, optimizer, carried, progress, fingerprint=None):
        if progress["step"] == 6:  # the model of step 6 is written, its optimizer state is not
            raise SystemExit("killed")
        return real(directory, optimizer, carried, progress, fingerprint)

    monkeypatch.setattr(ckpt_mod, "save_training_state", dies_at_step_6)
    with pytest.raises(SystemExit):
        train(cfg(tmp_path / "killed"), corpus=corpus, **QUIET)
    monkeypatch.undo()
    _, manifest = read_manifest(tmp_path / "killed")
    assert manifest["step"] == 4
    assert not [p for p in (tmp_path / "killed" / CHECKPOINT_DIR).iterdir() if p.name.startswith(".tmp")]
    resumed = train(cfg(tmp_path / "killed"), resume=True, corpus=corpus, **QUIET)
    assert resumed["steps"] == 8
    assert resumed["train_loss"] == straight["train_loss"]
    assert resumed["final_validation"]["loss"] == straight["final_validation"]["loss"]
    assert resumed["wall_time_s"] >= resumed["train_time_s"]


def test_a_fresh_run_refuses_a_folder_with_an_interrupted_run(tmp_path, corpus):
    train(cfg(tmp_path / "r"), corpus=corpus, stop_at_step=4, **QUIET)
    with pytest.raises(AstrosnnError, match=r"holds an interrupted run \(step 4\).*add --resume"):
        train(cfg(tmp_path / "r"), corpus=corpus, **QUIET)
    done = train(cfg(tmp_path / "r"), resume=True, corpus=corpus, **QUIET)
    assert done["finished"] and done["steps"] == 8


# ------------------------------------------------------------------------------------------ resume options


def test_resume_refuses_changed_options(tmp_path, corpus):
    train(cfg(tmp_path / "r"), corpus=corpus, stop_at_step=4, **QUIET)
    for change, key in [({"lr": 1e-3}, "train_config.lr"), ({"seq_len": 8}, "train_config.seq_len"),
                        ({"batch_size": 2}, "train_config.batch_size"), ({"seed": 4}, "train_config.seed"),
                        ({"width": 24}, "train_config.width"),
                        ({"model_options": {"dropout": 0.1}}, "train_config.model_options.dropout")]:
        with pytest.raises(AstrosnnError, match=rf"other settings \({key}\)"):
            train(cfg(tmp_path / "r", **change), resume=True, corpus=corpus, **QUIET)
    other = char_corpus("toy", TEXT.replace("fox", "xof"), "test")  # same vocabulary, other text
    with pytest.raises(AstrosnnError, match=r"corpus.sha256"):
        train(cfg(tmp_path / "r"), resume=True, corpus=other, **QUIET)
    with pytest.raises(AstrosnnError, match=r"has done 4 steps, more than steps=3"):
        train(cfg(tmp_path / "r", steps=3), resume=True, corpus=corpus, **QUIET)
    longer = train(cfg(tmp_path / "r", steps=10), resume=True, corpus=corpus, **QUIET)  # a longer run is fine
    assert longer["steps"] == 10 and longer["config"]["steps"] == 10


def test_old_format_folders(tmp_path, finished):
    out, _ = finished
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(out / "model.safetensors", old / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    for key in ("config_sha256", "weights_sha256"):
        del config[key]
    config["format_version"] = 1
    (old / "config.json").write_text(json.dumps(config))
    loaded = load_checkpoint(old)  # generate still reads it, unverified
    assert not loaded.verified
    (old / "training_state.json").write_text("{}")
    with pytest.raises(AstrosnnError, match="older astrosnn"):
        train(cfg(old), resume=True, **QUIET)


# ------------------------------------------------------------------------------------------ checks on load


def _copy(out, tmp_path, name="c"):
    dst = tmp_path / name
    shutil.copytree(out, dst)
    return dst


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    model = build_model("lstm", 9, width=16, layers=1)
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan", model, vocab=tuple("abcdefghi"), level="char")
    with pytest.raises(AstrosnnError, match=r"model.safetensors: tensor head.weight holds 1 non-finite"):
        load_checkpoint(tmp_path / "nan")


def test_config_that_does_not_match_the_tensors(tmp_path, finished):
    out, _ = finished
    c = _copy(out, tmp_path)
    config = json.loads((c / "config.json").read_text())
    config["model_config"]["width"] = 24
    resign(c / "config.json", config)
    with pytest.raises(AstrosnnError, match=r"model.safetensors: tensor \S+ has shape \(\d+, 16\), config.json "
                                            r"describes \(\d+, 24\)"):
        load_checkpoint(c)


def test_vocabulary_shorter_than_the_head(tmp_path, finished):
    out, _ = finished
    c = _copy(out, tmp_path)
    config = json.loads((c / "config.json").read_text())
    config["vocab"] = config["vocab"][:-1]
    resign(c / "config.json", config)
    with pytest.raises(AstrosnnError, match=r"config.json: the vocabulary has \d+ tokens but the model's head"):
        load_checkpoint(c)
    loaded = load_checkpoint(out)
    with pytest.raises(AstrosnnError, match="head has"):
        generate(loaded.model, Vocabulary(loaded.vocab[:-1], "char"), "the")


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c.pop("kind"), "key 'kind' is missing"),
    (lambda c: c.update(step="8"), "key 'step' must be an integer"),
    (lambda c: c.update(vocab="abc"), "key 'vocab' must be a list"),
    (lambda c: c.update(model_config=[1]), "key 'model_config' must be an object"),
    (lambda c: c["model_config"].update(width="wide"), "config.json: "),
    (lambda c: c.update(level=3), "key 'level' must be text"),
    (lambda c: c.update(format_version=7), "format_version 7"),
])
def test_damaged_json_fields_are_one_line_naming_the_key(tmp_path, finished, edit, needle):
    out, _ = finished
    c = _copy(out, tmp_path)
    config = json.loads((c / "config.json").read_text())
    edit(config)
    resign(c / "config.json", config)
    with pytest.raises(AstrosnnError, match=needle) as e:
        load_checkpoint(c)
    assert "\n" not in str(e.value) and "config.json" in str(e.value)
    # and unsigned, the checksum catches the edit first
    config.pop("config_sha256")
    config["config_sha256"] = "0" * 64
    (c / "config.json").write_text(json.dumps(config))
    with pytest.raises(AstrosnnError, match="config.json"):
        load_checkpoint(c)


def test_swapped_weights_with_their_checksum_differ(tmp_path, finished):
    out, _ = finished
    c = _copy(out, tmp_path)
    tensors = load_file(str(c / "model.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1  # finite, right shape: only the checksum sees it
    save_file(tensors, str(c / "model.safetensors"), metadata={"format": "astrosnn-lm-checkpoint", "kind": "lstm",
                                                                "step": "8"})
    with pytest.raises(AstrosnnError, match="model.safetensors: content differs from the checksum"):
        load_checkpoint(c)


def test_corrupt_optimizer_state_names_the_file_not_a_divergence(tmp_path, corpus):
    out = tmp_path / "r"
    train(cfg(out), corpus=corpus, stop_at_step=4, **QUIET)
    folder, manifest = read_manifest(out)
    path = folder / "training_state.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith("exp_avg_sq"))
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, str(path), metadata={"step": "4"})
    with pytest.raises(AstrosnnError, match="training_state.safetensors: content differs from the checksum"):
        train(cfg(out), resume=True, corpus=corpus, **QUIET)
    # with the manifest updated too, the values themselves are refused
    from astrosnn.runinfo import sha256_file

    manifest["files"]["training_state.safetensors"] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (out / CHECKPOINT_DIR / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(AstrosnnError, match=rf"training_state.safetensors \(optimizer state\): tensor {key} holds"):
        train(cfg(out), resume=True, corpus=corpus, **QUIET)
