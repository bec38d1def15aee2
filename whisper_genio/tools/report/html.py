"""The report page: one self-contained HTML file (plots are inlined PNGs made with matplotlib)."""

from __future__ import annotations

import base64
import html
import io
import pathlib
from typing import Any

from ...errors import WhisperGenioError

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.verdict{font-size:1.2em;padding:.6em 1em;border-radius:6px}
.FAILS{background:#fde2e1;border:1px solid #e99}.works{background:#e3f6e5;border:1px solid #9c9}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.bad td{background:#fff0f0}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}code{background:#f4f4f4;padding:0 .3em}
.small{color:#666;font-size:.85em}
"""


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise WhisperGenioError(f"the report's plots need matplotlib ({e}): pip install 'whisper_genio[quantize]'") from None
    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plots(report: dict) -> dict[str, str]:
    plt = _plt()
    layers = report["layers"]
    out: dict[str, str] = {}
    x = list(range(len(layers)))
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.plot(x, [min(l["sqnr_db"], 120) for l in layers], "o-", ms=3, label=report["scheme"]["spec"])
    for name, other in report.get("compare", {}).items():
        m = {o["key"]: o["sqnr_db"] for o in other}
        ax.plot(x, [min(m.get(l["key"], float("nan")), 120) for l in layers], ".-", ms=2, alpha=.7, label=name)
    ax.axhline(20, color="gray", lw=.8, ls="--")
    ticks = [i for i, l in enumerate(layers) if l["role"] in ("pos", "resid2", "ln_post")]
    ax.set_xticks(ticks, [layers[i]["key"] for i in ticks], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("SQNR vs float (dB)")
    ax.set_title("Per-layer SQNR along the encoder (cumulative error)")
    ax.legend(fontsize=8)
    ax.grid(alpha=.3)
    out["sqnr"] = _png(fig)

    st = [(i, l) for i, l in enumerate(layers) if "stats" in l]
    fig, ax = plt.subplots(figsize=(11, 3.4))
    colors = {"resid": "C3", "ln": "C0", "logits": "C2", "softmax": "C4", "gelu": "C1", "fc2": "C5"}
    for g, c in colors.items():
        pts = [(i, l["stats"]["absmax"], l["stats"]["p9999"]) for i, l in st if l["group"] == g]
        if pts:
            ax.semilogy([p[0] for p in pts], [p[1] for p in pts], "o", color=c, ms=4, label=f"{g} max|x|")
            ax.semilogy([p[0] for p in pts], [p[2] for p in pts], "x", color=c, ms=4, alpha=.6)
    ax.set_ylabel("|x| (o: max, x: 99.99th pct)")
    ax.set_title("Activation ranges of the float encoder")
    ax.set_xticks(ticks, [layers[i]["key"] for i in ticks], rotation=45, ha="right", fontsize=7)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=.3)
    out["ranges"] = _png(fig)

    res = [l for l in layers if l["group"] == "resid" and "stats" in l and "outlier_channels" in l["stats"]]
    if res:
        worst = max(res, key=lambda l: l["stats"]["absmax"])
        fig, ax = plt.subplots(figsize=(11, 2.8))
        chans = worst["stats"]["outlier_channels"]
        ax.bar([str(c["channel"]) for c in chans], [c["absmax"] for c in chans], color="C3")
        ax.axhline(worst["stats"]["channel_median_absmax"], color="gray", ls="--", label="median channel")
        ax.set_title(f"Outlier channels of the residual stream ({worst['key']}): per-channel max |x|")
        ax.set_xlabel("channel")
        ax.legend(fontsize=8)
        out["outliers"] = _png(fig)

    iso = report.get("isolated") or {}
    if iso:
        fig, ax = plt.subplots(figsize=(11, 2.8))
        items = sorted(iso.items(), key=lambda kv: kv[1]["sqnr_db"])
        ax.bar([k for k, _ in items], [v["sqnr_db"] for _, v in items], color="C0")
        ax.set_ylabel("encoder SQNR (dB)")
        ax.set_title("Isolated sensitivity: one group at 8 bits, everything else float")
        ax.grid(alpha=.3, axis="y")
        out["isolated"] = _png(fig)
    return out


def write_html(report: dict, path: Any) -> pathlib.Path:
    e = html.escape
    s = report["summary"]
    ev = report["evaluation"]
    imgs = plots(report)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Quantization report: {e(report['scheme']['spec'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>Quantization report: <code>{e(report['scheme']['spec'])}</code></h1>",
             f"<p class='small'>{e(report['scheme']['description'])}; model {e(str(report.get('model')))}; "
             f"int8 share of encoder MACs {100 * report['macs']['int8_mac_share']:.0f} %; calibration "
             f"{report['calibration']['windows']} windows of 30 s ({100 * report['calibration']['speech_fraction']:.0f} % audio)</p>",
             f"<div id='verdict' class='verdict {e(s['verdict'])}'>{e(s['headline'])}</div>",
             "<h2>Why</h2><ul>" + "".join(f"<li>{e(f)}</li>" for f in s["findings"]) + "</ul>",
             "<h2>What fixes it</h2><ul>" + "".join(f"<li>{e(f)}</li>" for f in s["fixes"]) + "</ul>",
             "<h2>Encoder output and transcripts</h2>",
             f"<p>SQNR on the speech frames {ev['sqnr_db']:.1f} dB (whole window {ev['sqnr_window_db']:.1f} dB), cosine "
             f"{ev['cosine']:.4f}, max |error| {ev['max_abs']:.3g}, on {ev['windows']} window(s); "
             f"WER vs the float encoder's transcripts {100 * ev.get('wer_vs_float', 0):.1f} %.</p>"]
    if "study" in ev:
        parts.append("<table id='study'><tr><th class='l'>path</th><th class='l'>scheme</th><th>SQNR dB</th><th>cosine</th>"
                     "<th>WER %</th><th>int8 MACs</th></tr>")
        for r in ev["study"].values():
            parts.append(f"<tr><td class='l'>{e(r['path'])}</td><td class='l'>{e(r['spec'])}</td><td>{r['sqnr_db']:.1f}</td>"
                         f"<td>{r['cosine']:.4f}</td><td>{100 * r['wer']:.2f}</td><td>{100 * r['int8_mac_share']:.0f} %</td></tr>")
        parts.append("</table>")
    parts.append("<table><tr><th class='l'>float encoder's transcript</th><th class='l'>this scheme's</th></tr>" +
                 "".join(f"<tr><td class='l'>{e(a)}</td><td class='l'>{e(b)}</td></tr>"
                         for a, b in zip(ev.get("float_texts", []), ev.get("texts", []))) + "</table>")
    for key, title in (("sqnr", "Per-layer SQNR"), ("ranges", "Activation ranges"), ("outliers", "Outlier channels"),
                       ("isolated", "Isolated sensitivity")):
        if key in imgs:
            parts.append(f"<h2>{title}</h2><img id='plot-{key}' alt='{title}' src='{imgs[key]}'>")
    parts.append("<h2>Layers</h2><table><tr><th class='l'>tensor</th><th class='l'>role</th><th>bits</th><th>SQNR dB</th>"
                 "<th>cosine</th><th>min</th><th>max</th><th>99.99% |x|</th><th>crest dB</th><th class='l'>top channels</th>"
                 "<th>8-bit zeroed</th></tr>")
    for l in report["layers"]:
        st = l.get("stats", {})
        chans = ", ".join(f"{c['channel']}:{c['absmax']:.0f}" for c in st.get("outlier_channels", [])[:3])
        zero = st.get("zeroed_8bit", st.get("probs_zeroed_8bit"))
        cls = " class='bad'" if l["sqnr_db"] < 10 else ""
        parts.append(f"<tr{cls}><td class='l'>{e(l['key'])}</td><td class='l'>{e(l['role'])}</td><td>{l['bits']}</td>"
                     f"<td>{l['sqnr_db']:.1f}</td><td>{l['cosine']:.4f}</td>"
                     + (f"<td>{st['min']:.3g}</td><td>{st['max']:.3g}</td><td>{st['p9999']:.3g}</td><td>{st['crest_db']:.0f}</td>"
                        f"<td class='l'>{e(chans)}</td><td>{'' if zero is None else f'{100 * zero:.0f} %'}</td>"
                        if st else "<td></td>" * 6) + "</tr>")
    parts.append("</table>")
    parts.append(f"<p class='small'>Made by whisper_genio in {report['seconds']:.0f} s. Per-layer numbers are "
                 "cumulative (the quantized encoder runs end to end) and measured on the ONNX Runtime QDQ encoder "
                 "(8-bit products on integer kernels). JSON: report.json.</p></body></html>")
    p = pathlib.Path(path)
    p.write_text("\n".join(parts), encoding="utf-8")
    return p
