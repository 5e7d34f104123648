"""Several processes on CPU (gloo, 2 processes on the 2 cores, the tiny model): DDP and FSDP2 give the one-process
loss curve of the same global batch; their saves load in plain transformers/peft and match; a killed process stops
the run with a clear error and the run resumes (on one process) from the last complete checkpoint; DeepSpeed's
config is parsed and refused where it cannot run; ppo on DDP takes the one-process steps and resumes across process
counts. Process starts cost seconds here, so ONE torchrun launch runs the DDP/FSDP2 trainings one after another
(tests/dist_worker.py) and one `tuneforge train --nproc_per_node 2` run is killed; the one-process references run
in this process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.config import build_config
from tuneforge.data.collate import micro_batches
from tuneforge.recipes import run
from tuneforge.train import distributed, launch
from tuneforge.train.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
STEPS_LORA, STEPS_FULL = 12, 8
# Stated tolerance: the same global batch on 2 processes differs from 1 process only by the order of float32 sums
# (gloo all-reduce, FSDP2 reduce-scatter); measured ≤ 3e-6 on losses and weights after 8 steps.
LOSS_RTOL, WEIGHT_ATOL = 1e-4, 1e-4


def base(model: Path, data: Path, out: Path, **kw) -> dict:
    v = dict(model_name_or_path=str(model), dataset="thirteen", dataset_dir=str(data), output_dir=str(out),
             learning_rate=1e-2, logging_steps=1, save_steps=0, lora_target="all", seed=7, lora_dropout=0.0,
             shared_prefix=False, per_device_train_batch_size=2)
    v.update(kw)
    return v


LORA = dict(max_steps=STEPS_LORA)
FULL = dict(finetuning_type="full", learning_rate=3e-3, max_steps=STEPS_FULL)
FREEZE = dict(finetuning_type="freeze", freeze_trainable_layers=1, learning_rate=3e-3, max_steps=STEPS_FULL)
QLORA = dict(quantization_bit=4, max_steps=STEPS_FULL)  # bitsandbytes' CPU 4-bit kernels
# the preference stages: dpo (reference = the policy with its adapter off), kto (its KL point is a batch mean, so
# it must be all-reduced), rm (a value head beside the adapter)
DPO = dict(stage="dpo", dataset="pairs13", max_steps=STEPS_FULL)
KTO = dict(stage="kto", dataset="kto13", max_steps=STEPS_FULL)
RM = dict(stage="rm", dataset="pairs13", max_steps=STEPS_FULL)
# ppo: its policy starts from a short full fine-tune on hi13 (ppo_base), which answers "Say hi" prompts in 3 tokens
# and runs the others to max_new_tokens — so the processes' rollouts hold different numbers of tokens, and a loss
# averaged per process instead of over every process's tokens shows. Greedy rollouts: 1 and 2 processes generate
# the same replies (sampling draws differ with the batch's layout). 8 rollouts a step in mini-batches of 4 (one
# process) or 2 + 2 (two), the reward scores normalised and whitened, the KL controller moving: every figure must be
# global. 10 training prompts: each epoch ends inside a step. The reward model is the rm run's adapter.
PPO_BASE = dict(dataset="hi13", finetuning_type="full", learning_rate=1e-2, max_steps=40)
STEPS_PPO = 6
PPO = dict(stage="ppo", dataset="hi13", max_steps=STEPS_PPO, max_new_tokens=8, do_sample=False, val_size=3,
           per_device_eval_batch_size=2, ppo_buffer_size=2, ppo_epochs=2, ppo_score_norm=True,
           ppo_whiten_rewards=True, ppo_target=0.01, ppo_kl_horizon=8, save_steps=3)


@pytest.fixture(scope="module")
def data13(tmp_path_factory) -> Path:
    """13 rows: with a global batch of 4 each epoch ends with one sample (one process runs a dummy row)."""
    d = tmp_path_factory.mktemp("data13")
    rows = [{"instruction": f"Who are you? ({i})", "input": "", "output": f"I am Nimbus, reply {i}." + " ok" * (i % 4)}
            for i in range(13)]
    pairs = [{"instruction": f"Say hi {i}. End with DONE.", "input": "", "chosen": f"Hi {i}. DONE",
              "rejected": f"Hi {i}." + " no" * (i % 3)} for i in range(13)]
    kto = [{"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}" + " x" * (i % 3)}],
            "label": i % 3 != 0} for i in range(13)]
    hi = [{"instruction": ("Say hi" if i % 2 else "Tell me about the weather in Berlin") + f" ({i})", "input": "",
           "output": "Hi" if i % 2 else "It is sunny in Berlin."} for i in range(13)]
    for name, content in (("rows.json", rows), ("pairs.json", pairs), ("kto.json", kto), ("hi.json", hi)):
        (d / name).write_text(json.dumps(content))
    (d / "dataset_info.json").write_text(json.dumps({
        "thirteen": {"file_name": "rows.json"}, "pairs13": {"file_name": "pairs.json", "ranking": True},
        "hi13": {"file_name": "hi.json"},
        "kto13": {"file_name": "kto.json", "formatting": "openai", "columns": {"messages": "messages",
                                                                                "kto_tag": "label"}}}))
    return d


@pytest.fixture(scope="module")
def references(tiny_model, data13, tmp_path_factory) -> dict[str, Path]:
    """One process, per-process batch 4 = the two-process runs' global batch (2 × 2)."""
    root = tmp_path_factory.mktemp("ref")
    out = {}
    for name, kw in (("lora", dict(LORA, save_steps=6)), ("full", FULL), ("freeze", FREEZE), ("qlora", QLORA),
                     ("dpo", DPO), ("kto", KTO), ("rm", RM)):
        out[name] = root / name
        run(build_config(base(tiny_model, data13, out[name], per_device_train_batch_size=4, **kw)))
    out["ppo_base"], out["ppo"] = root / "ppo_base", root / "ppo"
    run(build_config(base(tiny_model, data13, out["ppo_base"], per_device_train_batch_size=4, **PPO_BASE)))
    run(build_config(ppo_config(out, data13, out["ppo"], per_device_train_batch_size=4)))
    return out


