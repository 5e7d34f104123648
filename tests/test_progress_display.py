"""The progress display: the ETA is known on slow steps, progress lines carry no source tag, and the smoothed loss
curve follows the raw loss on short runs."""

import io
import logging
import math
import random

from tuneforge.train import metrics
from tuneforge.utils import log


def test_eta_on_slow_steps_and_no_source_tag(monkeypatch):
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160, color_system=None)
    monkeypatch.setattr(log, "console", console)
    monkeypatch.setattr(log, "is_tty", lambda: True)
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log.logger.addHandler(handler)
    level = log.logger.level
    log.logger.setLevel(logging.INFO)
    now = [1000.0]
    monkeypatch.setattr(metrics.time, "time", lambda: now[0])
    try:
        p = metrics.Progress(total_steps=10, start_step=0)
        for step in (1, 2):
            now[0] += 90.0  # 90 s per step: rich's own TimeRemainingColumn shows -:--:-- here
            p.update(step, {"epoch": 0.1 * step, "loss": 2.0, "lr": 1e-4, "grad_norm": 1.0, "tokens_per_s": 50.0})
        p.close()
    finally:
        log.logger.removeHandler(handler)
        log.logger.setLevel(level)
    out = buf.getvalue()
    assert "ETA 12m00s" in out and "-:--:--" not in out  # 8 steps left × 90 s
    assert "metrics.py" not in out
    assert lines and lines[-1].endswith("ETA 12m00s") and "step 2/10" in lines[-1]


def test_smoothed_curve_follows_short_runs():
    falling = [3.0 * 0.7 ** i for i in range(8)]  # a short identity run: the loss falls fast
    assert metrics.smoothing_weight(len(falling)) == 0  # too short to smooth: the raw curve only
    assert metrics.smooth(falling) == falling
    random.seed(0)
    n = 60
    noisy = [2.0 * math.exp(-i / 15) + 0.2 + random.uniform(-0.1, 0.1) for i in range(n)]
    sm = metrics.smooth(noisy)
    assert 0 < metrics.smoothing_weight(n) < 0.9
    truth_end = 2.0 * math.exp(-(n - 1) / 15) + 0.2
    assert abs(sm[-1] - truth_end) < 0.1, (sm[-1], truth_end)  # a fixed 0.9 lagged by ~0.15 here
    fixed = metrics.smooth(noisy, 0.9)
    assert abs(fixed[-1] - truth_end) > abs(sm[-1] - truth_end)
    assert metrics.smoothing_weight(10_000) == 0.9


def test_plot_has_raw_only_for_short_runs(tmp_path):
    import json

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": 3.0 / i}) + "\n"
                                                    for i in range(1, 9)))
    assert [p.name for p in metrics.plot_loss(tmp_path)] == ["training_loss.png"]
