"""HTML pieces of the web UI, as pure functions of data: progress bar, loss curve (inline SVG), data preview."""

from __future__ import annotations

import html
import math

from tuneforge.webui.i18n import t
from tuneforge.webui.runner import Status, fmt_eta


def progress_html(st: Status, lang: str) -> str:
    pct = 0.0
    if st.total:
        pct = min(100.0, 100.0 * st.step / st.total)
    parts = [t(f"state_{st.state}", lang)]
    if st.total:
        parts.append(t("progress_steps", lang, step=st.step, total=st.total))
    if st.tokens_per_s is not None:
        parts.append(t("progress_speed", lang, tps=f"{st.tokens_per_s:.0f}"))
    if st.state == "running":
        parts.append(t("progress_eta", lang, eta=fmt_eta(st.eta_s, lang)))
    if st.checkpoints:
        parts.append(t("progress_ckpt", lang, name=st.checkpoints[-1]))
    f = st.forgetting
    if f and f.get("retention") is not None:
        parts.append(t("progress_retention", lang, kept=f["kept"], n=f["base_correct"],
                       pct=f"{100 * f['retention']:.1f}"))
    text = " · ".join(parts)
    warn = ""
    if f and f.get("below_threshold"):
        lost = "; ".join(x["question"] for x in f.get("lost", []))
        warn = (f'<div class="tf-forgetting-warning" id="tf-forgetting-warning">'
                f'{html.escape(t("progress_forgetting_warning", lang, warning=f.get("warning") or "", lost=lost))}'
                f'</div>')
    return (f'<div id="tf-progress" data-state="{st.state}" data-step="{st.step}" data-total="{st.total or 0}">'
            f'<div class="tf-bar"><div class="tf-fill" style="width:{pct:.1f}%"></div></div>'
            f'<div class="tf-progress-text">{html.escape(text)}</div>{warn}</div>')


def loss_svg(points: list[tuple[int, float]], lang: str, eval_points: list[tuple[int, float]] | None = None,
             width: int = 640, height: int = 240) -> str:
    """The training loss (and evaluation loss) as an SVG line chart; ``data-points`` counts the plotted steps."""
    eval_points = eval_points or []
    title = html.escape(t("loss_title", lang))
    if not points:
        return (f'<div id="tf-loss" data-points="0"><svg width="{width}" height="{height // 3}">'
                f'<text x="10" y="30" fill="#888">{html.escape(t("loss_empty", lang))}</text></svg></div>')
    all_pts = points + eval_points
    xs = [p[0] for p in all_pts]
    ys = [p[1] for p in all_pts if math.isfinite(p[1])]
    x0, x1 = min(xs), max(xs)
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if x1 == x0:
        x1 = x0 + 1
    if y1 - y0 < 1e-9:
        y1 = y0 + 1e-3
    pad_l, pad_r, pad_t, pad_b = 56, 12, 24, 28

    def xy(step: float, v: float) -> str:
        x = pad_l + (step - x0) / (x1 - x0) * (width - pad_l - pad_r)
        y = pad_t + (1 - (v - y0) / (y1 - y0)) * (height - pad_t - pad_b)
        return f"{x:.1f},{y:.1f}"

    def line(pts, color, cls):
        coords = " ".join(xy(s, v) for s, v in pts if math.isfinite(v))
        dots = "".join(f'<circle cx="{xy(s, v).split(",")[0]}" cy="{xy(s, v).split(",")[1]}" r="2.5" '
                       f'fill="{color}"/>' for s, v in pts if math.isfinite(v))
        return f'<polyline class="{cls}" fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>{dots}'

    legend = f'<text x="{pad_l}" y="16" font-size="12" fill="#08519c">{title}</text>'
    if eval_points:
        legend += (f'<text x="{pad_l + 160}" y="16" font-size="12" fill="#d94801">'
                   f'{html.escape(t("eval_loss", lang))}</text>')
    axes = (f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" stroke="#999"/>'
            f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="#999"/>'
            f'<text x="4" y="{pad_t + 4}" font-size="11" fill="#555">{y1:.3f}</text>'
            f'<text x="4" y="{height - pad_b}" font-size="11" fill="#555">{y0:.3f}</text>'
            f'<text x="{pad_l}" y="{height - 8}" font-size="11" fill="#555">{html.escape(t("step", lang))} {x0}</text>'
            f'<text x="{width - pad_r - 60}" y="{height - 8}" font-size="11" fill="#555">'
            f'{html.escape(t("step", lang))} {x1}</text>')
    body = line(points, "#08519c", "tf-train-loss") + (line(eval_points, "#d94801", "tf-eval-loss")
                                                         if eval_points else "")
    last = points[-1]
    return (f'<div id="tf-loss" data-points="{len(points)}" data-last-step="{last[0]}" data-last-loss="{last[1]}">'
            f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px">{legend}{axes}{body}</svg>'
            f'</div>')


def preview_sample_html(text: str, offsets: list[tuple[int, int]], supervised: list[bool], cutoff: int,
                        source: str, lang: str) -> str:
    """One rendered sample; supervised tokens are wrapped in <mark>. Tokens past cutoff_len are struck through."""
    out, pos = [], 0
    n_sup = 0
    for i, ((a, b), sup) in enumerate(zip(offsets, supervised)):
        if a > pos:
            out.append(html.escape(text[pos:a]))
        piece = html.escape(text[max(a, pos):b])
        if i >= cutoff:
            out.append(f'<del class="tf-cut">{piece}</del>')
        elif sup:
            n_sup += 1
            out.append(f'<mark class="tf-sup">{piece}</mark>')
        else:
            out.append(piece)
        pos = max(pos, b)
    out.append(html.escape(text[pos:]))
    return (f'<div class="tf-sample" data-tokens="{len(offsets)}" data-supervised="{n_sup}">'
            f'<div class="tf-sample-head">{html.escape(source)} · '
            f'{html.escape(t("preview_counts", lang, tokens=len(offsets), supervised=n_sup))}</div>'
            f'<pre class="tf-sample-text">{"".join(out)}</pre></div>')


def log_html(text: str, lang: str) -> str:
    """The log tail, newest line at the bottom and in view: the box is a column laid out from its end
    (``flex-direction: column-reverse``), so it starts scrolled to the newest lines and stays there as lines arrive
    (a Textbox shows the top of its text). ``data-lines`` counts the lines shown."""
    lines = text.splitlines()
    body = html.escape(text) if text else html.escape(t("log_empty", lang))
    return (f'<div class="tf-log-wrap"><div class="tf-log-label">{html.escape(t("log", lang))}</div>'
            f'<div id="tf-log" class="tf-log" data-lines="{len(lines)}"><pre>{body}<span class="tf-log-end"></span>'
            f'</pre></div></div>')
