"""Memory-retention tasks (generators: layout, targets, masks, seeding) and the task-grid harness."""

from __future__ import annotations

import json

import pytest
import torch

from astrosnn.errors import AstrosnnError
from astrosnn.lm import build_model, model_kinds
from astrosnn.lm.task_runner import GridSpec, parse_models, run_task_grid
from astrosnn.lm.tasks import (
    TaskBatch,
    delayed_recall,
    masked_accuracy,
    masked_loss,
    mqar,
    mqar_power_law,
    selective_copying,
    zoology_mqar,
)


def test_delayed_recall_layout():
    g = torch.Generator().manual_seed(0)
    b = delayed_recall(5, delay=7, length=4, symbols=6, generator=g)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (5, 2 * 4 + 7)
    assert b.vocab_size == 8
    blank, go = 6, 7
    assert torch.equal(b.targets[:, 11:], b.inputs[:, :4])  # the symbols come back after the delay
    assert (b.inputs[:, 4:11] == blank).all() and (b.inputs[:, 11] == go).all() and (b.inputs[:, 12:] == blank).all()
    assert b.mask.sum() == 5 * 4 and b.mask[:, 11:].all()
    assert int(b.inputs[:, :4].max()) < 6


def test_mqar_targets_are_the_paired_values():
    g = torch.Generator().manual_seed(1)
    b = mqar(4, pairs=6, queries=5, keys=10, values=8, generator=g)
    assert b.inputs.shape == (4, 17) and b.vocab_size == 18 and b.mask.sum() == 20
    for row in range(4):
        keys, vals = b.inputs[row, 0:12:2].tolist(), b.inputs[row, 1:12:2].tolist()
        assert len(set(keys)) == 6 and all(k < 10 for k in keys) and all(10 <= v < 18 for v in vals)
        table = dict(zip(keys, vals))
        for t in range(12, 17):
            assert b.targets[row, t].item() == table[b.inputs[row, t].item()]


def test_masked_metrics_score_only_the_masked_positions():
    b = delayed_recall(3, delay=2, length=3, symbols=4, generator=torch.Generator().manual_seed(2))
    perfect = torch.nn.functional.one_hot(b.targets, b.vocab_size).float() * 20
    perfect[~b.mask] = 0  # unscored positions are wrong on purpose
    assert masked_accuracy(perfect, b) == 1.0
    assert float(masked_loss(perfect, b)) < 1e-6
    assert isinstance(b, TaskBatch)


