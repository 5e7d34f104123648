"""``tuneforge train … --nproc_per_node N``: start the processes through torch's elastic launcher (what ``torchrun``
runs), each one running ``python -m tuneforge train`` with the same arguments; several machines with ``nnodes``,
``node_rank``, ``master_addr``, ``master_port``. A process that dies ends the run on every process (the launcher
stops the others; on other machines the collectives fail after ``ddp_timeout``), and the error names the process,
how it ended and the checkpoint a re-run resumes from."""

from __future__ import annotations

import signal
import socket

from tuneforge.errors import TuneforgeError
from tuneforge.train import distributed
from tuneforge.utils import log


# LLaMA-Factory's launch variables (`FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=0 MASTER_ADDR=… llamafactory-cli train`):
# its documented multi-node commands work unchanged; the config's own keys win over them.
LF_ENV = {"NPROC_PER_NODE": "nproc_per_node", "NNODES": "nnodes", "NODE_RANK": "node_rank",
          "MASTER_ADDR": "master_addr", "MASTER_PORT": "master_port"}


def apply_lf_env(cfg, env=None) -> None:
    """Fill unset launch keys from LLaMA-Factory's variables when FORCE_TORCHRUN is set (logged)."""
    import os

    env = os.environ if env is None else env
    if str(env.get("FORCE_TORCHRUN", "0")).lower() not in ("1", "true") or distributed.launched(env):
        return
    t = cfg.train
    for var, key in LF_ENV.items():
        if var in env and key not in cfg.explicit:
            setattr(t, key, env[var] if key == "master_addr" else int(env[var]))
            log.choice(f"{key}={env[var]}", f"{var} with FORCE_TORCHRUN (LLaMA-Factory's launch variables)")
    if t.nproc_per_node is None:
        t.nproc_per_node = max(1, _gpus())
        log.choice(f"nproc_per_node={t.nproc_per_node}", "FORCE_TORCHRUN: one process per visible GPU")


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def default_processes(cfg) -> None:
    """As LLaMA-Factory: with several visible GPUs and no nproc_per_node, use them all (logged)."""
    if cfg.train.nproc_per_node is None and not distributed.launched() and _gpus() > 1:
        cfg.train.nproc_per_node = _gpus()
        log.choice(f"nproc_per_node={cfg.train.nproc_per_node}", f"{cfg.train.nproc_per_node} CUDA GPUs visible (as "
                   f"LLaMA-Factory); --nproc_per_node 1 or CUDA_VISIBLE_DEVICES=0 runs one process")


def wanted(train) -> bool:
    """Whether this command should start processes itself (asked for, and not already inside a launcher)."""
    many = (train.nproc_per_node or 1) > 1 or train.nnodes > 1
    return many and not distributed.launched()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_args(train, argv: list[str]) -> list[str]:
    """The ``torchrun`` arguments for this run: ``-m tuneforge train <argv>`` in every process."""
    n = train.nproc_per_node or 1
    addr = train.master_addr or "127.0.0.1"
    port = train.master_port or (29500 if train.nnodes > 1 else free_port())
    return ["--nproc_per_node", str(n), "--nnodes", str(train.nnodes), "--node_rank", str(train.node_rank),
            "--master_addr", addr, "--master_port", str(port), "--max_restarts", "0", "--monitor_interval", "0.5",
            "-m", "tuneforge", "train", *argv]


def launch(cfg, argv: list[str]) -> int:
    """Start the processes (the caller has validated the config and data files once, before N processes load
    anything)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    t = cfg.train
    args = launcher_args(t, argv)
    log.choice(f"launching {t.nproc_per_node or 1} process(es) on this machine"
               + (f" (node {t.node_rank} of {t.nnodes}, master {t.master_addr}:{args[args.index('--master_port') + 1]})"
                  if t.nnodes > 1 else ""), "nproc_per_node/nnodes asked; torch's elastic launcher starts them")
    try:
        run(get_args_parser().parse_args(args))
    except ChildFailedError as e:
        raise TuneforgeError(failure_message(e, t), resume_hint(t)) from None
    return 0


def failure_message(e, train) -> str:
    lines = []
    for r, f in sorted(e.failures.items()):
        how = f"was killed by {_signal_name(-f.exitcode)}" if f.exitcode < 0 else f"exited with code {f.exitcode}"
        lines.append(f"process {r} (local rank {f.local_rank}) {how}")
    first = min(e.failures.items())[1] if e.failures else None
    hint = ""
    if first is not None and first.exitcode == -signal.SIGKILL:
        hint = " (SIGKILL usually means the machine ran out of memory, or someone ended the process)"
    return ("the multi-process run failed; the launcher stopped the other processes" + hint + ":\n    "
            + "\n    ".join(lines))


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def resume_hint(train) -> str:
    from tuneforge.train.checkpoint import list_checkpoints

    ckpts = list_checkpoints(train.output_dir) if train.output_dir else []
    if ckpts:
        return (f"the last complete checkpoint is {ckpts[-1]}: run the same command again to continue from it (with "
                f"any number of processes; one process works too)")
    return "no checkpoint was written yet (save_steps); fix the cause and run the command again"
