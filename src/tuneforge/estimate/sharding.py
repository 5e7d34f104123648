"""`tuneforge estimate --nproc_per_node N [--nnodes M] --fsdp full_shard | --deepspeed ds_z3_config.json`: the
per-GPU peak when an engine splits the model over N × M processes. What each engine divides:

| engine | weights | trainable weights, gradients, optimizer states | added |
| --- | --- | --- | --- |
| DDP | whole | whole | gradient buckets (25 MiB) |
| FSDP2 full_shard | ÷ N | ÷ N | two decoder layers gathered (the one running, the one prefetched) and the root unit (embeddings, head, final norm) |
| FSDP2 shard_grad_op | whole while a step runs (gathered from forward to backward) | ÷ N | |
| FSDP2 offload | in CPU memory | in CPU memory | the gathered layers and root unit |
| ZeRO-1 | whole | optimizer ÷ N | |
| ZeRO-2 | whole | gradients and optimizer ÷ N | |
| ZeRO-3 | ÷ N | ÷ N | the gathered layers |
| ZeRO offload_optimizer / offload_param | | optimizer (param) in CPU memory | |

Activations and logits are per process and do not shrink. The sharded figures follow from the single-GPU model
(validated on an H200) but have not been checked against a measured multi-GPU peak yet.
"""

from __future__ import annotations

from tuneforge.estimate.memory import GiB, Estimate, Plan, Shape


def layer_params(s: Shape) -> int:
    return s.linear_params // s.layers + 2 * s.d


def shard(e: Estimate, s: Shape, plan: Plan, engine, world: int) -> Estimate:
    """``e`` (one process holding everything) → the per-process estimate under ``engine`` on ``world`` processes."""
    from tuneforge.train.distributed import DDP, DEEPSPEED, FSDP2, zero_stage

    if engine.name not in (DDP, FSDP2, DEEPSPEED) and world <= 1:
        return e
    p = dict(e.parts)
    notes = list(e.notes)
    wb = plan.weight_bytes
    if engine.name == FSDP2:
        opts = engine.fsdp
        divided = ("weights", "adapter", "gradients", "optimizer")
        if opts.get("offload"):
            for k in divided:
                p[k] = 0.0
            notes.append(f"fsdp offload: weights, gradients and optimizer states ({sum(e.parts[k] for k in divided):.2f}"
                         f" GiB) in CPU memory, split over {world} processes")
        else:
            for k in divided:
                p[k] = e.parts[k] / world
            if not opts.get("reshard_after_forward", True):
                p["weights"] = e.parts["weights"]
                notes.append("fsdp shard_grad_op: parameters stay gathered between forward and backward")
        bytes_per = 4 if plan.method == "full" else wb
        gathered = 2 * layer_params(s) * bytes_per + s.embed_params * bytes_per + s.d * bytes_per
        p["gathered"] = gathered / GiB
        notes.append(f"fsdp2 on {world} processes: two decoder layers and the root unit (embeddings, head) are "
                     f"whole while in use")
    elif engine.name == DEEPSPEED:
        stage = zero_stage(engine.ds)
        zero = (engine.ds or {}).get("zero_optimization") or {}
        if stage >= 1:
            p["optimizer"] = e.parts["optimizer"] / world
        if stage >= 2:
            p["gradients"] = e.parts["gradients"] / world
        if stage >= 3:
            p["weights"] = e.parts["weights"] / world
            p["adapter"] = e.parts["adapter"] / world
            p["gathered"] = 2 * layer_params(s) * (4 if plan.method == "full" else wb) / GiB
        if (zero.get("offload_optimizer") or {}).get("device") == "cpu":
            p["optimizer"] = 0.0
            notes.append("deepspeed offload_optimizer: optimizer states in CPU memory (the step runs there)")
        if (zero.get("offload_param") or {}).get("device") == "cpu" and stage >= 3:
            p["weights"] = 0.0
            notes.append("deepspeed offload_param: weights in CPU memory, gathered layer by layer")
        notes.append(f"deepspeed ZeRO-{stage} on {world} processes")
    else:
        p["gradients"] = e.parts["gradients"] + 25 * 2**20 / GiB
        notes.append(f"ddp on {world} processes: every GPU holds the whole model (these are per-GPU figures)")
    p.pop("workspace", None)
    out = Estimate(parts=p, notes=notes)
    out.parts["workspace"] = 0.05 * out.allocated + 0.5
    out.notes.append("multi-GPU figures are derived, not yet checked against a measured peak")
    return out
