"""Baselines for bench/trainer.ts, driven over stdin/stdout one JSON line at a time so that the
TypeScript bench can interleave them with its own measurements (same machine load for both).

  {"op": "init", "model": {...}, "batch": 8}   build a PyTorch Llama of the same architecture
  {"op": "step", "reps": 3}                     that many AdamW training steps; replies their wall
                                                and process CPU ms
  {"op": "sgemm", "shapes": [[m, k, n], ...]}   NumPy a @ b of each shape once; replies total ms

The model is written out here (HF LlamaForCausalLM's eager forward: RMSNorm, rotate_half rotary,
causal softmax attention, SwiGLU) so that only torch is needed, with the trainer's optimiser:
AdamW (0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices only) after clipping the gradient norm to
1. One thread: the caller sets OMP/OPENBLAS/MKL_NUM_THREADS=1 and this sets torch's thread count.
"""

import json
import math
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the sgemm baseline needs only NumPy
    torch = None


def llama(model, seq):
    hidden, heads, kv, ffn = model["hidden"], model["heads"], model["kvHeads"], model["ffn"]
    hd = hidden // heads
    g = torch.Generator().manual_seed(1)

    def mat(out, inp):
        return torch.nn.Parameter(torch.randn(out, inp, generator=g) * 0.02)

    params = {"embed": mat(model["vocab"], hidden), "norm": torch.nn.Parameter(torch.ones(hidden))}
    params["head"] = mat(model["vocab"], hidden)
    layers = []
    for _ in range(model["layers"]):
        layers.append(
            {
                "ln1": torch.nn.Parameter(torch.ones(hidden)),
                "q": mat(heads * hd, hidden),
                "k": mat(kv * hd, hidden),
                "v": mat(kv * hd, hidden),
                "o": mat(hidden, heads * hd),
                "ln2": torch.nn.Parameter(torch.ones(hidden)),
                "gate": mat(ffn, hidden),
                "up": mat(ffn, hidden),
                "down": mat(hidden, ffn),
            }
        )
    inv_freq = 1.0 / (model["ropeTheta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    emb = torch.cat([angles, angles], -1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((seq, seq), float("-inf")).triu(1)
    eps = model["eps"]

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rotate_half(x):
        return torch.cat([-x[..., hd // 2 :], x[..., : hd // 2]], -1)

    def forward(ids):
        b, t = ids.shape
        x = F.embedding(ids, params["embed"])
        for p in layers:
            h = rms(x, p["ln1"])
            q = F.linear(h, p["q"]).view(b, t, heads, hd).transpose(1, 2)
            k = F.linear(h, p["k"]).view(b, t, kv, hd).transpose(1, 2)
            v = F.linear(h, p["v"]).view(b, t, kv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if kv != heads:
                k = k.repeat_interleave(heads // kv, 1)
                v = v.repeat_interleave(heads // kv, 1)
            scores = q @ k.transpose(2, 3) / math.sqrt(hd) + mask
            out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, heads * hd)
            x = x + F.linear(out, p["o"])
            h = rms(x, p["ln2"])
            x = x + F.linear(F.silu(F.linear(h, p["gate"])) * F.linear(h, p["up"]), p["down"])
        return F.linear(rms(x, params["norm"]), params["head"])

    everything = list(params.values()) + [w for p in layers for w in p.values()]
    groups = [
        {"params": [w for w in everything if w.dim() >= 2], "weight_decay": 0.1},
        {"params": [w for w in everything if w.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    return forward, everything, opt


def main():
    state = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "init":
            torch.set_num_threads(1)
            model, batch = msg["model"], msg["batch"]
            seq = model["seqLen"]
            forward, everything, opt = llama(model, seq)
            windows = torch.randint(0, model["vocab"], (batch, seq + 1), generator=torch.Generator().manual_seed(7))
            state = {"forward": forward, "params": everything, "opt": opt, "windows": windows}
            reply = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        elif msg["op"] == "step":
            s, ms, cpu = state, [], []
            for _ in range(msg["reps"]):
                t0, c0 = time.perf_counter(), time.process_time()
                logits = s["forward"](s["windows"][:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), s["windows"][:, 1:].reshape(-1))
                s["opt"].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(s["params"], 1.0)
                s["opt"].step()
                ms.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            reply = {"ms": ms, "cpu": cpu}
        elif msg["op"] == "sgemm":
            pairs = [
                (np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32))
                for m, k, n in msg["shapes"]
            ]
            t0 = time.perf_counter()
            for a, b in pairs:
                a @ b
            reply = {"ms": (time.perf_counter() - t0) * 1000}
        else:
            reply = {"error": f"unknown op {msg['op']}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
