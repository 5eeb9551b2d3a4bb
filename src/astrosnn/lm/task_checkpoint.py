"""Mid-run checkpoints of one memory-task run (:mod:`astrosnn.lm.task_runner`), so a killed run resumes.

A run's checkpoint is the library's atomic training checkpoint (:func:`astrosnn.lm.checkpoint.save_training_checkpoint`:
weights, optimizer moments, torch RNG, progress, all behind one manifest) in ``<run>.partial/``, written at every
evaluation. Its progress also holds what only the task runner has: the learning curve, the per-step training
losses and the state of the generator that draws the training batches. Resuming restores all of it, so a resumed
run ends with the same result as an uninterrupted one. The run's settings are the checkpoint's fingerprint: a
checkpoint of other settings, or one that fails its checks, is reported and the run starts over.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from astrosnn.errors import AstrosnnError
from astrosnn.lm.checkpoint import (
    CHECKPOINT_DIR,
    MANIFEST,
    WEIGHTS,
    load_training_state,
    load_weights,
    read_manifest,
    read_training_json,
    save_training_checkpoint,
)
from astrosnn.runinfo import load_tensors

TOKEN_LEVEL = "word"  # task tokens are ids; the checkpoint names them <0>, <1>, ...


def partial_dir(result_path: Path) -> Path:
    """Where the run whose result goes to ``result_path`` keeps its checkpoint until it finishes."""
    return result_path.with_suffix(".partial")


def save_task_progress(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, *, step: int,
                       tokens: int, train_time: float, wall_time: float, losses: list[float],
                       curve: list[dict[str, Any]], batch_generator: torch.Generator, settings: dict[str, Any],
                       vocab_size: int) -> None:  # fmt: skip
    """Write (atomically) everything a resume of this run needs, as of the end of ``step`` steps."""
    progress = {"step": step, "tokens": tokens, "elapsed_train": float(train_time), "wall_before": float(wall_time),
                "train_loss": losses, "validation": [], "curve": curve,
                "batch_generator": batch_generator.get_state().numpy().tobytes().hex()}  # fmt: skip
    save_training_checkpoint(folder, model, optimizer, None, progress, vocab=[f"<{i}>" for i in range(vocab_size)],
                             level=TOKEN_LEVEL, fingerprint=settings)  # fmt: skip


def load_task_progress(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                       batch_generator: torch.Generator, settings: dict[str, Any], batch_size: int,
                       log: Callable[[str], None] = print) -> dict[str, Any] | None:  # fmt: skip
    """Restore model, optimizer, torch RNG and ``batch_generator`` from ``folder``; return the progress dict
    (``step``, ``elapsed_train``, ``wall_before``, ``train_loss``, ``curve``) or None: nothing usable, start over
    (with a fresh model and optimizer: a checkpoint that fails late may have been partly restored)."""
    if not (folder / CHECKPOINT_DIR / MANIFEST).is_file():
        return None
    try:
        step_folder, _ = read_manifest(folder)
        info = read_training_json(step_folder)
        if info.get("fingerprint") != settings:
            log(f"  {folder.name}: a checkpoint of other settings; starting over")
            return None
        progress = info["progress"]
        if not isinstance(progress.get("curve"), list):
            raise AstrosnnError(f"{step_folder}: the task progress has no learning curve")
        try:
            state = torch.frombuffer(bytearray.fromhex(progress.get("batch_generator")), dtype=torch.uint8)
            torch.Generator().set_state(state)  # checked before anything is restored
        except (TypeError, ValueError, RuntimeError) as e:
            raise AstrosnnError(f"{step_folder}: the batch generator state is damaged ({e})") from None
        load_weights(model, load_tensors(step_folder / WEIGHTS), step_folder / WEIGHTS)
        _, progress = load_training_state(step_folder, model, optimizer, batch_size)
        batch_generator.set_state(state)
    except AstrosnnError as e:
        log(f"  checkpoint not usable ({e}); starting over")
        return None
    return progress


def discard_progress(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
