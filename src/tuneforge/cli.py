"""The `tuneforge` command: parse, then call. No training logic lives here."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from tuneforge import __version__
from tuneforge.errors import ConfigError, TuneforgeError

USAGE = f"""tuneforge {__version__} — fine-tune open language models

usage:
  tuneforge train [config.yaml] [key=value | --key value ...] [--dry_run]
                                                                 train (LLaMA-Factory flags work verbatim);
                                                                 --dry_run: report every problem, train nothing
  tuneforge chat --model_name_or_path M [--adapter_name_or_path A] [--prompt TEXT | --prompts FILE]
  tuneforge export --model_name_or_path M --adapter_name_or_path A[,B] --export_dir D [--export_size GB]
                  [--export_dtype bfloat16|float16|float32]   merge LoRA adapters, write a standalone model
  tuneforge webui [--host 127.0.0.1] [--port 7860] [--root DIR] [--auth user:password | --auth-file FILE]
                  [--share] [--lang en|zh]                       the web UI (binds to loopback unless given auth)
  tuneforge score --model_name_or_path M --adapter_name_or_path RM_RUN --pairs FILE.jsonl
                                                                 reward-model scores of (prompt, response) rows
  tuneforge env                                                  versions, devices, model aliases, templates
  tuneforge estimate --model_name_or_path M|config.json [--finetuning_type lora --quantization_bit 4
                     --per_device_train_batch_size 4 --cutoff_len 2048 --gradient_checkpointing True --gpu h100 ...]
                                                                 predicted peak GPU memory (reads only the config)

  Add --debug to any command to see a traceback on errors. `tuneforge train --help` lists every setting.
