#!/usr/bin/env python3
"""Load btx checkpoints with Hugging Face transformers and compare with our TensorFlow.js logits.

    python3 scripts/hf-crosscheck.py WORKDIR [--tol 1e-5] [--device cpu|cuda]

WORKDIR is what scripts/hf-crosscheck.ts wrote: manifest.json, tfjs-logits.safetensors and the
checkpoint folders. For every case it loads the folder with the class named in its config.json
(LlamaForCausalLM or MixtralForCausalLM), refusing missing, unexpected or mismatched weights, runs
input_ids through it in float32 (eager and sdpa attention), and prints the largest absolute
difference from our logits; it also compares the LM loss, Mixtral's load-balancing loss and which
experts each token was routed to. A case with `text` (the Mixtral mixed from experts that carry
Llama 3's tokenizer) also loads AutoTokenizer from its folder and requires the ids our tokenizer
gave for that text (its `inputKey` tensor). `sameFunction` pairs are compared inside transformers (the mix of
identical experts against the dense model). Exit status 1 when any logit difference exceeds
--tol x max(1, largest |logit|).

Needs torch, transformers (>= 4.36 for Mixtral) and safetensors; none of them is a dependency of
the repository.
"""

import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file


def load_model(cls, path, attn):
    kwargs = {"output_loading_info": True, "attn_implementation": attn}
    # transformers 5 renamed torch_dtype to dtype.
    major = int(transformers.__version__.split(".")[0])
    kwargs["dtype" if major >= 5 else "torch_dtype"] = torch.float32
    model, info = cls.from_pretrained(path, **kwargs)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise SystemExit(f"{path}: transformers did not load the weights cleanly: {bad}")
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--device", default="cpu", help="torch device to run transformers on, e.g. cuda")
    args = parser.parse_args()
    torch.manual_seed(0)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # TF32 matmuls on a GPU round to 10 mantissa bits: the comparison is float32 against float32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)

    with open(os.path.join(args.workdir, "manifest.json")) as f:
        manifest = json.load(f)
    ours = load_file(os.path.join(args.workdir, manifest["logitsFile"]))
    ids = ours["input_ids"].round().to(torch.long)
    batch, seq = ids.shape
    print(
        f"transformers {transformers.__version__}, torch {torch.__version__}; "
        f"tfjs {manifest['tfjsVersion']} ({manifest['backend']} backend); input_ids [{batch}, {seq}], float32 on {args.device}"
    )

    failed = False
    hf_logits = {}
    header = f"{'case':<16} {'class':<19} {'attn':<6} {'max|logit|':>10} {'max abs diff':>13} {'lm loss diff':>13} {'aux loss diff':>13}  routing"
    print(header)
    print("-" * len(header))
    for case in manifest["cases"]:
        # Folders are relative to the manifest (absolute ones, from older manifests, stay as they are).
        case["dir"] = os.path.join(args.workdir, case["dir"])
        cls = getattr(transformers, case["architecture"])
        ref = ours[case["logitsKey"]]
        ids = ours[case.get("inputKey", "input_ids")].round().to(torch.long)
        batch, seq = ids.shape
        if "text" in case:
            tokenizer = transformers.AutoTokenizer.from_pretrained(case["dir"])
            hf_ids = tokenizer(case["text"], add_special_tokens=False)["input_ids"]
            same_ids = hf_ids == ids[0].tolist()
            failed |= not same_ids
            print(
                f"{case['name']:<16} AutoTokenizer ({type(tokenizer).__name__}, {len(tokenizer)} tokens): "
                + (f"same {len(hf_ids)} ids as ours" if same_ids else f"ids differ: {hf_ids} vs ours {ids[0].tolist()}  <-- MISMATCH")
            )
        for attn in ("eager", "sdpa"):
            model = load_model(cls, case["dir"], attn).to(device)
            assert type(model).__name__ == case["architecture"], type(model).__name__
            moe = case["architecture"] == "MixtralForCausalLM"
            with torch.no_grad():
                kwargs = {"output_router_logits": True} if moe else {}
                out = model(input_ids=ids.to(device), labels=ids.to(device), **kwargs)
            logits = out.logits.reshape(batch * seq, -1).float().cpu()
            hf_logits.setdefault(case["name"], logits)
            diff = (logits - ref).abs().max().item()
            scale = max(1.0, ref.abs().max().item())
            # With output_router_logits, transformers' loss includes router_aux_loss_coef x aux_loss.
            hf_lm = out.loss.item() - (model.config.router_aux_loss_coef * out.aux_loss.item() if moe else 0.0)
            lm = abs(hf_lm - case["lmLoss"])
            aux = "-"
            routing = "-"
            routed_same = True
            if moe:
                aux = f"{abs(out.aux_loss.item() - case['auxLoss']):.2e}"
                k = model.config.num_experts_per_tok
                same = total = 0
                for layer, key in enumerate(case["maskKeys"]):
                    router_logits = out.router_logits[layer].reshape(batch * seq, -1).cpu()
                    picked = torch.topk(router_logits.float().softmax(-1), k, dim=-1).indices
                    mask = torch.zeros_like(router_logits).scatter_(1, picked, 1.0)
                    same += int((mask == ours[key]).all(dim=-1).sum())
                    total += mask.shape[0]
                routing = f"{same}/{total} token-layers same experts"
                routed_same = same == total
            ok = diff <= args.tol * scale and routed_same
            failed |= not ok
            print(
                f"{case['name']:<16} {case['architecture']:<19} {attn:<6} {scale:>10.3f} {diff:>13.3e} {lm:>13.3e} {aux:>13}  {routing}"
                + ("" if ok else "  <-- MISMATCH")
            )

    for pair in manifest.get("sameFunction", []):
        diff = (hf_logits[pair["a"]] - hf_logits[pair["b"]]).abs().max().item()
        scale = max(1.0, hf_logits[pair["b"]].abs().max().item())
        ok = diff <= args.tol * scale
        failed |= not ok
        print(
            f"in transformers: {pair['a']} vs {pair['b']}: max abs logit diff {diff:.3e}"
            + ("" if ok else "  <-- MISMATCH")
        )
    print("FAILED" if failed else f"OK (tolerance {args.tol:g} x max(1, max|logit|))")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
