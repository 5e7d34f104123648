"""Generation for chat, evaluation and (later) the web UI and API.

A model trained by tuneforge carries the chat template it was trained with (in its tokenizer files); the engine uses
it, so prompts are formatted exactly as in training. Decoding is greedy unless sampling settings are given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tuneforge.adapters import generate, load_adapters, mergeable, method_of, split_list
from tuneforge.config.schema import GenerateArgs
from tuneforge.data import templates
from tuneforge.models import load_model, load_tokenizer, resolve_model_path
from tuneforge.utils import log


def _has_tokenizer(path: str) -> bool:
    return (Path(path) / "tokenizer_config.json").is_file()


class ChatEngine:
    def __init__(self, model_name_or_path: str, adapter_name_or_path: str | None = None, template: str = "auto",
                 trust_remote_code: bool = False, device: str | None = None, quantization=None,
                 dtype: str = "auto", hub=None, thinking: bool | None = None):
        path = resolve_model_path(model_name_or_path, hub)  # hub: utils.hub.HubOptions for hub ids
        adapters = split_list(adapter_name_or_path)
        # The last adapter folder's tokenizer holds the chat template used in training.
        tok_src = next((a for a in reversed(adapters) if _has_tokenizer(a)), None) or path
        self.tokenizer = load_tokenizer(tok_src, trust_remote_code)
        self.tokenizer.padding_side = "left"
        if template == "auto":
            known = templates.identify(getattr(self.tokenizer, "chat_template", None))
            self.fmt = templates.install(self.tokenizer, known or "auto")
            if known:
                log.choice(f"template={known}", f"the chat template saved with {tok_src}")
        else:  # thinking: enable_thinking of reasoning templates (None: as the saved template has it)
            self.fmt = templates.install(self.tokenizer, template, thinking)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":  # infer_dtype
            dtype = "bfloat16" if self.device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
        else:
            log.choice(f"dtype={dtype}", "infer_dtype asked")
        model = load_model(path, getattr(torch, dtype), "auto", trust_remote_code, quantization)
        if adapters:
            model = load_adapters(model, adapters, trainable=False)
            if not mergeable(model):  # e.g. virtual tokens: nothing to merge, decode through the adapter
                log.choice("adapter kept unmerged", f"a {method_of(model).name} adapter cannot be merged into the "
                                                    "weights; it runs at every forward")
            elif quantization is not None:
                log.choice("adapter kept unmerged", "merging into quantized weights would round the adapter away")
            elif hasattr(model, "merge_and_unload"):
                model = model.merge_and_unload()  # faster decoding; the files on disk are untouched
        # A quantized model is placed on its device while loading (bitsandbytes quantizes there).
        self.model = (model if quantization is not None else model.to(self.device)).eval()
        self.stop_ids, self.stop_strings = self._stops()

    @classmethod
    def from_config(cls, cfg) -> "ChatEngine":
        """The engine `tuneforge chat` runs: the model, adapters, template and quantization of ``cfg`` (a Config).
        A quantized base computes in bfloat16 where CUDA supports it, else float32 (the engine's own dtype rule)."""
        from tuneforge.models.quantization import quantization_config

        m = cfg.model
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        quant = quantization_config(m.quantization_bit, m.quantization_type, m.double_quantization,
                                    torch.bfloat16 if cuda_bf16 else torch.float32)
        from tuneforge.utils.hub import HubOptions

        return cls(m.model_name_or_path, m.adapter_name_or_path, cfg.data.template, m.trust_remote_code,
                   quantization=quant, dtype=m.infer_dtype, hub=HubOptions.from_model_args(m),
                   thinking=cfg.data.enable_thinking if "enable_thinking" in cfg.explicit else None)

    @classmethod
    def from_loaded(cls, model, tokenizer, fmt) -> "ChatEngine":
        """An engine over a model already in memory (the end of a training run): no second load, no merge."""
        self = cls.__new__(cls)
        self.tokenizer, self.fmt, self.model = tokenizer, fmt, model.eval()
        self.tokenizer.padding_side = "left"
        self.device = next(model.parameters()).device
        self.stop_ids, self.stop_strings = self._stops()
        return self

    def _stops(self) -> tuple[list[int], list[str]]:
        ids, strings = set(), []
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        for s in self.fmt.stop:
            tok = self.tokenizer.convert_tokens_to_ids(s) if s in self.tokenizer.get_vocab() else None
            if tok is not None:
                ids.add(tok)
            else:
                strings.append(s)
        return sorted(ids), strings

    def gen_kwargs(self, args: GenerateArgs) -> dict[str, Any]:
        sample = args.do_sample if args.do_sample is not None else any(
            v is not None for v in (args.temperature, args.top_p, args.top_k))
        kw: dict[str, Any] = {"max_new_tokens": args.max_new_tokens, "do_sample": bool(sample),
                              "eos_token_id": self.stop_ids, "pad_token_id": self.tokenizer.pad_token_id}
        if sample:
            kw.update({k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p),
                                         ("top_k", args.top_k)) if v is not None})
        else:  # make greedy explicit even if the model's generation_config says otherwise
            kw.update(temperature=None, top_p=None, top_k=None)
        if args.repetition_penalty is not None:
            kw["repetition_penalty"] = args.repetition_penalty
        if args.num_beams > 1:  # beam search (LLaMA-Factory's num_beams / length_penalty)
            kw.update(num_beams=args.num_beams, length_penalty=args.length_penalty)
        if args.max_length is not None:  # prompt + reply; max_new_tokens still applies
            kw["max_length"] = args.max_length
        if self.stop_strings:
            kw.update(stop_strings=self.stop_strings, tokenizer=self.tokenizer)
        return kw

    def prompt_text(self, messages: list[dict], system: str | None = None, tools: list | None = None) -> str:
        msgs = ([{"role": "system", "content": system}] if system else []) + list(messages)
        return self.fmt.render(self.tokenizer, msgs, tools=tools or None, add_generation_prompt=True)

    def _clean(self, text: str) -> str:
        for s in self.fmt.stop:
            if s and s in text:
                text = text[: text.index(s)]
        return text.strip()

    @torch.no_grad()
    def generate(self, conversations: list[list[dict]], args: GenerateArgs | None = None,
                 system: str | None = None, batch_size: int = 8, streamer=None,
                 tools: list | None = None) -> list[str]:
        """Replies to several conversations (each a list of {role, content}), batched with left padding; ``tools``
        (tool schemas) are rendered into every prompt by the template, as in training."""
        args = args or GenerateArgs()
        kw = self.gen_kwargs(args)
        out: list[str] = []
        for i in range(0, len(conversations), batch_size):
            texts = [self.prompt_text(c, system, tools) for c in conversations[i: i + batch_size]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            gkw = (self.guided(kw, [tools] * len(texts), enc["input_ids"].shape[1])
                   if tools and args.guided_tool_calls else kw)
            gen = self._generate(enc, gkw, streamer)
            for row in gen[:, enc["input_ids"].shape[1]:]:
                out.append(self._clean(self.tokenizer.decode(row, skip_special_tokens=args.skip_special_tokens)))
        return out

    def tool_format(self) -> str | None:
        """The tool-call format of the installed template (None: it renders no tools); read once."""
        if not hasattr(self, "_tool_format"):
            from tuneforge.infer.tools import detect_format

            self._tool_format = detect_format(getattr(self.tokenizer, "chat_template", None), self.fmt.name)
        return self._tool_format

    def guided(self, kw: dict[str, Any], tools_per_row: list, prompt_len: int,
               force: list[bool] | None = None) -> dict[str, Any]:
        """``kw`` with the schema guide of a batch's tool calls (infer/tool_guide.py) as its logits processor, or
        ``kw`` itself where nothing is guided. ``force``: per row, whether the reply must be a call."""
        from tuneforge.infer.tool_guide import guide_for

        guide = guide_for(self.tokenizer, self.tool_format(), tools_per_row, prompt_len, not kw.get("do_sample"),
                          force)
        return kw if guide is None else {**kw, "logits_processor": [guide]}

    def _generate(self, enc, kw: dict[str, Any], streamer=None) -> torch.Tensor:
        # the method's own decoding where model.generate is wrong for it (prompt-based adapters: infer/prompt_decode)
        return generate(self.model, enc["input_ids"], enc["attention_mask"], **kw, streamer=streamer)

    def ask(self, question: str, args: GenerateArgs | None = None, system: str | None = None) -> str:
        return self.generate([[{"role": "user", "content": question}]], args, system)[0]
