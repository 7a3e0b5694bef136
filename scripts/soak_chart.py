#!/usr/bin/env python3
"""Draws the soak curve: RSS and open descriptors over time, from the
`SAMPLE` lines `cargo bench --bench soak` prints, as a small SVG.

    python3 scripts/soak_chart.py docs/soak-run1.txt > docs/soak.svg

A SAMPLE line is `SAMPLE <seconds> <rss KiB> <fds> <live connections>
<ops> <bytes checked>`, tab-separated. No dependencies beyond Python 3.
"""

import sys

WIDTH, PANEL, GAP = 640, 150, 40
LEFT, RIGHT, TOP = 70, 20, 30


def samples(lines):
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 7 and parts[0] == "SAMPLE":
            t, rss, fds, live, ops, checked = parts[1:]
            out.append((float(t), int(rss), int(fds), int(live), int(ops), int(checked)))
    return out


def nice_max(value):
    """A round number at or above `value` for the top of an axis."""
    if value <= 0:
        return 1
    step = 10 ** (len(str(int(value))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step


def panel(out, top, series, t_max, y_max, label, unit, colors):
    """One panel: axes, 5 horizontal grid lines, a polyline per series."""
    plot_w = WIDTH - LEFT - RIGHT
    out.append(f'<text x="{LEFT}" y="{top - 8}" class="t">{label}</text>')
    for i in range(6):
        value = y_max * i / 5
        y = top + PANEL - PANEL * i / 5
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" class="g"/>')
        text = f"{value:,.0f}" if y_max >= 10 else f"{value:.1f}"
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="y">{text}{unit}</text>')
    for name, points in series:
        coords = " ".join(
            f"{LEFT + plot_w * t / t_max:.1f},{top + PANEL - PANEL * v / y_max:.1f}"
            for t, v in points
        )
        out.append(f'<polyline points="{coords}" class="l" stroke="{colors[name]}"/>')
    # Legend, right-aligned above the panel.
    x = LEFT + plot_w
    for name, _ in reversed(series):
        out.append(f'<text x="{x}" y="{top - 8}" class="k" fill="{colors[name]}">{name}</text>')
        x -= 8 * len(name) + 16


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    lines = sys.stdin if path == "-" else open(path, encoding="utf-8")
    data = samples(lines)
    if len(data) < 2:
        sys.exit("soak_chart: fewer than two SAMPLE lines")
    t_max = data[-1][0] or 1
    rss = [(t, r / 1024) for t, r, *_ in data]
    fds = [(t, f) for t, _, f, *_ in data]
    live = [(t, l) for t, _, _, l, *_ in data]
    height = TOP + 2 * PANEL + GAP + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        "<style>.g{stroke:#ddd;stroke-width:1}.l{fill:none;stroke-width:2}"
        ".y{text-anchor:end;fill:#555}.t{font-weight:bold}.k{text-anchor:end}"
        ".x{text-anchor:middle;fill:#555}</style>",
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    colors = {"RSS": "#1f77b4", "open fds": "#d62728", "live connections": "#2ca02c"}
    panel(out, TOP, [("RSS", rss)], t_max, nice_max(max(v for _, v in rss) * 1.1),
          "Resident memory of the soak process", " MiB", colors)
    top2 = TOP + PANEL + GAP
    peak = max(max(v for _, v in fds), max(v for _, v in live))
    panel(out, top2, [("open fds", fds), ("live connections", live)], t_max,
          nice_max(peak * 1.1), "Open descriptors and live connections", "", colors)
    # Time axis under the second panel.
    plot_w = WIDTH - LEFT - RIGHT
    base = top2 + PANEL
    step = 60 if t_max > 180 else 10
    t = 0
    while t <= t_max + 1e-9:
        x = LEFT + plot_w * t / t_max
        label = f"{t / 60:.0f} min" if step == 60 else f"{t:.0f} s"
        out.append(f'<text x="{x:.1f}" y="{base + 16}" class="x">{label}</text>')
        t += step
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