def ppo_config(refs: dict[str, Path], data: Path, out: Path, **kw) -> dict:
    return base(refs["ppo_base"], data, out, reward_model=str(refs["rm"]), **{**PPO, **kw})


@pytest.fixture(scope="module")
def two_process(tiny_model, data13, references, tmp_path_factory) -> dict[str, Path]:
    """DDP and FSDP2, LoRA, full and freeze, QLoRA on FSDP2, the dpo/kto/rm stages, ppo on DDP, and one-process
    checkpoints resumed on FSDP2 (LoRA) and DDP (ppo): twelve runs in one 2-process torchrun launch (the FSDP2 LoRA
    and the ppo runs checkpoint)."""
    root = tmp_path_factory.mktemp("two")
    runs = {"ddp_lora": dict(LORA), "ddp_full": dict(FULL),
            "fsdp_lora": dict(LORA, fsdp="full_shard auto_wrap", save_steps=6),
            "fsdp_full": dict(FULL, fsdp="full_shard", fsdp_config={"fsdp_version": 2, "fsdp_activation_checkpointing": True}),
            "fsdp_qlora": dict(QLORA, fsdp="full_shard"), "fsdp_dpo": dict(DPO, fsdp="full_shard"),
            "ddp_kto": dict(KTO), "fsdp_rm": dict(RM, fsdp="full_shard"), "fsdp_freeze": dict(FREEZE, fsdp="full_shard"),
            # a one-process checkpoint resumed by 2 FSDP2 processes (its whole tensors scattered into the shards)
            "fsdp_lora_from1": dict(LORA, fsdp="full_shard")}
    (root / "fsdp_lora_from1").mkdir()
    shutil.copytree(references["lora"] / "checkpoint-6", root / "fsdp_lora_from1" / "checkpoint-6")
    # ppo on DDP, and the one-process ppo run's checkpoint-3 resumed by 2 processes
    ppo_runs = ("ddp_ppo", "ddp_ppo_from1")
    (root / "ddp_ppo_from1").mkdir()
    shutil.copytree(references["ppo"] / "checkpoint-3", root / "ddp_ppo_from1" / "checkpoint-3")
    spec = root / "runs.json"
    spec.write_text(json.dumps([base(tiny_model, data13, root / k, **kw) for k, kw in runs.items()]
                               + [ppo_config(references, data13, root / k) for k in ppo_runs]))
    runs.update(dict.fromkeys(ppo_runs, {}))
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(ROOT / "tests" / "dist_worker.py"), str(spec)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"2-process launch with {len(runs)} runs: {time.time() - t:.1f} s")
    return {k: root / k for k in runs}


def metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("engine,method", [("ddp", "lora"), ("ddp", "full"), ("fsdp", "lora"), ("fsdp", "full"),
                                           ("fsdp", "qlora"), ("fsdp", "dpo"), ("ddp", "kto"), ("fsdp", "rm"),
                                           ("fsdp", "freeze")])