"""

CHAT_KEYS = {"prompt": "one message; print the reply and exit",
             "prompts": "file with one prompt per line, or JSONL rows with `messages`; prints JSON lines",
             "system": "system prompt for every conversation"}


def train_help() -> str:
    from tuneforge.config.registry import LOSSES, METHODS, STAGES, methods_taking, stages_taking
    from tuneforge.config.schema import GROUPS, field_choices

    out = ["usage: tuneforge train [config.yaml] [key=value | --key value ...]", ""]
    for title, records in (("stages (--stage)", STAGES), ("methods (--finetuning_type)", METHODS),
                           ("preference losses (--pref_loss, --stage dpo)", LOSSES)):
        out += [f"{title}:"] + [f"  {r.name:12s} {r.summary}" for r in records.values()] + [""]
    for group, cls in GROUPS.items():
        out.append(f"{group}: {cls.__doc__.strip().splitlines()[0]}")
        for f in fields(cls):
            choices = field_choices(f)
            default = f.default if not callable(getattr(f, "default_factory", None)) else f.default_factory()
            head = f"  --{f.name} (default: {default!r}" + (f"; one of {', '.join(choices)})" if choices else ")")
            owners = methods_taking(f.name) + stages_taking(f.name)
            text = f.metadata.get("help", "") + (f" Applies to: {', '.join(owners)}." if owners else "")
            out.append(head)
            out += textwrap.wrap(text, 100, initial_indent="      ", subsequent_indent="      ")
        out.append("")
    return "\n".join(out)


def cmd_train(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(train_help())
        return 0
    from tuneforge.config import parse_args
    from tuneforge.recipes import run
    from tuneforge.recipes.dry_run import dry_run, take_dry_run_flag

    argv, dry = take_dry_run_flag(argv)
    if dry:  # every config, model, template and data problem at once; nothing loads or is written
        return dry_run(argv)
    cfg = parse_args(argv)
    from tuneforge.train import launch

    launch.apply_lf_env(cfg)
    launch.default_processes(cfg)
    if launch.wanted(cfg.train):  # --nproc_per_node N / nnodes: start the processes, each runs this command
        return launch.launch(cfg, argv)
    run(cfg)
    return 0


def _read_prompts(path: str) -> list[list[dict]]:
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(f"--prompts {path!r}: no such file", "give a text file (one prompt per line) or JSONL")
    convs = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TuneforgeError(f"{path}: invalid JSON on line {i}: {e.msg}", "fix the line") from None
            msgs = row.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise TuneforgeError(f"{path}:{i}: a JSON row needs a non-empty `messages` list",
                                     'e.g. {"messages": [{"role": "user", "content": "hi"}]}')
            convs.append(msgs)
        else:
            convs.append([{"role": "user", "content": line}])
    return convs


def cmd_chat(argv: list[str]) -> int:
    from tuneforge.config import build_config, split_argv
    from tuneforge.config.parse import load_yaml
    from tuneforge.models import DEFAULT_MODEL
    from tuneforge.recipes.preflight import preflight

    path, values = split_argv(argv)
    if path:
        values = {**load_yaml(path), **values}
    extra = {k: values.pop(k) for k in list(values) if k in CHAT_KEYS}
    cfg = build_config(values, command="chat")  # the LF key policy shared with train and export
    from tuneforge.config.lf_keys import apply_lf_generation_defaults

    apply_lf_generation_defaults(cfg)
    if not cfg.model.model_name_or_path:
        cfg.model.model_name_or_path = DEFAULT_MODEL
    preflight(cfg, for_training=False)
    from tuneforge.infer.engine import ChatEngine

    import torch

    from tuneforge.models.quantization import quantization_config
    from tuneforge.utils.hub import HubOptions

    m = cfg.model
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()  # the engine's own dtype rule
    quant = quantization_config(m.quantization_bit, m.quantization_type, m.double_quantization,
                                torch.bfloat16 if cuda_bf16 else torch.float32)
    engine = ChatEngine(m.model_name_or_path, m.adapter_name_or_path, cfg.data.template, m.trust_remote_code,
                        quantization=quant, dtype=m.infer_dtype, hub=HubOptions.from_model_args(m),
                        thinking=cfg.data.enable_thinking if "enable_thinking" in cfg.explicit else None)
    system = extra.get("system")
    if "prompt" in extra:
        print(engine.generate([[{"role": "user", "content": extra["prompt"]}]], cfg.generate, system)[0])
        return 0
    if "prompts" in extra:
        convs = _read_prompts(extra["prompts"])
        for conv, reply in zip(convs, engine.generate(convs, cfg.generate, system)):
            prompt = conv[-1]["content"] if len(conv) == 1 else conv
            print(json.dumps({"prompt": prompt, "response": reply}, ensure_ascii=False), flush=True)
        return 0
    return interactive(engine, cfg.generate, system)


def interactive(engine, gen, system) -> int:
    from transformers import TextStreamer

    print("Chat with the model. Type `clear` to forget the conversation, `exit` to quit.")
    history: list[dict] = []
    streamer = TextStreamer(engine.tokenizer, skip_prompt=True, skip_special_tokens=True)
    while True:
        try:
            text = input("\nUser: ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text == "exit":
            return 0
        if text == "clear":
            history = []
            print("(history cleared)")
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        print("Assistant: ", end="", flush=True)
        reply = engine.generate([history], gen, system, streamer=streamer)[0]
        history.append({"role": "assistant", "content": reply})


def cmd_export(argv: list[str]) -> int:
    from tuneforge.config import build_config, split_argv
    from tuneforge.config.parse import load_yaml

    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    path, values = split_argv(argv)
    if path:
        values = {**load_yaml(path), **values}
    from tuneforge.recipes.export import run as export

    export(build_config(values, command="export"))  # the LF key policy shared with train and chat
    return 0


def cmd_env(argv: list[str]) -> int:
    import importlib.metadata as md
    import platform

    from tuneforge.data.catalog import BUILTIN_ALIASES, load_catalog
    from tuneforge.data.templates import template_names
    from tuneforge.models.load import ALIASES, cache_root
    from tuneforge.utils.system import device_kind

    print(f"tuneforge {__version__}  python {platform.python_version()}  {platform.platform()}")
    for pkg in ("torch", "transformers", "peft", "accelerate", "safetensors", "gguf", "bitsandbytes", "tensorboard"):
        try:
            print(f"  {pkg:13s} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"  {pkg:13s} not installed")
    print(f"device: {device_kind()}")
    print(f"model cache: {cache_root()}")
    print("model aliases:")
    for name, em in ALIASES.items():
        cached = (cache_root() / em.gguf_file.removesuffix('.gguf').lower() / "config.json").is_file()
        print(f"  {name:24s} {em.description} [{'cached' if cached else 'converted on first use'}]")
    print(f"templates: auto, {', '.join(template_names())}")
    builtins = sorted(load_catalog(None)) + [f"{a} (= {b})" for a, b in BUILTIN_ALIASES.items()]
    print(f"built-in datasets: {', '.join(builtins)}")
    return 0


def cmd_estimate(argv: list[str]) -> int:
    from tuneforge.config import build_config, split_argv
    from tuneforge.config.parse import load_yaml
    from tuneforge.estimate import EXTRA_KEYS, estimate, load_shape, plan_from_config, render

    path, values = split_argv(argv)
    if path:
        values = {**load_yaml(path), **values}
    extra = {k: values.pop(k) for k in list(values) if k in EXTRA_KEYS}
    cfg = build_config(values)  # a training config: the LF key policy of `train` (unknown keys: did you mean)
    if not cfg.model.model_name_or_path:
        raise ConfigError(["model_name_or_path is required: a config.json, a model folder or a cached alias"])
    plan, gpu = plan_from_config(cfg, extra)
    shape = load_shape(cfg.model.model_name_or_path)
    e = estimate(shape, plan)
    t = cfg.train
    world = (t.nproc_per_node or 1) * t.nnodes
    if world > 1 or t.fsdp or t.fsdp_config or t.deepspeed:  # per GPU, with what the engine divides
        from tuneforge.estimate.sharding import shard
        from tuneforge.train.distributed import resolve

        engine, problems = resolve(t, {"WORLD_SIZE": str(world)})
        if problems:
            raise ConfigError(problems)
        e = shard(e, shape, plan, engine, world)
    print(render(shape, plan, e, gpu))
    return 0


WEBUI_USAGE = """usage: tuneforge webui [--host 127.0.0.1] [--port 7860] [--root DIR] [--auth user:password]
                       [--auth-file FILE] [--share] [--lang en|zh]

  --host       address to bind (default 127.0.0.1). Any non-loopback address needs --auth or --auth-file.
  --port       port (default 7860)
  --root       working folder: every path typed into the UI must lie inside it (default: the current folder)
  --auth       user:password required to open the UI
  --auth-file  file with one user:password per line
  --share      also publish a public Gradio link (needs --auth or --auth-file)
  --lang       starting language: en or zh (switchable in the page)
  needs the webui extra: pip install "tuneforge[webui]"
