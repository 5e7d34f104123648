"""Preference losses as plain functions on per-pair tensors, and one record per ``pref_loss`` (config.registry).

Every dpo-family loss takes the policy's log-prob sums of the chosen and rejected replies (``pc``, ``pr``), their
token counts (``nc``, ``nr``) and the reference's sums (``rc``, ``rr``; None for a loss that needs no reference),
and returns (loss, chosen reward, rejected reward) per pair; the caller sums. Tested against hand-computed values.
``torch`` is imported inside the functions so that the records — read by validation and the web form — load without
it.
"""

from __future__ import annotations

from tuneforge.config.registry import LOSSES, PrefLoss, register_loss


def log1mexp(x):
    """log(1 - exp(x)) for x < 0, stable near 0."""
    import torch

    return torch.log(-torch.expm1(x.clamp(max=-1e-6)))


def _logsigmoid(x):
    import torch.nn.functional as F

    return F.logsigmoid(x)


def sigmoid_loss(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing):
    """DPO (Rafailov et al.), with conservative label smoothing."""
    h = (pc - pr) - (rc - rr)
    loss = -(1 - label_smoothing) * _logsigmoid(beta * h) - label_smoothing * _logsigmoid(-beta * h)
    return loss, beta * (pc - rc).detach(), beta * (pr - rr).detach()


def ipo_loss(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing):
    """IPO (Azar et al.), on length-averaged log-probs."""
    h_avg = (pc / nc - pr / nr) - (rc / nc - rr / nr)
    return (h_avg - 1 / (2 * beta)) ** 2, beta * (pc - rc).detach(), beta * (pr - rr).detach()


def hinge_loss(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing):
    """SLiC's hinge loss."""
    h = (pc - pr) - (rc - rr)
    return (1 - beta * h).relu(), beta * (pc - rc).detach(), beta * (pr - rr).detach()


def orpo_loss(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing):
    """ORPO (Hong et al.): NLL of the chosen reply + beta × the odds-ratio term, on averages; no reference."""
    ac, ar = pc / nc, pr / nr
    log_odds = (ac - ar) - (log1mexp(ac) - log1mexp(ar))
    return -ac - beta * _logsigmoid(log_odds), beta * ac.detach(), beta * ar.detach()


def simpo_loss(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing):
    """SimPO (Meng et al.): averages with a target margin gamma; no reference."""
    ac, ar = pc / nc, pr / nr
    return -_logsigmoid(beta * (ac - ar) - gamma), beta * ac.detach(), beta * ar.detach()


register_loss(PrefLoss("sigmoid", "DPO (Rafailov et al.); dpo_label_smoothing = conservative DPO", sigmoid_loss,
                       params=("pref_beta", "dpo_label_smoothing")))
register_loss(PrefLoss("ipo", "IPO (Azar et al.) on length-averaged log-probs", ipo_loss))
register_loss(PrefLoss("hinge", "SLiC's hinge loss", hinge_loss))
register_loss(PrefLoss("orpo", "ORPO (Hong et al.): SFT + odds ratio, no reference model", orpo_loss,
                       reference=False))
register_loss(PrefLoss("simpo", "SimPO (Meng et al.): length-normalised, margin simpo_gamma, no reference model",
                       simpo_loss, reference=False, params=("pref_beta", "simpo_gamma")))


def dpo_family_loss(kind: str, pc, pr, nc, nr, rc=None, rr=None, beta: float = 0.1, gamma: float = 0.5,
                    label_smoothing: float = 0.0):
    """(loss, chosen reward, rejected reward) per pair for ``pref_loss`` ``kind`` (its record's function)."""
    if kind not in LOSSES:
        raise ValueError(f"unknown pref_loss {kind!r}; one of {', '.join(LOSSES)}")
    return LOSSES[kind].fn(pc, pr, nc, nr, rc, rr, beta, gamma, label_smoothing)


def kto_loss(pc, rc, desirable, beta: float = 0.1, chosen_weight: float = 1.0, rejected_weight: float = 1.0,
             valid=None):
    """(loss, reward, kl) per sample (Ethayarajh et al.). The KL reference point z0 is estimated from the batch
    itself: the detached mean policy/reference log-ratio of its completions, clamped at 0 (TRL estimates it on
    mismatched prompt/completion pairs, which costs another forward). The mean runs over the valid rows of the
    whole global batch: with several processes it is all-reduced, so z0 is the one a single process would get."""
    import torch

    from tuneforge.train.distributed import global_mean

    logratio = pc - rc
    weight = torch.ones_like(logratio) if valid is None else valid.to(logratio.dtype)
    kl = global_mean(logratio.detach(), weight).clamp(min=0)
    good = chosen_weight * (1 - torch.sigmoid(beta * (logratio - kl)))
    bad = rejected_weight * (1 - torch.sigmoid(beta * (kl - logratio)))
    return torch.where(desirable, good, bad), beta * logratio.detach(), kl


def pairwise_reward_loss(r_chosen, r_rejected):
    """Bradley-Terry loss of a reward model: -log sigmoid(r_chosen - r_rejected)."""
    return -_logsigmoid(r_chosen - r_rejected)