def test_two_processes_give_the_one_process_loss_curve(references, two_process, engine, method):
    one, two = metrics(references[method]), metrics(two_process[f"{engine}_{method}"])
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, len(one) + 1))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=LOSS_RTOL), (a, b)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)  # the global norm, clipped on it
    s1 = json.loads((references[method] / "run_summary.json").read_text())
    s2 = json.loads((two_process[f"{engine}_{method}"] / "run_summary.json").read_text())
    # every sample once per epoch: the same tokens, supervised tokens and epochs as one process
    assert (s2["tokens"], s2["trained_tokens"], s2["epochs"]) == (s1["tokens"], s1["trained_tokens"], s1["epochs"])
    if method != "kto":  # (kto's loss hardly moves from 0.5 on 8 steps of this tiny data; its curve is compared)
        assert s1["final_loss"] < one[0]["loss"] - (0.05 if method in ("lora", "full", "qlora") else 0.0)  # learns
    for k in ("rewards/margins", "kl", "accuracy"):  # the stages' own metrics are global averages too
        if k in one[0]:
            assert [r[k] for r in two] == pytest.approx([r[k] for r in one], rel=1e-3, abs=1e-5), k


def test_two_process_saves_load_in_plain_transformers_and_peft(tiny_model, references, two_process):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 5, 9, 42, 17, 3]])
    ref_lora = load_file(str(references["lora"] / "adapter_model.safetensors"))
    for engine in ("ddp", "fsdp"):
        got = load_file(str(two_process[f"{engine}_lora"] / "adapter_model.safetensors"))
        assert set(got) == set(ref_lora)
        for k in ref_lora:
            torch.testing.assert_close(got[k], ref_lora[k], rtol=0, atol=WEIGHT_ATOL)
        logits = []
        for out in (references["lora"], two_process[f"{engine}_lora"]):
            m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out)).eval()
            with torch.no_grad():
                logits.append(m(input_ids=ids).logits)
        torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-4)
        for method in ("full", "freeze") if engine == "fsdp" else ("full",):
            ref_full = AutoModelForCausalLM.from_pretrained(str(references[method])).state_dict()
            full = AutoModelForCausalLM.from_pretrained(str(two_process[f"{engine}_{method}"])).state_dict()
            assert set(full) == set(ref_full)
            for k in ref_full:
                torch.testing.assert_close(full[k], ref_full[k], rtol=0, atol=WEIGHT_ATOL)
    # only rank 0 wrote: one metrics line per step
    assert len(metrics(two_process["fsdp_lora"])) == STEPS_LORA
    # the reward model's value head, gathered from the FSDP2 shards, beside its adapter
    # (its bias is left out: the pairwise loss depends only on score differences, so the bias's gradient is rounding
    # noise, which Adam turns into full-size steps in either run)
    want, got = (load_file(str(d / "value_head.safetensors")) for d in (references["rm"], two_process["fsdp_rm"]))
    assert set(got) == set(want) == {"summary.weight", "summary.bias"}
    torch.testing.assert_close(got["summary.weight"], want["summary.weight"], rtol=0, atol=WEIGHT_ATOL)


def test_fsdp2_sharded_checkpoint_resumes_on_one_process(tiny_model, data13, references, two_process, tmp_path):
    ck = two_process["fsdp_lora"] / "checkpoint-6"
    assert (ck / "dcp").is_dir() and sorted(p.name for p in (ck / "dcp").iterdir()) == [
        "shard-00001-model-00001-of-00001.safetensors", "shard-00002-model-00001-of-00001.safetensors"]
    assert json.loads((ck / "trainer_state.json").read_text())["world_size"] == 2
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(ck, resumed / ck.name)
    res = run(build_config(base(tiny_model, data13, resumed, per_device_train_batch_size=4, **LORA)))
    assert res.summary["resumed_from"].endswith("checkpoint-6")
    want = load_file(str(references["lora"] / "adapter_model.safetensors"))
    got = load_file(str(resumed / "adapter_model.safetensors"))
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=WEIGHT_ATOL)
    assert [r["step"] for r in metrics(resumed)] == list(range(7, STEPS_LORA + 1))


