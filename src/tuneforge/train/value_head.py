"""A causal LM with a scalar value head on its last hidden state: the reward model (--stage rm: the score at the last
token) and PPO's actor-critic (the value before each response token). The LM keeps its Hugging Face form (saved as
an adapter or a model folder); the head is saved next to it as ``value_head.safetensors``."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.config.messages import Msg
from tuneforge.errors import ModelError
from tuneforge.train.loss import _base

VALUE_HEAD = "value_head.safetensors"


class ValueHead(torch.nn.Module):
    """A scalar head on the last hidden state."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.normal_(self.summary.weight, std=1 / (hidden_size + 1))
        torch.nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


def hidden_states(model, input_ids, attention_mask, position_ids=None) -> torch.Tensor:
    kw = {} if position_ids is None else {"position_ids": position_ids}
    return _base(model).get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                                      **kw).last_hidden_state


def last_token_scores(model, head: ValueHead, input_ids, attention_mask) -> torch.Tensor:
    """The head's score at each row's last real token (right padding)."""
    values = head(hidden_states(model, input_ids, attention_mask))
    last = attention_mask.sum(1) - 1
    return values[torch.arange(values.shape[0], device=values.device), last]


class PolicyWithValueHead(torch.nn.Module):
    """``lm`` (a transformers or peft model) and the value head that belongs to it, one module: the optimiser and
    the checkpoints see both, and nothing is attached to the LM itself."""

    def __init__(self, lm, head: ValueHead | None = None):
        super().__init__()
        self.lm = lm
        if head is None:
            head = ValueHead(lm.config.hidden_size).to(next(lm.parameters()).device)
        self.v_head = head

    @property
    def config(self):
        return self.lm.config

    def forward(self, input_ids, attention_mask, prompt_len: int, temperature: float = 1.0):
        """PPO's actor-critic forward (train/ppo.py's policy_forward): (log-probs of the response tokens, the values
        before each). Training calls it through the engine's wrapper, so that DDP averages the gradients of both
        the LM and the head."""
        from tuneforge.train.ppo import policy_forward  # train/ppo.py builds on this module's pieces

        return policy_forward(self.lm, input_ids, attention_mask, prompt_len, self.v_head, temperature=temperature)

    def scores(self, input_ids, attention_mask) -> torch.Tensor:
        """The score of each (right-padded) row: the head at its last real token."""
        return last_token_scores(self.lm, self.v_head, input_ids, attention_mask)

    def save_head(self, folder: Path, name: str = VALUE_HEAD, state: dict | None = None) -> Path:
        """``state``: the head's weights gathered from every rank of a sharded run (else the head's own)."""
        from safetensors.torch import save_file

        path = Path(folder) / name
        state = self.v_head.state_dict() if state is None else state
        from tuneforge.train.guard import check_finite

        check_finite(state, f"the value head {path}")
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))
        from tuneforge.compat import ordinary_modes

        ordinary_modes(folder)  # safetensors writes 0600 files (compat.py)
        return path


def check_value_head(folder: str | Path) -> str | None:
    p = Path(folder)
    if not p.is_dir():
        return Msg("reward_model_missing", path=str(folder))
    if not (p / VALUE_HEAD).is_file():
        return Msg("reward_model_no_head", path=str(folder), file=VALUE_HEAD)
    return None


def load_value_head(folder: str | Path, hidden_size: int) -> ValueHead:
    from safetensors.torch import load_file

    problem = check_value_head(folder)
    if problem:
        raise ModelError(problem, "pass the output_dir of a --stage rm run")
    head = ValueHead(hidden_size)
    head.load_state_dict(load_file(str(Path(folder) / VALUE_HEAD)))
    return head
