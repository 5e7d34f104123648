"""The `tuneforge` command: parse, then call. One table of sub-commands (``COMMANDS``) says what each takes; one
argument filter (``settings_for``) turns the arguments of every command that takes settings into a Config; the
handlers call the library. Global flags: ``--lang en|zh`` (the language of errors; the web UI's starting language)
and ``--debug`` (a traceback on errors)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from tuneforge import __version__
from tuneforge.errors import ConfigError, TuneforgeError, check_lang, render
from tuneforge.estimate.plan import EXTRA_KEYS as ESTIMATE_EXTRA
from tuneforge.serve.options import API_EXTRA
from tuneforge.recipes.evaluate_options import OPTIONS as EVAL_OPTIONS


@dataclass(frozen=True)
class Command:
    """A sub-command: its handler, its usage line, and the arguments it takes."""

    run: Callable[[list[str], str], int]  # (arguments after the command, --lang) -> exit code
    args: str  # its arguments, as the usage shows them
    summary: str  # what it does
    groups: tuple[str, ...] | None = None  # the settings groups it takes (None: the LF key policy decides; ():none)
    keys: tuple[str, ...] = ()  # or only these settings
    policy: str = "train"  # which command's LLaMA-Factory key policy its settings follow (config/lf_keys.py)
    extra: dict = field(default_factory=dict)  # its own options (name -> help), not settings
    own_help: Callable[[], str] | None = None  # a longer --help than the usage


def settings_for(name: str, argv: list[str]):
    """The one argument filter: ``[config.yaml] [key=value | --key value ...]`` for command ``name`` → (Config, its
    own options). Settings it does not take are refused with a "did you mean", all at once; LLaMA-Factory's names go
    through its key policy for that command (used, ignored with the reason, or refused with the fix)."""
    from tuneforge.config import build_config, split_argv
    from tuneforge.config.parse import did_you_mean, load_yaml
    from tuneforge.config.schema import field_map

    cmd = COMMANDS[name]
    path, values = split_argv(argv)
    if path:
        values = {**load_yaml(path), **values}
    extra = {k: values.pop(k) for k in list(values) if k in cmd.extra}
    if cmd.groups is not None or cmd.keys:  # otherwise build_config's key policy decides
        allowed = set(cmd.keys) or {k for k, (g, _) in field_map().items() if g in cmd.groups}
        bad = [k for k in values if k not in allowed]
        if bad:
            raise ConfigError([f"{name} does not take {k!r}{did_you_mean(k, sorted(allowed | set(cmd.extra)))}"
                               for k in bad])
    return build_config(values, command=cmd.policy), extra


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




def run_train(argv: list[str], lang: str) -> int:
    from tuneforge.recipes import run
    from tuneforge.recipes.dry_run import dry_run, take_dry_run_flag
    from tuneforge.recipes.preflight import preflight

    argv, dry = take_dry_run_flag(argv)
    if dry:  # every config, model, template and data problem at once; nothing loads or is written
        return dry_run(argv)
    cfg = settings_for("train", argv)[0]
    # Every config problem, then every bad data row, before torch and transformers are imported (the recipe checks
    # again; the rows read here are not read twice).
    preflight(cfg)
    if cfg.train.do_train:
        from tuneforge.data.build import check_rows

        check_rows(cfg.data, cfg.finetune.stage)
    from tuneforge.train import launch

    launch.apply_lf_env(cfg)
    launch.default_processes(cfg)
    if launch.wanted(cfg.train):  # --nproc_per_node N / nnodes: start the processes, each runs this command
        return launch.launch(cfg, argv)
    run(cfg)
    return 0


def run_chat(argv: list[str], lang: str) -> int:
    from tuneforge.infer.conversations import interactive, read_prompts
    from tuneforge.models import DEFAULT_MODEL
    from tuneforge.recipes.preflight import preflight

    from tuneforge.config.lf_keys import apply_lf_generation_defaults

    cfg, extra = settings_for("chat", argv)
    apply_lf_generation_defaults(cfg)
    if not cfg.model.model_name_or_path:
        cfg.model.model_name_or_path = DEFAULT_MODEL
    preflight(cfg, for_training=False)  # config mistakes are answered before torch is imported
    from tuneforge.infer.engine import ChatEngine

    tools = None
    if extra.get("tools"):
        from tuneforge.infer.conversations import read_tools

        tools = read_tools(str(extra["tools"]))  # a bad file is answered before the model loads
    engine = ChatEngine.from_config(cfg)
    system = extra.get("system")
    if tools:
        return chat_with_tools(engine, cfg.generate, system, tools, extra)
    if "prompt" in extra:
        print(engine.generate([[{"role": "user", "content": extra["prompt"]}]], cfg.generate, system)[0])
        return 0
    if "prompts" in extra:
        convs = read_prompts(extra["prompts"])
        for conv, reply in zip(convs, engine.generate(convs, cfg.generate, system)):
            prompt = conv[-1]["content"] if len(conv) == 1 else conv
            print(json.dumps({"prompt": prompt, "response": reply}, ensure_ascii=False), flush=True)
        return 0
    return interactive(engine, cfg.generate, system)


def chat_with_tools(engine, gen, system, tools, extra) -> int:
    """`tuneforge chat --tools FILE`: replies with their parsed calls (--prompt / --prompts print JSON), or the
    interactive loop in which the user types each call's result."""
    from tuneforge.infer.conversations import interactive_tools, read_prompts, reply_with_tools, tool_format

    if "prompt" not in extra and "prompts" not in extra:
        return interactive_tools(engine, gen, system, tools)
    fmt = tool_format(engine)
    convs = [[{"role": "user", "content": extra["prompt"]}]] if "prompt" in extra else read_prompts(extra["prompts"])
    for conv in convs:
        _, parsed = reply_with_tools(engine, conv, gen, system, tools, fmt)
        prompt = conv[-1]["content"] if len(conv) == 1 else conv
        row = {"prompt": prompt, "response": parsed.content, "tool_calls": [c.to_openai() for c in parsed.calls]}
        if parsed.errors:
            row["tool_call_errors"] = parsed.errors
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return 0