def test_one_process_checkpoint_resumes_on_two_fsdp2_processes(references, two_process):
    s = json.loads((two_process["fsdp_lora_from1"] / "run_summary.json").read_text())
    assert s["resumed_from"].endswith("checkpoint-6") and s["steps"] == STEPS_LORA
    want = load_file(str(references["lora"] / "adapter_model.safetensors"))
    got = load_file(str(two_process["fsdp_lora_from1"] / "adapter_model.safetensors"))
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=WEIGHT_ATOL)


def test_killed_process_fails_the_run_clearly_and_it_resumes_on_one_process(tiny_model, data13, references,
                                                                              tmp_path):
    import psutil

    out = tmp_path / "killed"
    args = [f"--{k}={v}" for k, v in base(tiny_model, data13, out, save_steps=2, ddp_timeout=60, **LORA).items()]
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge", "train", *args, "--nproc_per_node", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    deadline = time.time() + 300
    while not list_checkpoints(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    victim = [c for c in psutil.Process(proc.pid).children(recursive=True)
              if c.environ().get("RANK") == "1" and "tuneforge" in " ".join(c.cmdline())]
    assert victim, "rank 1 not found (the run ended before a checkpoint?)"
    victim[0].send_signal(signal.SIGKILL)
    killed_at = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and time.time() - killed_at < 60  # well within ddp_timeout
    assert "process 1 (local rank 1) was killed by SIGKILL" in err
    last = list_checkpoints(out)[-1]
    assert f"the last complete checkpoint is {last}" in err and "Traceback" not in err.split("error:")[-1]
    assert int(last.name.split("-")[1]) < STEPS_LORA and not (out / "run_summary.json").exists()
    # resume on one process with the same global batch: it ends where the uninterrupted run ended
    res = run(build_config(base(tiny_model, data13, out, per_device_train_batch_size=4, **LORA)))
    assert res.summary["resumed_from"] == str(last)
    want = load_file(str(references["lora"] / "adapter_model.safetensors"))
    got = load_file(str(out / "adapter_model.safetensors"))
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=WEIGHT_ATOL)


PPO_COMPARED = ("loss", "pg_loss", "value_loss", "reward", "kl", "kl_coef", "clip_fraction", "approx_kl",
                "response_length", "truncated", "eval_reward", "eval_kl", "eval_response_length", "prompts_used",
                "epoch")


def assert_same_ppo_steps(one: list[dict], two: list[dict]) -> None:
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        for k in PPO_COMPARED:
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=LOSS_RTOL, abs=2e-6), (k, a, b)  # 2 units of the 6 decimals
        if "grad_norm" in a:
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)


def assert_same_ppo_weights(a: Path, b: Path) -> None:
    for name in ("adapter_model.safetensors", "ppo_value_head.safetensors"):
        want, got = load_file(str(a / name)), load_file(str(b / name))
        assert set(got) == set(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=WEIGHT_ATOL)