"""


def parse_webui_args(argv: list[str]) -> dict:
    """--key value / --key=value / --share for `tuneforge webui`; every problem at once."""
    opts = {"host": "127.0.0.1", "port": 7860, "root": ".", "auth": None, "auth_file": None, "share": False,
            "lang": "en"}
    problems, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            problems.append(f"unexpected argument {tok!r}: options are --key value")
            i += 1
            continue
        key, _, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        if key == "share":
            opts["share"] = val.lower() not in ("false", "0", "no") if val else True
            i += 1
            continue
        if key not in opts:
            from tuneforge.config.parse import did_you_mean

            flag = "--" + key.replace("_", "-")
            known = ["--" + k.replace("_", "-") for k in opts]
            problems.append(f"webui does not take {flag}{did_you_mean(flag, known)} (see `tuneforge webui --help`)")
            skip_value = not val and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if skip_value else 1
            continue
        if not val:
            if i + 1 >= len(argv):
                problems.append(f"--{key} needs a value")
                break
            val, i = argv[i + 1], i + 1
        opts[key] = val
        i += 1
    try:
        opts["port"] = int(opts["port"])
    except ValueError:
        problems.append(f"--port must be a whole number, got {opts['port']!r}")
    if opts["lang"] not in ("en", "zh"):
        problems.append(f"--lang must be en or zh, got {opts['lang']!r}")
    if problems:
        raise ConfigError(problems)
    return opts


def cmd_webui(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(WEBUI_USAGE)
        return 0
    from tuneforge.webui.launch import check_launch, parse_auth

    opts = parse_webui_args(argv)
    auth = parse_auth(opts["auth"], opts["auth_file"])
    check_launch(opts["host"], opts["share"], auth)
    root = Path(opts["root"]).resolve()
    if not root.is_dir():
        raise TuneforgeError(f"--root {opts['root']!r}: no such folder", "create it or pass an existing folder")
    try:
        from tuneforge.webui.app import launch
    except ImportError as e:
        raise TuneforgeError(f"the web UI needs gradio ({e.name} is missing)",
                             'pip install "tuneforge[webui]"') from None
    launch(root, opts["host"], opts["port"], opts["share"], auth, opts["lang"])
def _read_pairs(path: str) -> list[tuple[list[dict], dict]]:
    """JSONL rows: {"prompt", "response"} or {"messages": [... ending with the assistant reply]}; also scores
    {"prompt", "chosen", "rejected"} rows (both replies)."""
    p = Path(path)
    if not p.is_file():
        raise TuneforgeError(f"--pairs {path!r}: no such file",
                             'give a JSONL file with {"prompt": …, "response": …} rows')
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TuneforgeError(f"{path}: invalid JSON on line {i}: {e.msg}", "fix the line") from None
        if isinstance(row.get("messages"), list) and row["messages"]:
            out.append((row["messages"], row))
        elif isinstance(row.get("prompt"), str) and any(isinstance(row.get(k), str) for k in
                                                        ("response", "chosen", "rejected")):
            for key in ("response", "chosen", "rejected"):
                if isinstance(row.get(key), str):
                    out.append(([{"role": "user", "content": row["prompt"]},
                                 {"role": "assistant", "content": row[key]}], {**row, "scored": key}))
        else:
            raise TuneforgeError(f"{path}:{i}: a row needs `prompt` and `response` (or chosen/rejected), or a "
                                 f"`messages` list ending with the reply", '{"prompt": "Hi", "response": "Hello!"}')
    return out


def cmd_score(argv: list[str]) -> int:
    from tuneforge.config import build_config, split_argv
    from tuneforge.config.parse import did_you_mean

    path, values = split_argv(argv)
    pairs = values.pop("pairs", None)
    allowed = {"model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code"}
    bad = [k for k in values if k not in allowed]
    if bad or not pairs:
        raise ConfigError([f"score does not take {k!r}{did_you_mean(k, sorted(allowed | {'pairs'}))}" for k in bad]
                          + ([] if pairs else ["score needs --pairs FILE.jsonl (rows with prompt and response)"]))
    cfg = build_config(values)
    if not cfg.model.model_name_or_path:
        raise ConfigError(["model_name_or_path is required: the base model of the reward model (or the folder of a "
                           "full/freeze --stage rm run)"])
    rows = _read_pairs(str(pairs))
    from tuneforge.infer.reward import RewardScorer

    scorer = RewardScorer(cfg.model.model_name_or_path, cfg.model.adapter_name_or_path, cfg.data.template,
                          cfg.model.trust_remote_code)
    for (_, row), s in zip(rows, scorer.score([m for m, _ in rows])):
        print(json.dumps({**row, "score": round(s, 6)}, ensure_ascii=False), flush=True)
    return 0


COMMANDS = {"train": cmd_train, "chat": cmd_chat, "export": cmd_export, "env": cmd_env,
            "estimate": cmd_estimate, "webui": cmd_webui, "score": cmd_score}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        print(__version__)
        return 0
    from tuneforge.utils import log

    log.setup()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        from tuneforge.config.parse import did_you_mean

        print(f"error: unknown command {argv[0]!r}{did_you_mean(argv[0], list(COMMANDS))}\n\n{USAGE}",
              file=sys.stderr)
        return 2
    if cmd not in (cmd_train, cmd_webui) and any(a in ("-h", "--help") for a in argv[1:]):
        print(USAGE)  # train and webui print their own, longer help
        return 0
    try:
        return cmd(argv[1:])
    except TuneforgeError as e:
        if debug:
            raise
        lang = os.environ.get("TUNEFORGE_LANG", "en")
        if lang != "en":  # the web UI runs training and export in its page's language
            from tuneforge.webui.actions import error_text
            from tuneforge.webui.i18n import t

            print(t("msg_error", lang, message=error_text(e, lang)), file=sys.stderr)
            return 2
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
