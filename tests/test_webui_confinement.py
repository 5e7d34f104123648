"""Web UI confinement (#16): every file a dataset_info.json entry makes the UI read lies inside --root (absolute,
../, symlinks, folders and globs); a job lock is trusted only for the process it was written for; every command the
UI shows survives a real shell unchanged."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tuneforge.config import build_config
from tuneforge.errors import TuneforgeError
from tuneforge.webui import actions
from tuneforge.webui.runner import LOCK, RunManager, _alive
from tuneforge.webui.schema_form import preview_command

SECRET = "TOP-SECRET-ROW"


@pytest.fixture()
def root(tmp_path, tiny_model, monkeypatch):
    r = tmp_path / "work"
    (r / "data").mkdir(parents=True)
    shutil.copytree(tiny_model, r / "model")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps([{"instruction": SECRET, "output": SECRET}]))
    (r / "data" / "ok.json").write_text(json.dumps([{"instruction": "hi", "output": "hello"}]))
    os.symlink(outside / "secret.json", r / "data" / "link.json")
    (r / "data" / "folder").mkdir()
    (r / "data" / "folder" / "a.json").write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    os.symlink(outside / "secret.json", r / "data" / "folder" / "b.json")
    info = {"ok": {"file_name": "ok.json"}, "absolute": {"file_name": str(outside / "secret.json")},
            "dotdot": {"file_name": "../../outside/secret.json"}, "symlink": {"file_name": "link.json"},
            "folder": {"file_name": "folder"}, "glob": {"file_name": "../../outside/*.json"}}
    (r / "data" / "dataset_info.json").write_text(json.dumps(info))
    monkeypatch.chdir(r)
    return r


def values(name):
    return {"model_name_or_path": "model", "dataset_dir": "data", "dataset": [name], "output_dir": "saves/x"}


@pytest.mark.parametrize("name", ["absolute", "dotdot", "symlink", "folder", "glob"])
def test_dataset_files_outside_the_root_are_neither_previewed_nor_trained(root, name):
    ctx = actions.Context(root, RunManager(root))
    for act in (lambda: actions.preview_data(ctx, values(name), "en"),
                lambda: actions.resolve(ctx, values(name), for_start=True)):
        with pytest.raises(TuneforgeError) as e:
            act()
        text = str(e.value)
        assert f"the file_name of dataset {name!r} in dataset_info.json" in text and "outside the working folder" in text
        assert SECRET not in text
    assert "tf-preview" in actions.preview_data(ctx, values("ok"), "en")  # an entry inside the root still works


@pytest.fixture()
def stranger():
    """A live process the UI did not start (its own process group, as a reused pid's owner could be)."""
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


@pytest.mark.parametrize("lock", [
    lambda pid: {"pid": pid, "started": time.time()},  # an old lock without identity
    lambda pid: {"pid": pid, "start_ticks": 1, "cmdline": ["sleep", "60"]},  # the pid, reused by another process
    lambda pid: {"pid": pid, "start_ticks": None, "cmdline": [sys.executable, "-m", "tuneforge", "train", "c.yaml"]},
])
def test_a_lock_naming_a_process_the_ui_did_not_start_is_ignored(tmp_path, stranger, lock):
    out = tmp_path / "saves" / "x"
    out.mkdir(parents=True)
    (out / LOCK).write_text(json.dumps(lock(stranger.pid)))
    mgr = RunManager(tmp_path)
    assert mgr.current() is None and mgr.find(out) is None
    assert not mgr.abort(out, grace_s=0.1)
    time.sleep(0.1)
    assert _alive(stranger.pid) and stranger.poll() is None  # never signalled
    assert not (out / LOCK).exists()  # the stale lock is gone


HOSTILE = {"output_dir": "saves/a; touch PWNED1", "dataset": "x$(touch PWNED2),`touch PWNED3`",
           "default_system": "it's \"quoted\" & 'mixed' | > PWNED4", "dataset_dir": "data dir/with space"}


def round_trip(cmd: str, cwd) -> list[str]:
    """Paste ``cmd`` into bash with the program swapped for printf: the words bash passes on, NUL-separated."""
    program = shlex.split(cmd)[0]
    assert cmd.startswith(program + " ")
    check = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    r = subprocess.run(["bash", "-c", "printf '%s\\0' " + cmd[len(program) + 1:]], capture_output=True, cwd=cwd)
    assert r.returncode == 0
    return r.stdout.decode().split("\0")[:-1]


def test_every_shown_command_survives_a_real_shell(tmp_path):
    cfg = build_config({"model_name_or_path": "m", **HOSTILE})
    for lang in ("en", "zh"):
        cmd = actions.command(cfg, lang)
        assert round_trip(cmd, tmp_path) == shlex.split(cmd)[1:]
        assert preview_command(cfg) in cmd or lang == "zh"
    args = ["--model_name_or_path", "m; touch PWNED5", "--adapter_name_or_path", "a b,$(touch PWNED6)",
            "--export_dir", "out'; touch PWNED7; '"]
    cmd = actions.export_command(args, "zh")
    assert round_trip(cmd, tmp_path) == ["--lang", "zh", "export", *args]
    assert not list(tmp_path.glob("PWNED*"))  # nothing injected ran


def test_preview_over_http_does_not_show_a_file_outside_the_root(tmp_path, monkeypatch):
    """The same refusal through the running app's HTTP API (what a browser — or anyone who can reach the port —
    calls), not only through the Python function behind it."""
    import socket

    from gradio_client import Client

    from tuneforge.webui.app import build_app

    root, outside = tmp_path / "work", tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps([{"instruction": SECRET, "output": SECRET}]))
    (root / "data" / "dataset_info.json").write_text(json.dumps({"evil": {"file_name": str(outside / "secret.json")}}))
    monkeypatch.chdir(root)
    demo = build_app(root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/on_preview_data"]
        name_of = {p["label"].rsplit("· ", 1)[-1]: p["parameter_name"] for p in params["parameters"]}
        shown = client.predict(**{name_of["dataset_dir"]: "data", name_of["dataset"]: ["evil"]},
                               api_name="/on_preview_data")
    finally:
        demo.close()
    text = json.dumps(shown, ensure_ascii=False)
    assert SECRET not in text and "outside the working folder" in text and "evil" in text
