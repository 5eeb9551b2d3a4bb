"""The Hugging Face integration: logits and greedy text equal the native model's, the state is the cache,
save/load round trips, the auto classes load an export, bad folders are one-line errors, lm-eval scores it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from astrosnn.cli import main
from astrosnn.errors import AstrosnnError
from astrosnn.hf import AstroSNNForCausalLM, export_checkpoint, load_hf_folder
from astrosnn.lm import Vocabulary, generate, load_checkpoint

KINDS = ("astrosnn", "lif-snn", "lstm", "transformer")  # as in conftest.py
PROMPT = "def main(x):\n    return x + 1"


def _load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("kind", KINDS)
def test_logits_equal_native(exported, vocab, kind):
    native_dir, hf_dir = exported[kind]
    model, tok = _load(hf_dir)
    assert isinstance(model, AstroSNNForCausalLM) and model.config.astrosnn_kind == kind
    native = load_checkpoint(native_dir).model
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == Vocabulary(vocab, "char").encode(PROMPT)
    with torch.no_grad():
        ours = model(ids).logits
        theirs, _ = native(ids)
    torch.testing.assert_close(ours, theirs.float(), rtol=0, atol=1e-6)


def test_tokenizer_round_trips_text(exported):
    _, tok = _load(exported["astrosnn"][1])
    text = "  two  spaces\n\nand newlines\n "
    ids = tok(text)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.eos_token == "\n" and tok.padding_side == "right"


def test_greedy_generate_matches_native_and_cli(exported, capsys):
    native_dir, hf_dir = exported["astrosnn"]
    model, tok = _load(hf_dir)
    inputs = tok(PROMPT, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    text = tok.decode(out[0, inputs["input_ids"].shape[1] :])
    ckpt = load_checkpoint(native_dir)
    assert text == generate(ckpt.model, Vocabulary(ckpt.vocab, ckpt.level), PROMPT, max_new_tokens=40, temperature=0)
    assert len(set(text)) > 3  # a random model that does not repeat one character
    stdout = {}
    for folder in (native_dir, hf_dir):
        capsys.readouterr()
        assert main(["lm", "generate", "--checkpoint", str(folder), "--prompt", PROMPT, "--top-k", "1",
                     "--max-new-tokens", "40"]) == 0  # fmt: skip
        stdout[folder] = capsys.readouterr().out
    assert stdout[native_dir] == stdout[hf_dir] == PROMPT + text + "\n"


def test_generate_carries_the_state(exported):
    model, tok = _load(exported["lif-snn"][1])
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].shape[1]), with_kwargs=True)
    inputs = tok(PROMPT, return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    try:
        cached = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        assert seen == [n] + [1] * 7  # the prompt once, then one token per step: O(1) per token
        seen.clear()
        full = model.generate(**inputs, max_new_tokens=8, do_sample=False, use_cache=False)
        assert seen == list(range(n, n + 8))  # no cache: the whole text every step
    finally:
        hook.remove()
    assert torch.equal(cached, full)


@pytest.mark.parametrize("kind", ["astrosnn", "lstm"])  # lstm: the state's batch dimension is not the first
def test_beam_search_reorders_the_state(exported, kind):
    model, tok = _load(exported[kind][1])
    inputs = tok(["import os", "print(xy)"], return_tensors="pt")
    beams = dict(max_new_tokens=6, do_sample=False, num_beams=3, num_return_sequences=2)
    assert torch.equal(model.generate(**inputs, **beams), model.generate(**inputs, **beams, use_cache=False))


def test_labels_give_the_shifted_loss(exported):
    model, tok = _load(exported["astrosnn"][1])
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    out = model(ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:])
    torch.testing.assert_close(out.loss, expected)


def test_padding(exported):
    model, tok = _load(exported["astrosnn"][1])
    texts = ["import os", "x = 1"]
    batch = tok(texts, return_tensors="pt", padding=True)  # right padding
    with torch.no_grad():
        logits = model(**batch).logits
        for row, text in enumerate(texts):
            alone = model(tok(text, return_tensors="pt")["input_ids"]).logits[0]
            torch.testing.assert_close(logits[row, : len(text)], alone, rtol=0, atol=1e-6)
    left = batch["attention_mask"].flip(1)
    with pytest.raises(ValueError, match="left padding"):
        model(batch["input_ids"], attention_mask=left)
    with pytest.raises(ValueError, match="unpadded prompts"):
        model.generate(**batch, max_new_tokens=2)


def test_save_load_round_trip(exported, tmp_path):
    model, tok = _load(exported["astrosnn"][1])
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = _load(tmp_path)
    ids = tok2(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}


def test_trust_remote_code_folder(exported):
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = exported["astrosnn"][1]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_astrosnn.AstroSNNForCausalLM"
    assert (folder / "modeling_astrosnn.py").is_file()
    assert AutoConfig.from_pretrained(folder, trust_remote_code=True).astrosnn_kind == "astrosnn"
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "AstroSNNForCausalLM"


def test_tokenizer_file_export(exported, tmp_path, capsys):
    """A tokenizers JSON file (a BPE, later) ships instead of the vocabulary; generate decodes with it."""
    native_dir, hf_dir = exported["astrosnn"]
    _, tok = _load(hf_dir)
    tok.backend_tokenizer.save(str(tmp_path / "tok.json"))
    out = export_checkpoint(native_dir, tmp_path / "hf", tokenizer_file=tmp_path / "tok.json")
    assert load_hf_folder(out).vocab is None
    texts = []
    for folder in (native_dir, out):
        assert main(["lm", "generate", "--checkpoint", str(folder), "--prompt", "abc", "--max-new-tokens", "20",
                     "--seed", "3"]) == 0  # fmt: skip
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1]


def _corrupt(folder, how, make_checkpoint):
    if how == "bad json":
        (folder / "config.json").write_text("{")
    elif how == "model_type":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    elif how == "no weights":
        (folder / "model.safetensors").unlink()
    elif how == "truncated":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "shapes":  # weights of a wider model
        other = export_checkpoint(make_checkpoint(folder.parent / "wide", width=24, heads=2), folder.parent / "wide-hf")
        shutil.copy(other / "model.safetensors", folder / "model.safetensors")


BAD = {
    "bad json": "config.json: not valid JSON",
    "model_type": "model_type is 'gpt2'",
    "no weights": "model.safetensors: missing",
    "truncated": "model.safetensors",
    "shapes": "has shape",
}


@pytest.mark.parametrize("how", sorted(BAD))
def test_bad_folder_is_a_one_line_error(exported, make_ckpt, tmp_path, capsys, how):
    folder = tmp_path / "hf"
    shutil.copytree(exported["astrosnn"][1], folder)
    _corrupt(folder, how, make_ckpt)
    capsys.readouterr()
    if how != "model_type":  # a foreign model_type is transformers' own business
        with pytest.raises(AstrosnnError, match=BAD[how]):
            AstroSNNForCausalLM.from_pretrained(folder)
    assert main(["lm", "generate", "--checkpoint", str(folder), "--prompt", "ab"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("astrosnn: error: ") and err.count("\n") == 1, err
    if how != "bad json":  # a config.json that is not JSON is not recognised as an HF folder
        assert BAD[how] in err


@pytest.mark.slow
def test_lm_eval_local_task(exported, tmp_path):
    """lm-evaluation-harness' hf backend scores an exported model on a local multiple-choice task."""
    pytest.importorskip("lm_eval")
    pytest.importorskip("accelerate")  # lm_eval's hf backend (the lm_eval[hf] extra)
    from pathlib import Path

    import lm_eval
    from lm_eval.tasks import TaskManager

    data = Path(__file__).parent / "data"
    yaml = (data / "astro_tiny.yaml").read_text().replace("tests/hf/data/astro_tiny.jsonl", str(data / "astro_tiny.jsonl"))
    (tmp_path / "astro_tiny.yaml").write_text(yaml)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={exported['astrosnn'][1]},trust_remote_code=True",
        tasks=["astro_tiny"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        device="cpu",
        batch_size=2,  # right-padded batches
        limit=10,
    )
    acc = results["results"]["astro_tiny"]["acc,none"]
    assert 0.0 <= acc <= 1.0
