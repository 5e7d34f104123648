"""The other `optim` names of transformers' Trainer, built the way Trainer builds them (same classes, same settings),
so an LLaMA-Factory config that picks one trains with the same optimizer."""

from __future__ import annotations

import torch

from tuneforge.config.schema import TrainArgs
from tuneforge.utils import log


def torch_optimizer(groups: list[dict], train: TrainArgs) -> torch.optim.Optimizer:
    """adagrad / rmsprop: torch's own classes; adafactor: transformers' Adafactor with the external learning rate
    (scale_parameter=False, relative_step=False), as Trainer sets it. Weight decay comes from the param groups."""
    if train.optim == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=train.learning_rate)
    elif train.optim == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=train.learning_rate)
    else:
        from transformers.optimization import Adafactor

        opt = Adafactor(groups, lr=train.learning_rate, scale_parameter=False, relative_step=False)
    log.choice(f"optim={train.optim}", f"asked; {type(opt).__module__}.{type(opt).__name__} as transformers' Trainer "
               "builds it")
    return opt


class MuonWithAdamW(torch.optim.Optimizer):
    """LLaMA-Factory's use_muon: torch's own Muon for the 2-D weight matrices of the hidden layers (not embeddings or
    the output head), AdamW for everything else. Muon's update is scaled to AdamW's RMS (``match_rms_adamw``, as in
    Moonshot's Moonlight recipe LF follows), so one learning_rate serves both. One optimizer to the loop: its
    param_groups are the two inner optimizers' groups (the schedule sets their lr), its state_dict holds both."""

    def __init__(self, muon_groups: list[dict], adamw_groups: list[dict], train: TrainArgs):
        self.muon = torch.optim.Muon(muon_groups, lr=train.learning_rate, weight_decay=train.weight_decay,
                                     adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(adamw_groups or [{"params": []}], lr=train.learning_rate,
                                       betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_epsilon)
        super().__init__([{"params": []}], {"lr": train.learning_rate})
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        a, b = self.muon.state_dict(), self.adamw.state_dict()
        shift = sum(len(g["params"]) for g in a["param_groups"])
        groups = a["param_groups"] + [{**g, "params": [i + shift for i in g["params"]]} for g in b["param_groups"]]
        return {"state": {**a["state"], **{i + shift: s for i, s in b["state"].items()}}, "param_groups": groups,
                "muon_groups": len(a["param_groups"])}

    def load_state_dict(self, state: dict) -> None:
        n = int(state.get("muon_groups", len(self.muon.param_groups)))
        groups = state["param_groups"]
        shift = sum(len(g["params"]) for g in groups[:n])
        self.muon.load_state_dict({"state": {i: s for i, s in state["state"].items() if int(i) < shift},
                                   "param_groups": groups[:n]})
        self.adamw.load_state_dict({"state": {int(i) - shift: s for i, s in state["state"].items() if int(i) >= shift},
                                    "param_groups": [{**g, "params": [i - shift for i in g["params"]]}
                                                     for g in groups[n:]]})
        self.param_groups = self.muon.param_groups + self.adamw.param_groups


def muon_optimizer(model: torch.nn.Module, train: TrainArgs) -> MuonWithAdamW:
    muon, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 2 and "embed" not in name and "lm_head" not in name:
            muon.append(p)
        elif p.ndim < 2 or "bias" in name or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    if not muon:
        from tuneforge.errors import ConfigError

        raise ConfigError(["use_muon: no trainable 2-D weight matrix outside the embeddings and the head; Muon has "
                           "nothing to optimise (drop use_muon)"])
    adamw = [g for g in ({"params": decay, "weight_decay": train.weight_decay},
                         {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    log.choice("optim=Muon+AdamW", f"use_muon: torch.optim.Muon for {len(muon)} weight matrices, AdamW for "
               f"{len(decay) + len(no_decay)} other tensors")
    return MuonWithAdamW([{"params": muon}], adamw, train)


# ---- GaLore / APOLLO (LLaMA-Factory's use_galore / use_apollo) through pytorch-optimizer --------------------------

PROJECTOR_META = ("rank", "update_proj_gap", "scale", "projection_type", "last_svd_step")


def projector_state_dict(state_dict: dict) -> dict:
    """The optimizer state with each GaLore projector (an object) stored as its tensors plus plain values, so
    tuneforge's pickle-free checkpoints can hold it."""
    out = {}
    for idx, entry in state_dict["state"].items():
        entry = dict(entry)
        proj = entry.pop("projector", None)
        if proj is not None:
            ortho = proj.ortho_matrix
            if isinstance(ortho, tuple):
                entry["projector_ortho_0"], entry["projector_ortho_1"] = ortho
            elif ortho is not None:
                entry["projector_ortho"] = ortho
            for key in PROJECTOR_META:
                entry[f"projector_{key}"] = getattr(proj, key)
        out[idx] = entry
    return {**state_dict, "state": out}


def projector_load_state(state_dict: dict) -> dict:
    from pytorch_optimizer.optimizer.utils.galore import GaLoreProjector

    out = {}
    for idx, entry in state_dict["state"].items():
        entry = dict(entry)
        if "projector_rank" in entry:
            meta = {key: entry.pop(f"projector_{key}") for key in PROJECTOR_META}
            proj = GaLoreProjector(rank=meta["rank"], update_proj_gap=meta["update_proj_gap"], scale=meta["scale"],
                                   projection_type=meta["projection_type"])
            proj.last_svd_step = int(meta["last_svd_step"])
            if "projector_ortho_0" in entry:
                proj.ortho_matrix = (entry.pop("projector_ortho_0"), entry.pop("projector_ortho_1"))
            else:
                proj.ortho_matrix = entry.pop("projector_ortho", None)
            entry["projector"] = proj
        out[idx] = entry
    return {**state_dict, "state": out}


def low_rank_optimizer(model: torch.nn.Module, train: TrainArgs, ft: TrainArgs) -> torch.optim.Optimizer:
    """use_galore / use_apollo: the 2-D weights of the target modules get a low-rank gradient projection (rank,
    update interval, scale, projection type as LLaMA-Factory's galore_* / apollo_* settings); the rest is plain
    AdamW-style. Full fine-tuning only, as in LLaMA-Factory."""
    from tuneforge.errors import ConfigError

    try:
        import pytorch_optimizer as po
    except ImportError:
        raise ConfigError(["use_galore / use_apollo need the pytorch-optimizer package: pip install "
                           "'tuneforge[galore]' (or pip install pytorch-optimizer)"]) from None
    kind = "galore" if ft.use_galore else "apollo"
    target = getattr(ft, f"{kind}_target")
    names = [t.strip() for t in target.split(",") if t.strip()]
    low, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_linear = p.ndim == 2 and "embed" not in name and "lm_head" not in name
        hit = names == ["all"] or any(f".{t}." in f".{name}" for t in names)
        (low if is_linear and hit else rest).append(p)
    if not low:
        raise ConfigError([f"use_{kind}: no trainable weight matrix matches {kind}_target={target!r}; give module "
                           f"names such as q_proj,v_proj or `all`"])
    proj = {"rank": getattr(ft, f"{kind}_rank"), "update_proj_gap": getattr(ft, f"{kind}_update_interval"),
            "scale": getattr(ft, f"{kind}_scale"), "projection_type": getattr(ft, f"{kind}_proj_type")}
    groups = [{"params": low, **proj}] + ([{"params": rest}] if rest else [])
    cls = _checkpointable(po.GaLore if kind == "galore" else po.APOLLO)
    kw = {"betas": (train.adam_beta1, train.adam_beta2), "weight_decay": train.weight_decay, "eps": train.adam_epsilon}
    if kind == "apollo":
        kw["scale_type"] = "channel" if train.apollo_scale_type == "channel" else "tensor"
    opt = cls(groups, lr=train.learning_rate, **kw)
    log.choice(f"optim={kind}", f"use_{kind}: pytorch-optimizer {cls.__bases__[0].__name__} with rank {proj['rank']} "
               f"projections of {len(low)} weight matrices (update every {proj['update_proj_gap']} steps, scale "
               f"{proj['scale']}, {proj['projection_type']}); {len(rest)} other tensors unprojected")
    return opt


def _checkpointable(base: type) -> type:
    class Checkpointable(base):
        def state_dict(self):
            return projector_state_dict(super().state_dict())

        def load_state_dict(self, state_dict):
            super().load_state_dict(projector_load_state(state_dict))

    Checkpointable.__name__ = Checkpointable.__qualname__ = f"Checkpointable{base.__name__}"
    return Checkpointable


def adam_mini_optimizer(model: torch.nn.Module, train: TrainArgs) -> torch.optim.Optimizer:
    """use_adam_mini: pytorch-optimizer's AdamMini (one second-moment value per parameter block — per head for
    queries/keys, per output row elsewhere), sized from the model's config as LLaMA-Factory sizes it."""
    from tuneforge.errors import ConfigError

    try:
        from pytorch_optimizer import AdamMini
    except ImportError:
        raise ConfigError(["use_adam_mini needs the pytorch-optimizer package: pip install 'tuneforge[galore]' (or "
                           "pip install pytorch-optimizer)"]) from None
    c = model.config
    heads = getattr(c, "num_attention_heads", 1)
    opt = AdamMini(model, lr=train.learning_rate, betas=(train.adam_beta1, train.adam_beta2),
                   weight_decay=train.weight_decay, eps=train.adam_epsilon, num_embeds=c.hidden_size, num_heads=heads,
                   num_query_groups=getattr(c, "num_key_value_heads", None) or heads)
    log.choice("optim=adam_mini", f"use_adam_mini: pytorch-optimizer AdamMini ({heads} heads, width "
               f"{c.hidden_size})")
    return opt
