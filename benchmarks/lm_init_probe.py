"""Short training probes of AstroSNN configuration choices on tiny-shakespeare (fixed steps, not time).

Trains one AstroSNN per variant for ``--steps`` AdamW steps (batch x seq-len contiguous streams with the
state carried, linear warm-up over 20 steps, clipping 1.0), then reports the mean training loss of the last
20 steps and the validation bits per character on the first ``--valid-tokens`` validation characters.
A probe, not a benchmark of record: one seed, a short horizon, differences under ~0.05 bits are noise.

    taskset -c 1 python benchmarks/lm_init_probe.py --data-dir ../shared/data \\
        --variant base '{}' --variant beta0.3 '{"beta_init": 0.3}'
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from astrosnn.data.text import load_corpus
from astrosnn.lm import AstroSNNConfig, AstroSNNLM
from astrosnn.lm.state import detach_state
from astrosnn.runinfo import seed_everything, versions


def probe(config: AstroSNNConfig, train: torch.Tensor, valid: torch.Tensor, args) -> dict:  # noqa: ANN001
    seed_everything(args.seed)
    model = AstroSNNLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    B, T = args.batch, args.seq_len
    per_stream = (len(train) - 1) // B
    starts = torch.arange(B) * per_stream
    state, losses = None, []
    cpu = time.process_time()
    for i in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (i + 1) / 20)
        pos = (i * T) % (per_stream - T - 1)
        x = torch.stack([train[s + pos : s + pos + T] for s in starts])
        y = torch.stack([train[s + pos + 1 : s + pos + T + 1] for s in starts])
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = detach_state(state)
        losses.append(loss.item())
    with torch.no_grad():
        logits, _ = model(valid[:-1].view(1, -1))
        valid_loss = F.cross_entropy(logits[0], valid[1:]).item()
    return {
        "train_loss_last20": round(sum(losses[-20:]) / min(20, len(losses)), 4),
        "valid_bits_per_char": round(valid_loss / math.log(2), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True,
                   help="a name and AstroSNNConfig options as JSON (repeatable)")  # fmt: skip
    p.add_argument("--corpus", default="tinyshakespeare")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--width", type=int, default=136)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--valid-tokens", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus(args.corpus, data_dir=args.data_dir)
    train = torch.as_tensor(corpus.encode(corpus.train))
    valid = torch.as_tensor(corpus.encode(corpus.valid))[: args.valid_tokens + 1]
    base = {"vocab_size": len(corpus.vocab), "width": args.width, "layers": args.layers, "heads": args.heads}
    for name, options in args.variant:
        config = AstroSNNConfig.from_dict({**base, **json.loads(options)})
        print(json.dumps({"variant": name, "options": json.loads(options), **probe(config, train, valid, args)}),
              flush=True)  # fmt: skip
    print(json.dumps({"config": vars(args), "versions": versions()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