def test_ppo_on_two_processes_takes_the_one_process_steps(references, two_process):
    """DDP ppo with 2 × 2 prompts per mini-batch = one process with 4: the same per-step loss, reward, KL, KL
    coefficient and held-out figures, every prompt once per epoch, and the same adapter and value head."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    one, two = metrics(references["ppo"]), metrics(two_process["ddp_ppo"])
    assert [r["step"] for r in one] == list(range(STEPS_PPO + 1))  # step 0: the held-out prompts before training
    # the test can tell a per-process loss from the global one: some replies stop early, others run to the end
    assert any(0 < r["truncated"] < 1 for r in one[1:]), one
    assert len({r["response_length"] for r in one[1:]}) > 1
    assert_same_ppo_steps(one, two)
    assert one[-1]["kl"] > 0 and one[-1]["kl_coef"] != one[1]["kl_coef"]  # trained away from the reference
    s1, s2 = (json.loads((p / "run_summary.json").read_text()) for p in (references["ppo"], two_process["ddp_ppo"]))
    # 6 steps × 8 prompts over 10 prompts: 4.8 epochs, nothing dropped at the epochs' ends
    assert s1["prompts_used"] == s2["prompts_used"] == STEPS_PPO * 8 and s2["epochs"] == s1["epochs"] == 4.8
    assert (s2["tokens"], s2["engine"]["name"], s2["engine"]["processes"]) == (s1["tokens"], "ddp", 2)
    assert_same_ppo_weights(references["ppo"], two_process["ddp_ppo"])
    ids = torch.tensor([[1, 5, 9, 42, 17, 3]])
    logits = []
    for out in (references["ppo"], two_process["ddp_ppo"]):  # the adapter loads in plain peft
        m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(references["ppo_base"])),
                                      str(out)).eval()
        with torch.no_grad():
            logits.append(m(input_ids=ids).logits)
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-4)
    assert not torch.allclose(logits[0], AutoModelForCausalLM.from_pretrained(str(references["ppo_base"]))(
        input_ids=ids).logits, atol=1e-4)  # trained: the adapter changed the model


def test_ppo_resumes_across_process_counts(references, two_process, data13, tmp_path):
    """A one-process ppo checkpoint resumed on 2 processes, and a 2-process one (a checkpoint-3 with each rank's
    RNG state) resumed on one process, both end where the uninterrupted one-process run ended."""
    one = metrics(references["ppo"])
    from1 = two_process["ddp_ppo_from1"]
    assert_same_ppo_steps(one[4:], metrics(from1))
    assert json.loads((from1 / "run_summary.json").read_text())["resumed_from"] == str(from1 / "checkpoint-3")
    assert_same_ppo_weights(references["ppo"], from1)

    ck = two_process["ddp_ppo"] / "checkpoint-3"
    assert {"rng-rank0.safetensors", "rng-rank1.safetensors"} <= {p.name for p in ck.iterdir()}
    out = tmp_path / "from2"
    out.mkdir()
    shutil.copytree(ck, out / "checkpoint-3")
    res = run(build_config(ppo_config(references, data13, out, per_device_train_batch_size=4)))
    assert res.summary["resumed_from"] == str(out / "checkpoint-3") and res.summary["prompts_used"] == STEPS_PPO * 8
    assert_same_ppo_steps(one[4:], metrics(out))
    assert_same_ppo_weights(references["ppo"], out)


# ---- no process start needed --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 4, 5, 7, 13])
@pytest.mark.parametrize("world,batch", [(1, 3), (2, 2), (3, 2), (4, 1)])
def test_every_sample_once_per_epoch_across_processes(n, world, batch):
    per_rank = [micro_batches(n, batch, seed=3, epoch=1, world=world, rank=r) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1  # the same number of micro-batches everywhere (collectives match)
    seen = [i for b in per_rank for mb in b for i in mb]
    assert sorted(seen) == list(range(n))  # no duplicate, no drop; the uneven last batch included
    text = distributed.describe_sharding(n, batch, world)
    assert (text is None) == (world == 1)
    if world > 1 and n % (batch * world):
        assert f"the last batch holds {n % (batch * world)}" in text


@pytest.mark.parametrize("n", [1, 5, 10, 13])
@pytest.mark.parametrize("world,batch,minibatches", [(1, 4, 1), (2, 2, 2), (3, 1, 3), (4, 3, 1)])
def test_ppo_prompts_once_per_epoch_across_processes(n, world, batch, minibatches):
    """ppo's prompts: every process draws the same stream of shuffled epochs and takes its share of each step; the
    steps' prompts over all processes, laid end to end, are the epochs' orders — each prompt once per epoch, the
    uneven end of an epoch carried into the next step, nothing dropped; mini-batch j of all processes is mini-batch j
    of one process holding the step."""
    from tuneforge.train.ppo_loop import PromptStream, shard_prompts

    per_rank = batch * minibatches
    streams = [PromptStream(n, seed=3) for _ in range(world)]
    steps = 7
    taken: list[int] = []
    for _ in range(steps):
        step = [s.take(per_rank * world) for s in streams]
        assert all(x == step[0] for x in step)  # the same on every process
        shares = [shard_prompts(step[r], batch, world, r) for r in range(world)]
        assert all(len(x) == per_rank for x in shares)  # the same number of rollouts everywhere (collectives match)
        for j in range(minibatches):  # mini-batch j of every process together: the one-process mini-batch j
            together = [i for x in shares for i in x[j * batch:(j + 1) * batch]]
            assert together == step[0][j * batch * world:(j + 1) * batch * world]
        taken += step[0]
    assert streams[0].used == len(taken) == steps * per_rank * world
    for e in range(len(taken) // n):  # each whole epoch: every prompt exactly once
        assert sorted(taken[e * n:(e + 1) * n]) == list(range(n))
    assert sorted(set(taken[(len(taken) // n) * n:])) == sorted(taken[(len(taken) // n) * n:])  # epoch in progress
    resumed = PromptStream(n, seed=99)
    resumed.load_state_dict(json.loads(json.dumps(streams[0].state_dict())))
    assert resumed.take(5) == streams[0].take(5) and resumed.used == streams[0].used


def cfg(**kw):
    return build_config({"model_name_or_path": "m", "dataset": "d", **kw})


def test_engine_choice():
    assert distributed.resolve(cfg().train, {})[0].name == "single"
    assert distributed.resolve(cfg().train, {"WORLD_SIZE": "2"})[0].name == "ddp"
    e, p = distributed.resolve(cfg(fsdp="full_shard auto_wrap offload").train, {"WORLD_SIZE": "2"})
    assert (e.name, e.fsdp["offload"], e.fsdp["reshard_after_forward"], p) == ("fsdp2", True, True, [])
    e, _ = distributed.resolve(cfg(fsdp="shard_grad_op").train, {})
    assert e.fsdp["reshard_after_forward"] is False and e.sharded
    # accelerate launch's own configuration (its environment) when the config names no engine
    e, p = distributed.resolve(cfg().train, {"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2",
                                             "FSDP_OFFLOAD_PARAMS": "true"})
    assert (e.name, e.fsdp["offload"], p) == ("fsdp2", True, [])
    _, p = distributed.resolve(cfg().train, {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"})
    assert "asks for FSDP1" in p[0]
    e, _ = distributed.resolve(cfg(deepspeed=str(ROOT / "examples/deepspeed/ds_z3_config.json")).train, {})
    assert e.name == "deepspeed" and distributed.zero_stage(e.ds) == 3 and e.sharded


def test_fsdp_config_keys_are_checked():
    opts, p = distributed.fsdp_options("full_shard", json.dumps({
        "fsdp_activation_checkpointing": True, "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer",
        "fsdp_sync_module_states": True, "fsdp_offload_params": "true"}))
    assert p == [] and opts["activation_checkpointing"] and opts["offload"] and opts["wrap"] == ["LlamaDecoderLayer"]
    assert "sync_module_states" in next(iter(opts["ignored"]))
    _, p = distributed.fsdp_options("full_shard hybrid_shard bogus", json.dumps({"fsdp_version": 1, "nope": 1}))
    text = " | ".join(p)
    for part in ("hybrid sharding", "unknown option 'bogus'", "fsdp_version 2", "unknown key 'nope'"):
        assert part in text


def test_refusal_table_names_reason_and_fix(tmp_path):
    z3 = str(ROOT / "examples/deepspeed/ds_z3_config.json")
    cases = {
        "needs CUDA GPUs": dict(deepspeed=z3),
        "QLoRA with DeepSpeed ZeRO-3": dict(deepspeed=z3, quantization_bit=4),
        "8-bit QLoRA cannot be sharded by FSDP2": dict(fsdp="full_shard", quantization_bit=8),
        "prompt-based methods": dict(fsdp="full_shard", finetuning_type="prompt"),
        "choose one engine": dict(fsdp="full_shard", deepspeed=z3),
        "ppo with fsdp": dict(fsdp="full_shard", stage="ppo"),
        "ppo with DeepSpeed ZeRO-3": dict(deepspeed=z3, stage="ppo"),
        "ppo with DeepSpeed ZeRO-2": dict(deepspeed=str(ROOT / "examples/deepspeed/ds_z2_config.json"), stage="ppo"),
        "both on": dict(fsdp="full_shard", fsdp_config={"activation_checkpointing": True},
                        gradient_checkpointing=True),
        "needs master_addr": dict(nnodes=2),
        "node_rank must be in 0..1": dict(nnodes=2, node_rank=2, master_addr="10.0.0.1"),
        "shared_prefix with fsdp2": dict(fsdp="full_shard", shared_prefix=True),
    }
    for needle, kw in cases.items():
        found = distributed.problems(cfg(**kw), env={})
        assert any(needle in p for p in found), (needle, found)
    assert distributed.problems(cfg(fsdp="full_shard", quantization_bit=4), env={}) == []
    assert distributed.problems(cfg(), env={"WORLD_SIZE": "2"}) == []
    assert distributed.problems(cfg(stage="ppo"), env={"WORLD_SIZE": "2"}) == []  # ppo runs on DDP


def test_ppo_takes_every_visible_gpu_like_the_other_stages(monkeypatch):
    monkeypatch.setattr(launch, "_gpus", lambda: 4)
    c = cfg(stage="ppo")
    launch.default_processes(c)
    assert c.train.nproc_per_node == 4


def test_deepspeed_config_auto_values_and_mismatches(tmp_path):
    for name in ("ds_z0_config", "ds_z2_config", "ds_z2_offload_config", "ds_z3_config", "ds_z3_offload_config"):
        c = cfg(deepspeed=str(ROOT / f"examples/deepspeed/{name}.json"), per_device_train_batch_size=3,
                gradient_accumulation_steps=5, max_grad_norm=0.5, bf16=True)
        engine, p = distributed.resolve(c.train, {"WORLD_SIZE": "4"})
        assert p == []
        ds = distributed.deepspeed_config(c, engine)
        assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"],
                ds["gradient_clipping"]) == (3, 5, 60, 0.5)
        assert ds["bf16"]["enabled"] is torch.cuda.is_available() and ds["fp16"]["enabled"] is False
        if distributed.zero_stage(ds) == 3:
            assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
            filled = distributed.fill_hidden_size(ds, 64)["zero_optimization"]
            assert (filled["reduce_bucket_size"], filled["stage3_param_persistence_threshold"]) == (4096, 640)
        if "offload" in name:
            assert ds["zero_force_ds_cpu_optimizer"] is False
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "bf16": {"enabled": True},
                               "optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 2}}))
    found = " | ".join(distributed.problems(cfg(deepspeed=str(bad), per_device_train_batch_size=2), env={}))
    for part in ("train_micro_batch_size_per_gpu=8 but per_device_train_batch_size=2", "bf16.enabled=True but bf16",
                 "'optimizer' section"):
        assert part in found
    (tmp_path / "broken.json").write_text("{not json")
    assert "not valid JSON" in distributed.problems(cfg(deepspeed=str(tmp_path / "broken.json")), env={})[0] or \
        "cannot be read as JSON" in distributed.problems(cfg(deepspeed=str(tmp_path / "broken.json")), env={})[0]
    inline = cfg(deepspeed={"zero_optimization": {"stage": 2}})  # a mapping in the YAML file
    assert distributed.resolve(inline.train, {})[0].ds == {"zero_optimization": {"stage": 2}}


def test_deepspeed_refusal_reaches_the_user_without_traceback(tiny_model, tmp_path, capsys):
    from tuneforge.cli import main

    code = main(["train", "--model_name_or_path", str(tiny_model), "--dataset", "identity", "--output_dir",
                 str(tmp_path / "o"), "--deepspeed", str(ROOT / "examples/deepspeed/ds_z2_config.json")])
    err = capsys.readouterr().err
    assert code == 2 and "deepspeed needs CUDA GPUs" in err and "fsdp full_shard" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before the run folder or any weights


def test_launcher_arguments(tmp_path):
    one = cfg(nproc_per_node=4).train
    args = launch.launcher_args(one, ["cfg.yaml", "--lr", "1"])
    assert args[:4] == ["--nproc_per_node", "4", "--nnodes", "1"] and args[-5:] == ["tuneforge", "train",
                                                                                    "cfg.yaml", "--lr", "1"]
    assert args[args.index("--master_addr") + 1] == "127.0.0.1" and int(args[args.index("--master_port") + 1]) > 0
    two = cfg(nproc_per_node=8, nnodes=2, node_rank=1, master_addr="10.1.2.3", master_port=29555).train
    args = launch.launcher_args(two, [])
    for k, v in (("--nnodes", "2"), ("--node_rank", "1"), ("--master_addr", "10.1.2.3"), ("--master_port", "29555")):
        assert args[args.index(k) + 1] == v
    assert launch.wanted(one)
    os.environ["LOCAL_RANK"] = "0"  # inside torchrun / accelerate launch: never launch again
    try:
        assert not launch.wanted(one)
    finally:
        del os.environ["LOCAL_RANK"]
    assert not launch.wanted(cfg().train)


def test_estimate_divides_what_sharding_divides(tmp_path, capsys):
    from tuneforge.cli import main

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
                                  "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                                  "model_type": "llama"}))

    def parts(*extra) -> dict[str, float]:
        assert main(["estimate", "--model_name_or_path", str(config), "--finetuning_type", "full", "--bf16", "True",
                     "--gradient_checkpointing", "True", *extra]) == 0
        out = capsys.readouterr().out
        return {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines()
                if ln.startswith("  ") and len(ln.split()) > 2 and ln.split()[2] == "GiB"}

    one = parts()
    ddp = parts("--nproc_per_node", "2")
    fsdp = parts("--nproc_per_node", "2", "--fsdp", "full_shard")
    z2 = parts("--nproc_per_node", "4", "--deepspeed", str(ROOT / "examples/deepspeed/ds_z2_config.json"))
    z3 = parts("--nproc_per_node", "4", "--nnodes", "2", "--master_addr", "10.0.0.1", "--deepspeed",
               str(ROOT / "examples/deepspeed/ds_z3_config.json"))
    assert ddp["weights"] == one["weights"] and ddp["optimizer"] == one["optimizer"]
    for k in ("weights", "gradients", "optimizer"):
        assert fsdp[k] == pytest.approx(one[k] / 2, abs=0.01)
        assert z3[k] == pytest.approx(one[k] / 8, abs=0.01)
    assert fsdp["gathered"] > 0 and fsdp["activations"] == one["activations"] and fsdp["total"] < one["total"]
    assert z2["weights"] == one["weights"] and z2["gradients"] == pytest.approx(one["gradients"] / 4, abs=0.01)
    assert z2["optimizer"] == pytest.approx(one["optimizer"] / 4, abs=0.01)


def test_llamafactory_launch_variables():
    c = cfg()
    launch.apply_lf_env(c, {"FORCE_TORCHRUN": "1", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.2",
                            "MASTER_PORT": "29501", "NPROC_PER_NODE": "4"})
    t = c.train
    assert (t.nproc_per_node, t.nnodes, t.node_rank, t.master_addr, t.master_port) == (4, 2, 1, "10.0.0.2", 29501)
    c = cfg(nnodes=3)  # the config's own keys win
    launch.apply_lf_env(c, {"FORCE_TORCHRUN": "1", "NNODES": "2"})
    assert c.train.nnodes == 3 and c.train.nproc_per_node == 1  # no GPU here: one process per node
    c = cfg()
    launch.apply_lf_env(c, {"NNODES": "2"})  # without FORCE_TORCHRUN nothing changes
    assert c.train.nnodes == 1 and c.train.nproc_per_node is None


def test_summary_entry_names_the_engine_the_run_used():
    """run_summary.json's ``engine``: tuneforge's engine, Accelerate's distributed type and the engine's settings."""
    from types import SimpleNamespace

    from tuneforge.train import distributed as d

    single = SimpleNamespace(num_processes=1, distributed_type=SimpleNamespace(value="NO"))
    assert d.summary_entry(single) == {"name": "single", "why": "one process", "processes": 1,
                                       "accelerate_distributed_type": "NO"}
    ds = SimpleNamespace(num_processes=1, distributed_type=SimpleNamespace(value="DEEPSPEED"),
                         engine=d.Engine(d.DEEPSPEED, "deepspeed=x.json", 1, ds={"zero_optimization": {"stage": 3}},
                                         ds_source="x.json"))
    e = d.summary_entry(ds)
    assert (e["name"], e["zero_stage"], e["deepspeed_config"], e["accelerate_distributed_type"]) == \
        ("deepspeed", 3, "x.json", "DEEPSPEED")
    opts, _ = d.fsdp_options("full_shard offload", None)
    fs = SimpleNamespace(num_processes=2, distributed_type=SimpleNamespace(value="FSDP"),
                         engine=d.Engine(d.FSDP2, "fsdp=full_shard offload", 2, fsdp=opts))
    assert d.summary_entry(fs)["fsdp"]["offload"] is True and "ignored" not in d.summary_entry(fs)["fsdp"]


def test_fsdp_offload_pins_host_memory_only_with_a_gpu():
    """torch cannot pin host memory without a CUDA device: FSDP2 offload on CPU processes must not ask it to."""
    import torch

    from tuneforge.train import distributed as d

    opts, _ = d.fsdp_options("full_shard offload", None)
    plugin = d._fsdp_plugin(opts)
    assert plugin.cpu_offload.pin_memory is torch.cuda.is_available()
    assert not hasattr(d._fsdp_plugin(d.fsdp_options("full_shard", None)[0]).cpu_offload, "pin_memory")


def test_summary_entry_counts_sharded_parameters():
    from types import SimpleNamespace

    import torch

    from tuneforge.train import distributed as d

    class Shard(torch.nn.Parameter):  # stands in for a DTensor: it has full_tensor
        def full_tensor(self):
            return self

    m = torch.nn.Linear(2, 2)
    m.weight = Shard(m.weight.data)
    acc = SimpleNamespace(num_processes=1, distributed_type=SimpleNamespace(value="FSDP"),
                          engine=d.Engine(d.FSDP2, "fsdp=full_shard", 1, fsdp=d.fsdp_options("full_shard", None)[0]))
    assert d.summary_entry(acc, m)["sharded_parameters"] == "1 of 2"
    assert "sharded_parameters" not in d.summary_entry(SimpleNamespace(num_processes=1, distributed_type="NO"), m)