def test_a_few_training_steps_on_delayed_recall_stay_finite():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    model = build_model("lstm", 18, width=16, layers=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(5):
        b = delayed_recall(4, delay=64, length=4, symbols=16, generator=g)
        logits, _ = model(b.inputs)
        loss = masked_loss(logits, b)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()


# ----------------------------------------------------------------------------- Zoology MQAR


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_zoology_mqar_layout_and_answers_come_from_the_context():
    T, P, V = 64, 4, 64
    b = zoology_mqar(16, seq_len=T, pairs=P, vocab_size=V, generator=_g(0))
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (16, T) and b.vocab_size == V
    assert b.chance == 1 / (V - V // 2)
    assert (b.mask.sum(1) == P).all() and not b.mask[:, : 2 * P].any()
    assert not b.mask[:, 2 * P + 1 :: 2].any()  # queries at even offsets after the context
    for row in range(16):
        keys, vals = b.inputs[row, 0 : 2 * P : 2].tolist(), b.inputs[row, 1 : 2 * P : 2].tolist()
        assert len(set(keys)) == P and all(1 <= k < V // 2 for k in keys)  # each key once, first half
        assert len(set(vals)) == P and all(V // 2 <= v < V for v in vals)  # values from the second half
        table = dict(zip(keys, vals))
        where = b.mask[row].nonzero().flatten().tolist()
        queried = [b.inputs[row, t].item() for t in where]
        assert sorted(queried) == sorted(keys)  # every key queried exactly once
        for t in where:
            assert b.targets[row, t].item() == table[b.inputs[row, t].item()]
    assert (b.targets[~b.mask] == 0).all()


def test_zoology_mqar_gaps_follow_the_power_law_and_fill_is_random():
    T, P = 128, 8
    b = zoology_mqar(512, seq_len=T, pairs=P, vocab_size=256, generator=_g(1))
    gaps = (b.mask[:, 2 * P :].nonzero()[:, 1] // 2).float()
    space = (T - 2 * P) // 2
    assert gaps.max() < space
    assert (gaps < space // 4).float().mean() > 0.3  # short gaps are much likelier than under a uniform law
    assert gaps.max() > space // 2  # long ones still occur
    p = mqar_power_law(space)
    assert abs(float(p.sum()) - 1) < 1e-9 and bool((p[1:] < p[:-1]).all())
    filler = b.inputs[:, 2 * P :][~b.mask[:, 2 * P :]]
    assert filler.unique().numel() > 200  # random tokens of the whole vocabulary, not a placeholder
    plain = zoology_mqar(4, seq_len=T, pairs=P, vocab_size=256, random_non_queries=False, generator=_g(1))
    assert (plain.inputs[:, 2 * P :][~plain.mask[:, 2 * P :]] == 0).all()


def test_zoology_mqar_grid_cells_and_bad_arguments():
    for T, P in ((64, 4), (128, 8), (256, 16)):
        b = zoology_mqar(2, seq_len=T, pairs=P, vocab_size=256, generator=_g(2))
        assert b.inputs.shape == (2, T) and int(b.mask.sum()) == 2 * P
    for kwargs in ({"seq_len": 63}, {"seq_len": 16, "pairs": 5}, {"vocab_size": 8, "pairs": 4}, {"power_a": 0.0}):
        with pytest.raises(AstrosnnError):
            zoology_mqar(1, **kwargs)


def test_generators_are_deterministic_given_the_seed():
    for make in (lambda g: zoology_mqar(8, 64, 4, generator=g), lambda g: selective_copying(8, 64, generator=g),
                 lambda g: delayed_recall(8, delay=32, generator=g)):  # fmt: skip
        a, b, c = make(_g(5)), make(_g(5)), make(_g(6))
        assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3]))
        assert not torch.equal(a.inputs, c.inputs)


# ----------------------------------------------------------------------------- selective copying, delays


def test_selective_copying_targets_are_the_content_tokens_in_order():
    L, M, A = 100, 16, 16
    b = selective_copying(8, length=L, tokens=M, vocab_size=A, generator=_g(3))
    assert b.inputs.shape == (8, L + 2 * M) and b.vocab_size == A and b.chance == 1 / (A - 2)
    assert (b.inputs[:, L + M :] == A - 1).all() and b.mask[:, L + M :].all() and not b.mask[:, : L + M].any()
    for row in range(8):
        region = b.inputs[row, : L + M]
        content = region[region != 0]  # noise is 0, content tokens 1 .. A-2
        assert content.numel() == M and int(content.max()) <= A - 2
        assert torch.equal(b.targets[row, L + M :], content)
    starts = (b.inputs[:, : L + M] != 0).float().argmax(1)
    assert starts.float().std() > 0  # positions vary between examples (selective, not plain copying)


def test_accuracy_by_answer_index_ranks_the_scored_positions_of_each_sequence():
    from astrosnn.lm.task_runner import _evaluate

    class Oracle(torch.nn.Module):  # right on the first 3 of the 8 recalled symbols, wrong on the rest
        def forward(self, inputs):
            logits = torch.zeros(*inputs.shape, 20)
            logits[:, 24 + 3:, 0] = 1.0
            logits[:, 24:24 + 3].scatter_(-1, inputs[:, :3, None], 10.0)
            return (logits,)

    test = delayed_recall(6, delay=16, length=8, symbols=16, generator=_g(5))
    acc, loss, by_answer = _evaluate(Oracle(), test, chunk=4)
    assert by_answer[:3] == [1.0, 1.0, 1.0] and len(by_answer) == 8
    assert acc == pytest.approx(sum(by_answer) / 8) and acc < 1.0 and loss > 0


def test_delayed_recall_supports_the_longest_delay():
    b = delayed_recall(2, delay=1024, length=8, symbols=16, generator=_g(4))
    assert b.inputs.shape == (2, 1040) and b.chance == 1 / 16
    assert torch.equal(b.targets[:, 1032:], b.inputs[:, :8])


# ----------------------------------------------------------------------------- the harness


def _micro_spec(**kw):
    base = dict(tasks=("mqar",), models=("lstm", "transformer"), widths=(16,), layers=1, steps=3, batch_size=4,
                lrs=(1e-3, 1e-2), seeds=(0,), mqar_cells=((16, 2),), mqar_vocab=16, test_examples=8)  # fmt: skip
    base.update(kw)
    return GridSpec(**base)


def test_micro_grid_writes_results_table_and_curves_and_resume_skips(tmp_path, monkeypatch):
    from astrosnn.lm import task_runner

    calls = []
    real = task_runner.train_one
    monkeypatch.setattr(task_runner, "train_one", lambda *a, **k: calls.append(a[2].label) or real(*a, **k))
    results = run_task_grid(_micro_spec(), tmp_path, log=lambda s: None)
    assert len(calls) == 4 and len(results) == 4  # 2 models x 2 learning rates on the one cell
    files = sorted((tmp_path / "runs").glob("*.json"))
    assert len(files) == 4
    r = json.loads(files[0].read_text())
    assert r["status"] == "done" and r["curve"] and r["wall_time_s"] > 0 and r["settings"]["steps"] == 3
    assert 0.0 <= r["accuracy"] <= 1.0 and r["chance"] == 1 / 8
    assert len(r["accuracy_by_answer"]) == 2  # the cell's 2 queries per sequence, each scored on its own
    table = (tmp_path / "table.md").read_text()
    assert "| mqar | 16x2 | lstm | 16 |" in table and "| mqar | 16x2 | transformer | 16 |" in table
    assert "Learning-rate sweep" in table
    assert list((tmp_path / "curves").glob("*.png"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    calls.clear()
    again = run_task_grid(_micro_spec(), tmp_path, log=lambda s: None, plots=False)
    assert calls == [] and len(again) == 4  # nothing trained again
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    run_task_grid(_micro_spec(steps=2, lrs=(1e-3,)), tmp_path, log=lambda s: None, plots=False)
    assert len(calls) == 2  # other settings: new runs
    calls.clear()
    notes = []
    grid = _micro_spec(steps=2, lrs=(1e-3,), models=("lstm", "transformer", "lif-snn"))  # lif-snn never ran
    reported = run_task_grid(grid, tmp_path, log=notes.append, plots=False, train=False)
    assert calls == [] and len(reported) == 2  # report only: the finished runs, nothing trained
    assert [n for n in notes if n.startswith("missing: ")] == ["missing: mqar-16x2-lif-snn-w16-lr0.001-s0.json"]
    assert "| lstm |" in (tmp_path / "table.md").read_text() and "lif-snn" not in (tmp_path / "table.md").read_text()


def test_sweep_picks_the_best_lr_and_reuses_it_on_the_other_cells(tmp_path, monkeypatch):
    from astrosnn.lm import task_runner

    def fake(spec, cell, m, width, lr, seed, log=print, **checkpointing):
        acc = 0.9 if lr == 1e-2 else 0.1
        return {"status": "done", "diverged": False, "accuracy": acc, "test_loss": 1.0, "chance": 0.1, "parameters": 1,
                "train_time_s": 0.0, "wall_time_s": 0.0, "curve": [{"step": 1, "test_accuracy": acc}], "steps_done": 1}

    monkeypatch.setattr(task_runner, "train_one", fake)
    spec = _micro_spec(models=("lstm",), mqar_cells=((16, 2), (32, 4)), seeds=(0, 1))
    results = run_task_grid(spec, tmp_path, log=lambda s: None, plots=False)
    later = [r["settings"] for r in results if not r["sweep"]]
    assert {(s["cell"], s["lr"], s["seed"]) for s in later} == {("16x2", 1e-2, 1), ("32x4", 1e-2, 0), ("32x4", 1e-2, 1)}
    table = (tmp_path / "table.md").read_text()
    assert "| mqar | 16x2 | lstm | 16 | 1 | 0.01 | 2 | 0.900 ± 0.000 |" in table


@pytest.mark.parametrize("model", ["astrosnn", "lstm"])
def test_a_killed_run_resumes_from_its_checkpoint_with_the_uninterrupted_result(tmp_path, model):
    spec = _micro_spec(models=(model,), lrs=(3e-3,), steps=6, eval_every=2)
    whole = run_task_grid(spec, tmp_path / "whole", log=lambda s: None, plots=False)[0]

    def kill_after_step_4(line):
        if "step 4:" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_task_grid(spec, tmp_path / "killed", log=kill_after_step_4, plots=False)
    partial = list((tmp_path / "killed" / "runs").glob("*.partial"))
    assert len(partial) == 1 and not list((tmp_path / "killed" / "runs").glob("*.json"))
    notes = []
    resumed = run_task_grid(spec, tmp_path / "killed", log=notes.append, plots=False)[0]
    assert "  resumed at step 4" in notes
    assert not partial[0].exists()  # removed once the result is written
    keys = ("accuracy", "test_loss", "steps_done", "parameters")
    assert {k: resumed[k] for k in keys} == {k: whole[k] for k in keys}
    strip = [{k: v for k, v in c.items() if k != "train_time_s"} for c in whole["curve"]]
    assert [{k: v for k, v in c.items() if k != "train_time_s"} for c in resumed["curve"]] == strip


def test_a_checkpoint_of_other_settings_or_damaged_is_discarded(tmp_path):
    spec = _micro_spec(models=("lstm",), lrs=(3e-3,), steps=4, eval_every=2)

    def kill(line):
        if "step 2:" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_task_grid(spec, tmp_path, log=kill, plots=False)
    partial = next((tmp_path / "runs").glob("*.partial"))
    weights = next(partial.rglob("model.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    notes = []
    again = run_task_grid(spec, tmp_path, log=notes.append, plots=False)[0]
    assert any("checkpoint not usable" in n and "model.safetensors" in n for n in notes)
    assert not any("resumed" in n for n in notes) and again["steps_done"] == 4
    whole = run_task_grid(spec, tmp_path / "whole", log=lambda s: None, plots=False)[0]
    assert again["accuracy"] == whole["accuracy"] and again["test_loss"] == whole["test_loss"]


def test_bad_model_specs_are_one_line_errors_and_pending_ones_are_skipped():
    with pytest.raises(AstrosnnError, match="unknown model 'nope'"):
        parse_models(["nope"])
    with pytest.raises(AstrosnnError, match="lstm:colour=red"):
        parse_models(["lstm:colour=red"])
    with pytest.raises(AstrosnnError, match="key=value"):
        parse_models(["lstm:width"])
    with pytest.raises(AstrosnnError, match="astrosnn:memory=no-such-memory"):
        parse_models(["astrosnn:memory=no-such-memory"])
    notes = []
    chosen = parse_models(["lstm", "lstm:width=32", "linear-attention", "astrosnn:memory=delta"], log=notes.append)
    labels = [c.label for c in chosen]
    assert labels[:2] == ["lstm", "lstm:width=32"] and chosen[1].options == {"width": 32}
    if "linear-attention" not in model_kinds():
        assert any("linear-attention" in n for n in notes)
    assert ("astrosnn:memory=delta" in labels) != any("memory=delta" in n for n in notes)  # built, or skipped


def test_the_command_line_reports_a_bad_model_in_one_line(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_tasks.py"
    spec = importlib.util.spec_from_file_location("lm_tasks_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--models", "lstm,bogus", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown model 'bogus'") and "\n" not in err
    grid, out, resume, train = cli.build_spec(["--quick", "--out", str(tmp_path)])
    assert grid.steps == 40 and grid.mqar_cells == ((64, 4),) and resume and train
    assert cli.build_spec(["--report-only"])[3] is False


def test_the_report_gathers_runs_of_several_folders_into_one_table(tmp_path):
    import importlib.util
    import shutil
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lm_tasks_report.py"
    spec = importlib.util.spec_from_file_location("lm_tasks_report", path)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    run_task_grid(_micro_spec(lrs=(1e-3,)), tmp_path / "a", log=lambda s: None, plots=False)
    run_task_grid(_micro_spec(steps=2, lrs=(1e-3,), models=("lstm",)), tmp_path / "b", log=lambda s: None, plots=False)
    shutil.copy(next((tmp_path / "b" / "runs").glob("*.json")), tmp_path / "a" / "copy.json")  # counted once
    (tmp_path / "b" / "notes.json").write_text('{"status": "other"}')  # not a run: ignored
    report.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r"), "--no-plots"])
    rows = [line for line in (tmp_path / "r" / "table.md").read_text().splitlines() if line.startswith("| mqar")]
    assert len(rows) == 3  # lstm at 3 and at 2 steps, transformer at 3
    assert sum("| lstm |" in r for r in rows) == 2 and any("| 2 x " in r for r in rows)
    with pytest.raises(SystemExit, match="no finished memory-task runs"):
        report.main([str(tmp_path / "r"), "--out", str(tmp_path / "r2")])
    (tmp_path / "b" / "broken.json").write_text('{"status": "done", "settings": {"task": "mqar"}}')
    with pytest.raises(SystemExit, match="broken.json is a finished run without cell, model"):
        report.main([str(tmp_path / "b"), "--out", str(tmp_path / "r3")])
    (tmp_path / "b" / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit, match="broken.json is not readable JSON"):
        report.main([str(tmp_path / "b"), "--out", str(tmp_path / "r3")])
