"""An independent DPO computation for checking safeaware's first DPO step (tests/train_dpo.rs).

Scores the pairs a DPO run dumped (SAFEAWARE_DPO_DUMP: its first global batch exactly as
encoded) with HF transformers: each answer's log-probability under the policy and the reference
folder (summed over its labelled tokens; averaged for ipo), then the loss and metrics as TRL's
DPOTrainer defines them, written out by hand here. Prints one JSON object with TRL's names.

usage: dpo_reference.py POLICY REFERENCE DUMP.json BETA LOSS(sigmoid|ipo) SFT_WEIGHT
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers


def load(folder):
    architecture = json.loads((Path(folder) / "config.json").read_text())["architectures"][0]
    model = getattr(transformers, architecture).from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager")
    return model.eval(), architecture


def image_inputs(pair, architecture):
    n, c, h, w = pair["pixel_shape"]
    pixels = torch.tensor(pair["pixel_values"], dtype=torch.float32).reshape(n, c, h, w)
    if architecture.startswith("Idefics3"):
        return {"pixel_values": pixels[None], "pixel_attention_mask": torch.ones(1, n, h, w, dtype=torch.bool)}
    if architecture.startswith("Qwen2VL"):
        return {"pixel_values": pixels.reshape(n, c * h * w),
                "image_grid_thw": torch.tensor(pair["image_grid_thw"], dtype=torch.long)}
    return {"pixel_values": pixels}


def answer_nll(model, architecture, pair, side):
    """Summed negative log-likelihood of the labelled tokens, and their count."""
    ids = torch.tensor([pair[f"{side}_input_ids"]], dtype=torch.long)
    labels = torch.tensor([pair[f"{side}_labels"]], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                       **image_inputs(pair, architecture)).logits.float()
    targets = labels[:, 1:]
    mask = targets != -100
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum().item(), int(mask.sum().item())


def main():
    policy_dir, reference_dir, dump, beta, loss_type, sft_weight = sys.argv[1:7]
    beta, sft_weight = float(beta), float(sft_weight)
    pairs = json.loads(Path(dump).read_text())["pairs"]
    policy, policy_arch = load(policy_dir)
    reference, reference_arch = load(reference_dir)
    scored = {}
    for name, model, arch in [("policy", policy, policy_arch), ("reference", reference, reference_arch)]:
        rows = []
        for pair in pairs:
            (c, nc), (r, nr) = (answer_nll(model, arch, pair, s) for s in ("chosen", "rejected"))
            if loss_type == "ipo":
                rows.append((-c / nc, -r / nr, c, nc))
            else:
                rows.append((-c, -r, c, nc))
        scored[name] = torch.tensor(rows, dtype=torch.float64)
    pc, pr = scored["policy"][:, 0], scored["policy"][:, 1]
    rc, rr = scored["reference"][:, 0], scored["reference"][:, 1]
    logits = (pc - pr) - (rc - rr)
    if loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        losses = -F.logsigmoid(beta * logits)
    loss = losses.mean()
    if sft_weight > 0:
        nll = scored["policy"][:, 2].sum() / scored["policy"][:, 3].sum()
        loss = loss + sft_weight * nll
    chosen, rejected = beta * (pc - rc), beta * (pr - rr)
    print(json.dumps({
        "loss": loss.item(),
        "rewards/chosen": chosen.mean().item(),
        "rewards/rejected": rejected.mean().item(),
        "rewards/accuracies": (chosen > rejected).double().mean().item(),
        "rewards/margins": (chosen - rejected).mean().item(),
        "logps/chosen": pc.mean().item(),
        "logps/rejected": pr.mean().item(),
        "pairs": len(pairs),
    }))


if __name__ == "__main__":
    main()
