"""Score (prompt, response) pairs with a reward model trained by `--stage rm` (LM + value_head.safetensors)."""

from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.adapters import merge_adapters, split_list
from tuneforge.data import templates
from tuneforge.errors import ModelError
from tuneforge.models import load_model, load_tokenizer, resolve_model_path
from tuneforge.train.value_head import check_value_head, last_token_scores, load_value_head


def reward_model_folder(model_name_or_path: str, adapter_name_or_path: str | None) -> str:
    """The folder holding the value head: the last adapter, or the model folder itself (full/freeze rm runs)."""
    adapters = split_list(adapter_name_or_path)
    return adapters[-1] if adapters else str(model_name_or_path)


class RewardScorer:
    def __init__(self, model_name_or_path: str, adapter_name_or_path: str | None = None, template: str = "auto",
                 trust_remote_code: bool = False, device: str | None = None, model=None, tokenizer=None):
        folder = reward_model_folder(model_name_or_path, adapter_name_or_path)
        problem = check_value_head(folder)
        if problem:
            raise ModelError(problem, "pass the output_dir of a --stage rm run as adapter_name_or_path (LoRA) or "
                                      "model_name_or_path (full/freeze)")
        path = resolve_model_path(model_name_or_path)
        tok_src = folder if (Path(folder) / "tokenizer_config.json").is_file() else path
        self.tokenizer = tokenizer or load_tokenizer(tok_src, trust_remote_code)
        self.fmt = templates.install(self.tokenizer, template)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if model is None:
            model = load_model(path, torch.float32, "auto", trust_remote_code)
            model = merge_adapters(model, split_list(adapter_name_or_path))
        self.model = model.to(self.device).eval()
        self.head = load_value_head(folder, self.model.config.hidden_size).to(self.device).eval()

    @classmethod
    def for_reward_model(cls, base_model: str, reward_model: str, **kw) -> "RewardScorer":
        """The scorer of a --stage rm run folder: a LoRA run's adapter on ``base_model``, or a full/freeze run's
        model folder itself."""
        if (Path(reward_model) / "adapter_config.json").is_file():
            return cls(base_model, reward_model, **kw)
        return cls(reward_model, None, **kw)

    def render(self, messages: list[dict]) -> str:
        return self.fmt.render(self.tokenizer, messages)

    @torch.no_grad()
    def score(self, conversations: list[list[dict]], batch_size: int = 8) -> list[float]:
        """One score per conversation (the last message is the response being scored)."""
        out: list[float] = []
        for i in range(0, len(conversations), batch_size):
            texts = [self.render(c) for c in conversations[i: i + batch_size]]
            ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            width = max(len(x) for x in ids)
            pad = self.tokenizer.pad_token_id or 0
            input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=self.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=self.device)
            out += last_token_scores(self.model, self.head, input_ids, mask).float().cpu().tolist()
        return out

    def score_pairs(self, pairs: list[tuple[str, str]], system: str | None = None) -> list[float]:
        sys_msg = [{"role": "system", "content": system}] if system else []
        return self.score([sys_msg + [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                           for p, r in pairs])