def run_export(argv: list[str], lang: str) -> int:
    from tuneforge.recipes.export import run as export

    export(settings_for("export", argv)[0])
    return 0


def run_estimate(argv: list[str], lang: str) -> int:
    from tuneforge.estimate import estimate, load_shape, plan_from_config, render as render_estimate

    cfg, extra = settings_for("estimate", argv)
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
    print(render_estimate(shape, plan, e, gpu))
    return 0


def run_score(argv: list[str], lang: str) -> int:
    from tuneforge.infer.reward import RewardScorer, read_pairs

    cfg, extra = settings_for("score", argv)
    problems = [] if extra.get("pairs") else ["score needs --pairs FILE.jsonl (rows with prompt and response)"]
    if not cfg.model.model_name_or_path:
        problems.append("model_name_or_path is required: the base model of the reward model (or the folder of a "
                        "full/freeze --stage rm run)")
    if problems:
        raise ConfigError(problems)
    rows = read_pairs(str(extra["pairs"]))
    scorer = RewardScorer.from_config(cfg)
    for (_, row), s in zip(rows, scorer.score([m for m, _ in rows])):
        print(json.dumps({**row, "score": round(s, 6)}, ensure_ascii=False), flush=True)
    return 0


def run_api(argv: list[str], lang: str) -> int:
    from tuneforge.serve.launch import serve

    return serve(*settings_for("api", argv))


def api_help() -> str:
    from tuneforge.cli_help import CHAT_GROUPS, _extra, settings
    from tuneforge.serve.options import API_USAGE

    return "\n".join([API_USAGE, *_extra(COMMANDS["api"].extra), *settings(CHAT_GROUPS)])


def run_eval(argv: list[str], lang: str) -> int:
    from tuneforge.models import DEFAULT_MODEL
    from tuneforge.recipes.preflight import preflight

    cfg, extra = settings_for("eval", argv)
    if not cfg.model.model_name_or_path:
        cfg.model.model_name_or_path = DEFAULT_MODEL
    preflight(cfg, for_training=False)  # config mistakes are answered before torch is imported
    from tuneforge.recipes.evaluate import run_harness, run_mc, run_predict

    chosen = run_harness if extra.get("harness") else run_predict if extra.get("do_predict") else run_mc
    chosen(cfg, extra, lang)
    return 0


def run_webui(argv: list[str], lang: str) -> int:
    from tuneforge.webui.launch import check_launch, parse_auth, parse_webui_args

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
    launch(root, opts["host"], opts["port"], opts["share"], auth, lang)
    return 0


def webui_help() -> str:
    from tuneforge.webui.launch import WEBUI_USAGE

    return WEBUI_USAGE


def run_env(argv: list[str], lang: str) -> int:
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


def run_version(argv: list[str], lang: str) -> int:
    print(f"tuneforge {__version__}")
    return 0


def command_help(name: str) -> str:
    from tuneforge.cli_help import command_help as help_of

    return help_of(name) or usage()


