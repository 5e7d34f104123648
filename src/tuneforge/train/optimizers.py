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
