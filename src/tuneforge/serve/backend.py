"""What a server runs: the chat engine's model, tokenizer and template (``infer/engine.py``), with any number of
adapters served next to the base (``--lora_modules``), or a reward model for ``/v1/score`` (``infer/reward.py``)."""

from __future__ import annotations

import threading
from dataclasses import replace

from tuneforge.config.schema import GenerateArgs
from tuneforge.errors import ConfigError

SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")


class ChatBackend:
    kind = "chat"

    def __init__(self, engine, base_name: str, lora_modules: dict[str, str] | None = None,
                 gen: GenerateArgs | None = None):
        from tuneforge.adapters import load_named_adapters, method_of

        self.engine, self.tokenizer = engine, engine.tokenizer
        if lora_modules:
            if method_of(engine.model) is not None:
                raise ConfigError(["--lora_modules needs the --adapter_name_or_path adapters merged into the base, "
                                   "but the last one stays live (a prompt-based adapter or a quantized base): serve "
                                   "it alone, or export it merged first (tuneforge export)"])
            engine.model = load_named_adapters(engine.model, lora_modules)
        self.model = engine.model
        self.base_name = base_name
        self.adapters = {base_name: None, **{n: n for n in (lora_modules or {})}}
        self.paths = dict(lora_modules or {})
        self.device = engine.device
        self.stop_ids = set(engine.stop_ids)
        self.template_stops = list(engine.stop_strings)  # end-of-turn strings that are not single tokens
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)
        self.gen = gen or GenerateArgs()
        if self.gen.num_beams > 1:
            raise ConfigError(["api decodes one token at a time per request (streaming, batching): num_beams must "
                               "be 1; drop --num_beams"])

    @classmethod
    def from_config(cls, cfg, opts) -> "ChatBackend":
        from tuneforge.infer.engine import ChatEngine

        return cls(ChatEngine.from_config(cfg), opts.served_model_name or cfg.model.model_name_or_path,
                   opts.lora_modules, cfg.generate)

    def decode(self, ids: list[int], keep_special: bool = False) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=not keep_special)

    def chat_prompt(self, messages: list[dict], tools: list[dict] | None) -> list[int]:
        text = self.engine.fmt.render(self.tokenizer, messages, tools=tools, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def text_prompt(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def sampling(self, temperature: float | None, top_p: float | None) -> dict:
        """generate's sampling arguments: the launch settings, overridden by the request's temperature/top_p
        (temperature 0: greedy)."""
        g = replace(self.gen)
        if temperature == 0:
            g = replace(g, do_sample=False)
        elif temperature is not None or top_p is not None:
            g = replace(g, do_sample=True, temperature=temperature if temperature is not None else g.temperature,
                        top_p=top_p if top_p is not None else g.top_p)
        kw = self.engine.gen_kwargs(g)
        return {k: kw[k] for k in SAMPLING_KEYS if k in kw}

    def generate(self, adapter: str | None, ids, mask, sampling: dict, max_new_tokens: int, feeder,
                 tools_per_row: list | None = None, force_per_row: list[bool] | None = None) -> None:
        """One batched generate; every new token goes to ``feeder`` (scheduler.Feeder). ``tools_per_row``: each
        row's offered tools (None: none), whose calls are decoded schema-guided unless ``guided_tool_calls`` is off;
        ``force_per_row``: the rows whose reply must be a call."""
        import torch
        from transformers import StoppingCriteriaList

        from tuneforge.adapters import generate, method_of, use_adapter

        kw = self.engine.gen_kwargs(replace(self.gen, max_new_tokens=max_new_tokens, max_length=None))
        for k in ("stop_strings", "tokenizer"):  # each row's stops are the feeder's (stop strings per request)
            kw.pop(k, None)
        kw.update(sampling)
        if tools_per_row and self.gen.guided_tool_calls:
            kw = self.engine.guided(kw, tools_per_row, ids.shape[1], force_per_row)
        with torch.no_grad(), use_adapter(self.model, adapter):
            rec = method_of(self.model)
            if rec is not None and rec.generate is not None:  # its own decoder: tokens come through the streamer
                generate(self.model, ids, mask, **kw, streamer=feeder)
            else:
                generate(self.model, ids, mask, **kw, stopping_criteria=StoppingCriteriaList([feeder]))


class RewardBackend:
    kind = "rm"

    def __init__(self, scorer, name: str):
        self.scorer, self.tokenizer = scorer, scorer.tokenizer
        self.base_name, self.adapters, self.paths = name, {name: None}, {}
        self.max_positions = getattr(scorer.model.config, "max_position_embeddings", None)
        self._lock = threading.Lock()  # one forward at a time on the one model

    @classmethod
    def from_config(cls, cfg, opts) -> "RewardBackend":
        from tuneforge.infer.reward import RewardScorer

        return cls(RewardScorer.from_config(cfg), opts.served_model_name or cfg.model.model_name_or_path)

    def lengths(self, conversations: list[list[dict]]) -> list[int]:
        return [len(self.tokenizer(self.scorer.render(c), add_special_tokens=False)["input_ids"])
                for c in conversations]

    def score(self, conversations: list[list[dict]]) -> list[float]:
        with self._lock:
            return self.scorer.score(conversations)