COMMANDS: dict[str, Command] = {
    "train": Command(run_train, "[config.yaml] [key=value | --key value ...] [--dry_run]",
                     "train (LLaMA-Factory flags work verbatim); --dry_run: report every problem, train nothing",
                     own_help=train_help),
    "chat": Command(run_chat, "--model_name_or_path M [--adapter_name_or_path A] [--prompt TEXT | --prompts FILE]",
                    "chat with a model (and its adapters)", policy="chat",
                    extra={"prompt": "one message; print the reply and exit",
                           "prompts": "file with one prompt per line, or JSONL rows with `messages`; prints JSON lines",
                           "system": "system prompt for every conversation",
                           "tools": "JSON file with a list of tool schemas: the model may call them; calls are shown "
                                    "and you type each result (with --prompt/--prompts: JSON lines with tool_calls)"}),
    "export": Command(run_export, "--model_name_or_path M --adapter_name_or_path A[,B] --export_dir D "
                                  "[--export_size GB] [--export_dtype bfloat16|float16|float32]",
                      "merge adapters, write a standalone model", policy="export"),
    "api": Command(run_api, "--model_name_or_path M [--adapter_name_or_path A] [--lora_modules name=path,...] "
                            "[--host 127.0.0.1] [--port 8000] [--api_key KEY] [--stage sft|rm]",
                   "an OpenAI-compatible API server (binds to loopback unless given a key)", policy="chat",
                   extra=API_EXTRA, own_help=api_help),
    "eval": Command(run_eval, "--task sample_en|NAME [--task_dir DIR] [--model_name_or_path M] "
                              "[--adapter_name_or_path A --compare_base True] [--n_shot 5] [--lang en|zh] | "
                              "--do_predict True --dataset D [--save_dir OUT]",
                    "multiple-choice benchmarks (MMLU/CMMLU/C-Eval layout) scored by the answer letters' "
                    "log-probabilities (--lang zh: Chinese prompts); --do_predict: generate for a dataset's "
                    "prompts, BLEU-4 and ROUGE-1/2/L", policy="chat",
                    keys=("model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code",
                          "quantization_bit", "infer_dtype", "dataset", "eval_dataset", "dataset_dir",
                          "dataset_vars", "max_samples", "default_system", "max_new_tokens", "num_beams",
                          "temperature", "top_p", "top_k", "do_sample", "repetition_penalty"), extra=EVAL_OPTIONS),
    "webui": Command(run_webui, "[--host 127.0.0.1] [--port 7860] [--root DIR] [--auth user:password | --auth-file "
                                "FILE] [--share]", "the web UI (binds to loopback unless given auth)",
                     own_help=webui_help),
    "score": Command(run_score, "--model_name_or_path M --adapter_name_or_path RM_RUN --pairs FILE.jsonl",
                     "reward-model scores of (prompt, response) rows",
                     keys=("model_name_or_path", "adapter_name_or_path", "template", "trust_remote_code"),
                     extra={"pairs": "JSONL rows with prompt and response (or chosen/rejected, or messages)"}),
    "env": Command(run_env, "", "versions, devices, model aliases, templates, datasets", groups=()),
    "estimate": Command(run_estimate, "--model_name_or_path M|config.json [--finetuning_type lora --quantization_bit "
                                      "4 --per_device_train_batch_size 4 --cutoff_len 2048 --gradient_checkpointing "
                                      "True --gpu h100 ...]", "predicted peak GPU memory (reads only the config)",
                        extra=ESTIMATE_EXTRA),
    "version": Command(run_version, "", "the installed version (also --version)", groups=()),
}


def usage() -> str:
    lines = [f"tuneforge {__version__} — fine-tune open language models", "", "usage:"]
    for name, cmd in COMMANDS.items():
        lines += textwrap.wrap(f"tuneforge {name} {cmd.args}", 116, initial_indent="  ", subsequent_indent="      ")
        lines.append(f"      {cmd.summary}")
    lines += ["", "  Global flags (anywhere on the line): --lang en|zh (the language of errors; the web UI's starting",
              "  language), --debug (a traceback on errors). `tuneforge <command> --help` shows a command's usage",
              "  and every setting it takes."]
    return "\n".join(lines) + "\n"


def global_flags(argv: list[str]) -> tuple[list[str], str, bool]:
    """(argv without the global flags, --lang, --debug): they may stand anywhere on the line."""
    rest, lang, debug, i = [], "en", False, 0
    while i < len(argv):
        a = argv[i]
        if a == "--debug":
            debug = True
        elif a == "--lang" and i + 1 < len(argv):
            lang, i = argv[i + 1], i + 1
        elif a.startswith("--lang="):
            lang = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return rest, lang, debug


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `tuneforge train --help | head`: the reader left; say nothing more, no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout at exit: into nothing, not the closed pipe
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


def _main(argv: list[str] | None = None) -> int:
    argv, lang, debug = global_flags(list(sys.argv[1:] if argv is None else argv))
    problem = check_lang(lang)
    if problem:
        print(render(ConfigError([problem])), file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
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

        print(f"error: unknown command {argv[0]!r}{did_you_mean(argv[0], list(COMMANDS))}\n\n{usage()}",
              file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(cmd.own_help() if cmd.own_help else command_help(argv[0]))  # each command's usage and settings
        return 0
    try:
        return cmd.run(argv[1:], lang)
    except TuneforgeError as e:
        if debug:
            raise
        print(render(e, lang), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
