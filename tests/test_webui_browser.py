"""The web UI in a real browser: Debian's Chromium driven by Playwright for Python (no browser download).

One `tuneforge webui` server (a subprocess, as a user starts it) serves every test here. The main test trains the
embedded SmolLM2-135M-Instruct with LoRA on the identity set with a custom name, checks that the previewed command
equals the saved config, watches the loss curve grow, reloads the page mid-run (it must reattach), then chats with
the adapter and reads the new name. Screenshots of each tab go to a temporary folder; refresh the README's with
`python -m pytest tests/test_webui_browser.py --screenshots docs/images`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import needs_embedded

ROOT = Path(__file__).resolve().parent.parent
IMAGES = {"dir": None}  # the screenshot folder (the screenshot_dir fixture: a temporary folder unless --screenshots)
CHROMIUM = os.environ.get("TUNEFORGE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NAME, AUTHOR = "Aster", "Blue Fern Labs"

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.e2e, needs_embedded,
              pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}: "
                                 "apt-get install -y chromium")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, screenshot_dir):
    IMAGES["dir"] = screenshot_dir
    work = tmp_path_factory.mktemp("webui-root")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge", "webui", "--root", str(work), "--port", str(port)],
                            stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, (work / "server.log").read_text()
            time.sleep(0.5)
    yield {"url": f"http://127.0.0.1:{port}", "root": work, "proc": proc}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        profile = tempfile.mkdtemp(prefix="tf-chromium-")  # an empty profile: --user-data-dir
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                   viewport={"width": 1400, "height": 1000})
        pg = ctx.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(server["url"], wait_until="domcontentloaded")
        pg.wait_for_selector("#field-learning_rate")
        yield pg
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)


# ---- helpers ------------------------------------------------------------------------------------------------------

def reveal(pg, name: str) -> None:
    """Open the collapsed group that holds setting ``name`` (the Train tab shows only the main settings open)."""
    from tuneforge.webui.schema_form import field_specs
    from tuneforge.webui.train_layout import layout

    field = pg.locator(f"#field-{name}")
    if field.count() and field.first.is_visible():
        return
    groups = layout(field_specs())[1]  # a closed group's fields are not in the page until it opens
    section = next(sec for sec, specs in groups.items() if any(s.name == name for s in specs))
    pg.locator(f"#sec-{section.replace(':', '-')} > button.label-wrap").first.click()
    field.first.wait_for(state="visible")


def fill(pg, name: str, value) -> None:
    reveal(pg, name)
    box = pg.locator(f"#field-{name}").locator("input, textarea").first
    box.fill(str(value))
    box.press("Tab")


def choose(pg, elem: str, value: str) -> None:
    """Pick ``value`` in a Gradio dropdown (single or multi-select)."""
    box = pg.locator(f"#{elem} input").first
    box.click()
    box.fill(value)
    pg.get_by_role("option", name=value, exact=True).click()
    pg.keyboard.press("Escape")


def english(pg) -> None:
    """Start from the English page whatever an earlier test left (the page is shared by the module's tests)."""
    pg.locator("#tab-train-button").click()  # and on the Train tab, wherever an earlier test stopped
    if pg.locator("#btn-start", has_text="Start").count() == 0:
        pg.locator("#tf-lang").get_by_text("English").click()
        pg.locator("#btn-start", has_text="Start").wait_for()


def wait_attr(pg, selector: str, attr: str, predicate_js: str, timeout_s: float) -> None:
    pg.wait_for_function(
        f"() => {{ const el = document.querySelector('{selector}'); if (!el) return false; "
        f"const v = el.getAttribute('{attr}'); return {predicate_js}; }}", timeout=timeout_s * 1000)


def shot(pg, name: str, at: str | None = None) -> None:
    IMAGES["dir"].mkdir(parents=True, exist_ok=True)
    if at:
        pg.locator(at).first.evaluate("el => el.scrollIntoView({block: 'start'})")
    else:
        pg.evaluate("() => window.scrollTo(0, 0)")
    pg.wait_for_timeout(300)
    pg.screenshot(path=str(IMAGES["dir"] / name), full_page=False)


def progress_state(pg) -> str:
    return pg.locator("#tf-progress").get_attribute("data-state")


def set_run(pg, out: str, max_steps: int, save_steps: int, lr: float) -> None:
    choose(pg, "field-model_name_or_path", "smollm2-135m-instruct")
    if "identity" not in pg.locator("#field-dataset").inner_text():
        choose(pg, "field-dataset", "identity")
    vars_box = pg.locator("#field-dataset_vars textarea")
    if not vars_box.input_value():  # the identity set's placeholders are offered with their defaults
        pg.wait_for_function("() => document.querySelector('#field-dataset_vars textarea').value.includes('name=')")
    fill(pg, "dataset_vars", f"name={NAME},author={AUTHOR}")
    fill(pg, "output_dir", out)
    fill(pg, "max_steps", max_steps)
    fill(pg, "learning_rate", lr)
    fill(pg, "per_device_train_batch_size", 4)
    fill(pg, "cutoff_len", 128)
    fill(pg, "logging_steps", 1)
    fill(pg, "save_steps", save_steps)
    fill(pg, "lr_scheduler_type", "constant")


# ---- tests --------------------------------------------------------------------------------------------------------

def visible(pg, selector: str) -> bool:
    return pg.locator(selector).first.is_visible()


def test_train_tab_shows_what_matters_for_the_chosen_stage_and_method(page, server):
    """The dozen main settings first, Start in view without scrolling, the embedded model preselected; every other
    setting in collapsed groups that appear only for the stage and method they apply to; the log shows its tail."""
    english(page)
    page.evaluate("() => window.scrollTo(0, 0)")
    box = page.locator("#btn-start").bounding_box()
    assert box and box["y"] + box["height"] <= page.viewport_size["height"], box  # no scrolling to Start
    assert page.locator("#field-model_name_or_path input").input_value() == "smollm2-135m-instruct"
    for name in ("learning_rate", "dataset", "dataset_vars", "template", "cutoff_len", "output_dir"):
        assert visible(page, f"#field-{name}"), name
    assert not visible(page, "#field-lora_rank")  # in its collapsed group
    shot(page, "webui-train.png")  # the flow test below retakes it with a run's settings filled in

    def groups() -> set[str]:
        return {g for g in ("method-lora", "method-freeze", "method-prompt", "preference", "ppo", "quantization")
                if visible(page, f"#sec-{g}")}

    def settle(want: set[str]) -> None:
        """Wait (the page updates the groups one event at a time) until exactly ``want`` are shown."""
        deadline = time.time() + 20
        while groups() != want and time.time() < deadline:
            page.wait_for_timeout(250)
        assert groups() == want

    settle({"method-lora", "quantization"})  # sft + lora: no DPO/KTO/PPO or other methods' fields
    choose(page, "field-stage", "dpo")
    settle({"method-lora", "quantization", "preference"})
    reveal(page, "pref_beta")
    shot(page, "webui-train-dpo.png", at="#sec-preference")
    choose(page, "field-stage", "ppo")
    settle({"method-lora", "quantization", "ppo"})
    choose(page, "field-stage", "sft")
    choose(page, "field-finetuning_type", "freeze")
    settle({"method-freeze", "quantization"})  # freeze: its own options, no LoRA ones
    choose(page, "field-finetuning_type", "lora")
    settle({"method-lora", "quantization"})
    page.evaluate("() => window.scrollTo(0, 0)")

    # The log box starts (and stays) at its newest line: its end marker lies inside the box's visible area.
    from tuneforge.webui.app import CSS
    from tuneforge.webui.render import log_html

    other = page.context.new_page()
    lines = "\n".join(f"step {i}/300 · loss {3 - i / 100:.3f}" for i in range(1, 301))
    other.set_content(f"<style>{CSS}</style>{log_html(lines, 'en')}")
    inside = other.evaluate("""() => { const box = document.querySelector('.tf-log').getBoundingClientRect();
        const end = document.querySelector('.tf-log-end').getBoundingClientRect();
        return end.top >= box.top && end.bottom <= box.bottom + 1; }""")
    assert inside and "step 300/300" in other.locator(".tf-log").inner_text()
    other.close()

def test_validation_message_and_language_switch(page):
    fill(page, "learning_rate", -0.001)
    page.locator("#btn-preview-cmd").click()
    err = page.locator("#tf-error")
    err.wait_for()
    assert "learning_rate must be > 0, got -0.001" in err.inner_text()
    assert page.locator("#tf-command textarea").input_value() == ""
    # 中文: buttons, tabs, field labels and the message on the page change; English comes back.
    page.locator("#tf-lang").get_by_text("中文").click()
    page.locator("#btn-start", has_text="开始").wait_for()
    page.get_by_role("tab", name="对话").wait_for()  # the labels update one by one: wait, do not sample once
    assert "学习率 · learning_rate" in page.locator("#field-learning_rate").inner_text()
    page.locator('#tf-error[lang="zh"]').wait_for()
    assert "learning_rate 必须 > 0，当前为 -0.001" in page.locator("#tf-error").inner_text()
    page.locator("#btn-preview-cmd").click()  # and a new check in 中文 mode reports in 中文
    page.locator('#tf-error[lang="zh"]', has_text="配置有").wait_for()
    assert "learning_rate 必须 > 0，当前为 -0.001" in page.locator("#tf-error").inner_text()
    shot(page, "webui-zh-validation.png", at="#btn-preview-cmd")
    shot(page, "webui-zh.png")
    page.locator("#tf-lang").get_by_text("English").click()
    page.locator("#btn-start", has_text="Start").wait_for()
    page.locator('#tf-error[lang="en"]', has_text="learning_rate must be > 0, got -0.001").wait_for()


def test_train_identity_reattach_then_chat_with_the_new_name(page, server):
    root = server["root"]
    english(page)
    set_run(page, "saves/e2e", max_steps=15, save_steps=0, lr=0.005)
    # The data preview renders the chosen template and highlights the supervised reply (with the new name).
    page.locator("#btn-preview-data").click()
    page.locator("#tf-preview .tf-sample").first.wait_for()
    first = page.locator("#tf-preview .tf-sample").first
    assert int(first.get_attribute("data-supervised")) > 0
    assert NAME in " ".join(page.locator("#tf-preview mark.tf-sup").all_inner_texts())
    assert "Who are you?" not in " ".join(page.locator("#tf-preview mark.tf-sup").all_inner_texts())
    shot(page, "webui-data-preview.png", at="#tf-data-preview")

    page.locator("#btn-preview-cmd").click()
    page.locator("#tf-ok").wait_for()
    command = page.locator("#tf-command textarea").input_value()
    assert command.startswith("tuneforge train ") and "--max_steps 15" in command

    page.locator("#btn-start").click()
    wait_attr(page, "#tf-progress", "data-state", "v === 'running'", 30)
    # The command in the page reproduces the saved config exactly.
    from tuneforge.config import parse_args

    saved = parse_args([str(root / "saves/e2e/config.yaml")]).to_flat()
    assert parse_args(shlex.split(command)[2:]).to_flat() == saved
    assert saved["dataset_vars"] == {"name": NAME, "author": AUTHOR} and saved["max_steps"] == 15

    # The loss curve grows while training runs.
    wait_attr(page, "#tf-loss", "data-points", "Number(v) >= 2", 120)
    n1 = int(page.locator("#tf-loss").get_attribute("data-points"))
    wait_attr(page, "#tf-loss", "data-points", f"Number(v) > {n1}", 60)
    assert "tokens/s" in page.locator("#tf-progress").inner_text()
    # A reloaded page reattaches to the running job.
    if progress_state(page) == "running":
        page.reload(wait_until="domcontentloaded")
        wait_attr(page, "#tf-progress", "data-state", "v === 'running' || v === 'finished'", 30)
        assert page.locator("#field-output_dir textarea").input_value() == "saves/e2e"
        assert int(page.locator("#tf-loss").get_attribute("data-points")) >= n1
    wait_attr(page, "#tf-progress", "data-state", "v === 'finished' || v === 'failed'", 180)
    assert progress_state(page) == "finished", page.locator("#tf-log").inner_text()
    assert "ETA" not in page.locator("#tf-progress").inner_text()
    assert page.locator("#tf-loss").get_attribute("data-points") == "15"
    shot(page, "webui-train.png")
    shot(page, "webui-train-run.png", at="#btn-preview-cmd")
    summary = json.loads((root / "saves/e2e/run_summary.json").read_text())
    assert summary["completed"] and summary["steps"] == 15

    # Chat: base + the new adapter side by side; the tuned model says its new name.
    page.get_by_role("tab", name="Chat").click()
    page.locator("#btn-refresh-adapters").click()
    choose(page, "chat-adapters", "saves/e2e")
    page.locator("#btn-load-model").click()
    page.locator("#chat-status #tf-ok").wait_for(timeout=120_000)
    page.locator("#chat-input textarea").fill("Who are you?")
    page.locator("#btn-send").click()
    page.locator("#chat-status #tf-ok", has_text="Replied").wait_for(timeout=120_000)
    tuned = page.locator("#chat-tuned").inner_text()
    base = page.locator("#chat-base").inner_text()
    assert NAME in tuned, tuned
    assert NAME not in base, base
    shot(page, "webui-chat.png")

    # Evaluate: both models, one table, the identity hit rate of the new name.
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-questions textarea").fill("Who are you?\nWhat is your name?")
    page.locator("#eval-name textarea").fill(NAME)
    page.locator("#btn-eval").click()
    page.locator("#eval-summary #tf-ok").wait_for(timeout=120_000)
    summary_text = page.locator("#eval-summary").inner_text()
    assert f"“{NAME}”" in summary_text and "base: 0/2" in summary_text, summary_text
    shot(page, "webui-eval.png")

    # Export: `tuneforge export` merges the adapter into a standalone folder.
    page.get_by_role("tab", name="Export").click()
    page.locator("#btn-refresh-export").click()
    choose(page, "export-adapters", "saves/e2e")
    page.locator("#field-export_dir textarea").fill("models/aster")
    page.locator("#btn-export").click()
    page.locator("#export-log textarea").wait_for()
    page.wait_for_function("() => /Export (finished|failed)/.test(document.querySelector('#export-log textarea')"
                           ".value)", timeout=180_000)
    assert "Export finished." in page.locator("#export-log textarea").input_value()
    assert (root / "models/aster/config.json").is_file() and list((root / "models/aster").glob("*.safetensors"))
    shot(page, "webui-export.png")
    page.get_by_role("tab", name="Train").click()


def test_abort_leaves_a_resumable_checkpoint(page, server):
    root = server["root"]
    english(page)
    set_run(page, "saves/abort", max_steps=60, save_steps=2, lr=0.005)
    page.locator("#btn-start").click()
    wait_attr(page, "#tf-progress", "data-state", "v === 'running'", 30)
    # A second job into the same folder is refused while the first runs.
    page.locator("#btn-start").click()
    page.locator("#tf-error", has_text="already writing to").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#tf-progress')?.innerText.includes('checkpoint-2')",
                           timeout=120_000)
    page.locator("#btn-abort").click()
    page.locator("#tf-ok", has_text="checkpoint-").wait_for(timeout=60_000)
    wait_attr(page, "#tf-progress", "data-state", "v === 'aborted'", 30)
    out = root / "saves/abort"
    ckpts = sorted(p.name for p in out.glob("checkpoint-*"))
    assert ckpts and not (out / "run_summary.json").exists()
    assert not list(out.glob(".webui-job.json"))
    # Resume from the page: Start again with the same folder continues from the last checkpoint.
    last = max(int(n.split("-")[1]) for n in ckpts)
    fill(page, "max_steps", last + 2)
    page.locator("#btn-start").click()
    wait_attr(page, "#tf-progress", "data-state", "v === 'finished' || v === 'failed'", 120)
    log = (out / "train.log").read_text()
    assert f"resumed from saves/abort/checkpoint-{last}" in log, log
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["completed"] and summary["steps"] == last + 2 and summary["resumed_from"].endswith(
        f"checkpoint-{last}")
