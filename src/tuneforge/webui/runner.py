"""RunManager: a training job is `python -m tuneforge train <output_dir>/config.yaml` in its own process group.

The UI writes the config into the output folder and starts the CLI on it (one training path for CLI and UI), then
reads ``metrics.jsonl`` and the log file the child writes. A lock file in the output folder names the running job's
pid, so a second job into the same folder is refused even from another UI process, and a reloaded page (or a
restarted UI) finds the job again. Abort signals the whole process group; checkpoints are written atomically, so the
last complete ``checkpoint-<step>`` stays resumable.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.config import Config
from tuneforge.errors import TuneforgeError
from tuneforge.train.checkpoint import list_checkpoints
from tuneforge.train.metrics import METRICS
from tuneforge.train.run_dir import CONFIG, SUMMARY
from tuneforge.utils import atomic, log
from tuneforge.webui.i18n import Msg, t

LOCK = ".webui-job.json"
LOG = "train.log"
STEP_LINE = re.compile(r"step (\d+)/(\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as finished
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def process_identity(pid: int) -> dict | None:
    """What tells this process apart from a later one that reuses its pid: its start time (clock ticks since boot,
    /proc/<pid>/stat field 22) and its command line. None where it cannot be read (no such process, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = int(fh.read().rsplit(") ", 1)[1].split()[19])
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
    except (OSError, ValueError, IndexError):
        return None
    return {"start_ticks": start, "cmdline": cmdline}


def _ours(info: dict) -> bool:
    """Whether the process a lock file names is still the job the UI started: same pid, start time and command line
    (a stale lock after a crash may name a pid the system has since given to another process)."""
    try:
        pid = int(info["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    now, argv = process_identity(pid), info.get("cmdline")
    if now is None or info.get("start_ticks") is None or not isinstance(argv, list) or not argv:
        return False
    # the arguments after the program (a script's interpreter line may put an interpreter in front of the program)
    return now["start_ticks"] == info["start_ticks"] and now["cmdline"][-len(argv) + 1:] == argv[1:] \
        and now["cmdline"][-len(argv)].endswith(Path(argv[0]).name)


@dataclass
class Job:
    output_dir: Path
    pid: int
    started: float
    proc: subprocess.Popen | None = None  # None when found again from the lock file
    aborted: bool = False
    returncode: int | None = None
    extra: dict = field(default_factory=dict)

    def running(self) -> bool:
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                return False
            return True
        return _alive(self.pid)


@dataclass
class Status:
    state: str  # idle | running | finished | failed | aborted
    output_dir: str | None = None
    step: int = 0
    total: int | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    log_tail: str = ""
    checkpoints: list[str] = field(default_factory=list)
    returncode: int | None = None
    forgetting: dict | None = None  # the run summary's forgetting-guard section (eval/guard.py)


class RunManager:
    def __init__(self, root: Path, python: str | None = None):
        self.root = Path(root).resolve()
        self.python = python or sys.executable
        self._jobs: dict[Path, Job] = {}
        self._last: Path | None = None
        self._lock = threading.Lock()

    # ---- start / abort -------------------------------------------------------------------------------------------
    def start(self, cfg: Config, lang: str = "en") -> Job:
        out = Path(cfg.train.output_dir)
        out = (out if out.is_absolute() else self.root / out).resolve()
        with self._lock:
            job = self.find(out)
            if job is not None and job.running():
                raise TuneforgeError(Msg("msg_job_running", pid=job.pid, out=out), Msg("msg_job_running_fix"))
            out.mkdir(parents=True, exist_ok=True)
            cfg_path = out / CONFIG
            cfg_path.write_text(cfg.to_yaml(), encoding="utf-8")
            log_path = out / LOG
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
            # src-layout checkouts run without installing: let the child import the same tuneforge as this process
            import tuneforge

            src = str(Path(tuneforge.__file__).resolve().parent.parent)
            env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            argv = [self.python, "-m", "tuneforge", "--lang", lang, "train", str(cfg_path)]  # errors in the page's
            with open(log_path, "ab") as log_fh:                                                # language
                log_fh.write(f"$ {shlex.join(argv)}\n".encode())
                log_fh.flush()
                proc = subprocess.Popen(argv,
                                        cwd=self.root, stdout=log_fh, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            job = Job(out, proc.pid, time.time(), proc, extra={"log_start": 0})
            identity = process_identity(proc.pid) or {}  # its start time; the command line is the one launched
            atomic.write_json(out / LOCK, {"pid": proc.pid, "started": job.started,
                                           "start_ticks": identity.get("start_ticks"), "cmdline": argv})
            self._jobs[out] = job
            self._last = out
            threading.Thread(target=self._reap, args=(job,), daemon=True).start()
            return job

    def _reap(self, job: Job) -> None:
        job.returncode = job.proc.wait()
        (job.output_dir / LOCK).unlink(missing_ok=True)

    def find(self, out: Path) -> Job | None:
        """The job for ``out``: one this process started, or one a lock file names whose process still runs."""
        out = Path(out).resolve()
        job = self._jobs.get(out)
        if job is not None:
            return job
        lock = out / LOCK
        if lock.is_file():
            try:
                info = json.loads(lock.read_text())
                pid = int(info["pid"])
            except (ValueError, KeyError, TypeError, json.JSONDecodeError):
                info, pid = {}, 0
            if pid and _alive(pid) and _ours(info):
                job = Job(out, pid, float(info.get("started", time.time())), extra={"identity": info})
                self._jobs[out] = job
                return job
            if pid and _alive(pid):  # a live process that is not the job: never signalled, the lock is stale
                log.warn(f"{lock}: names pid {pid}, which is not the training job this lock was written for (other "
                         f"start time or command line); ignored")
            lock.unlink(missing_ok=True)
        return None

    def current(self) -> Job | None:
        """The job a freshly loaded page should show: a running one first, else the last one started here."""
        for job in self._jobs.values():
            if job.running():
                return job
        for lock in _locks(self.root):
            job = self.find(lock.parent)
            if job is not None and job.running():
                return job
        return self._jobs.get(self._last) if self._last else None

    def abort(self, out: Path, grace_s: float = 10.0) -> bool:
        """Stop the job's whole process group (SIGTERM, then SIGKILL after ``grace_s``). True if one was running."""
        job = self.find(out)
        if job is None or not job.running():
            return False
        if job.proc is None and not _ours(job.extra.get("identity", {})):  # re-checked right before signalling
            return False
        job.aborted = True
        try:
            pgid = os.getpgid(job.pid)
        except ProcessLookupError:
            return False
        if pgid != job.pid:  # the job leads its own session (start_new_session); anything else is not ours
            return False
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.time() + grace_s
        while time.time() < deadline and job.running():
            time.sleep(0.1)
        if job.running():
            os.killpg(pgid, signal.SIGKILL)
            while job.running():
                time.sleep(0.1)
        # children of the group may outlive the leader for a moment
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        (job.output_dir / LOCK).unlink(missing_ok=True)
        with open(job.output_dir / LOG, "a") as fh:
            ck = list_checkpoints(job.output_dir)
            fh.write(f"aborted; last complete checkpoint: {ck[-1].name if ck else 'none'}\n")
        return True

    # ---- status --------------------------------------------------------------------------------------------------
    def status(self, out: Path | None, tail_lines: int = 40) -> Status:
        if out is None:
            return Status("idle")
        out = Path(out).resolve()
        job = self.find(out)
        st = Status("idle", output_dir=str(out))
        metrics = read_metrics(out / METRICS)
        st.loss = [(r["step"], r["loss"]) for r in metrics if "loss" in r]
        st.eval_loss = [(r["step"], r["eval_loss"]) for r in metrics if "eval_loss" in r]
        last = next((r for r in reversed(metrics) if "loss" in r), None)
        log_text = tail(out / LOG, tail_lines)
        st.log_tail = log_text
        st.checkpoints = [p.name for p in list_checkpoints(out)]
        m = None
        for m in STEP_LINE.finditer(log_text):
            pass
        if m:
            st.step, st.total = int(m.group(1)), int(m.group(2))
        if last:
            st.step = max(st.step, int(last["step"]))
            st.tokens_per_s = last.get("tokens_per_s")
            st.elapsed_s = last.get("elapsed")
        if st.total and st.elapsed_s and st.step:
            st.eta_s = st.elapsed_s / st.step * max(st.total - st.step, 0)
        summary = _json(out / SUMMARY)
        if job is not None and job.running():
            st.state = "running"
        elif job is not None and job.aborted:
            st.state = "aborted"
        elif summary.get("completed"):
            st.state, st.step = "finished", summary.get("steps", st.step)
            st.total = st.total or st.step
            st.eta_s = 0.0
            st.tokens_per_s = summary.get("tokens_per_s", st.tokens_per_s)
            st.forgetting = summary.get("forgetting_guard")
        elif job is not None:
            st.state = "failed"
        st.returncode = job.returncode if job is not None else None
        return st


def _locks(root: Path, depth: int = 4):
    """Lock files of running jobs up to ``depth`` folders below the root (hidden folders and venvs skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if LOCK in filenames:
            yield Path(dirpath) / LOCK
        if len(rel.parts) >= depth:
            dirnames[:] = []
        else:
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("venv", "node_modules",
                                                                                      "__pycache__")]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return rows


def tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64_000))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def fmt_eta(seconds: float | None, lang: str = "en") -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return t("eta_unknown", lang)
    s = int(seconds)
    return t("eta_format", lang, m=s // 60, s=s % 60)
