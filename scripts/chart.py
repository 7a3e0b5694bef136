#!/usr/bin/env python3
"""Draw docs/perf.svg from the output of `cargo bench --bench compare`.

    cargo bench --bench compare | tee bench-output.txt
    python3 scripts/chart.py < bench-output.txt             # writes docs/perf.svg
    python3 scripts/chart.py -o other.svg < bench-output.txt

Reads the machine-readable lines the bench prints,

    RESULT <tab> metric <tab> impl <tab> median <tab> min <tab> max <tab> unit <tab> ratio <tab> better <tab> ratio_min <tab> ratio_max
    FAULTS <tab> workload <tab> impl <tab> median <tab> min <tab> max <tab> per

where ratio is the median of the paired ratios impl/tokio (one per
repetition: each run is a fresh process, and the ratio is taken within
each repetition), ratio_min and ratio_max their spread, and better is
"higher" or "lower". Draws one group of horizontal bars per metric, one
bar per implementation, showing how it compares with tokio with "better"
always to the right: the ratio itself when higher is better (throughput),
its inverse when lower is better (time, memory). The whiskers span the
paired ratios. The dashed line at 1.0 is tokio. Minor page faults per
unit of work (FAULTS) are printed beside the raw median.

Output of older bench versions (nine RESULT fields, ratio = median /
tokio's median) still draws: the whiskers are then min and max scaled
by that ratio. Python 3.11 standard library only.
"""

import argparse
import math
import os
import sys
from xml.sax.saxutils import escape

COLORS = {
    "evstream": "#1f5fa8",  # the plain variant: the strongest blue
    "evstream-variant": "#7fb0e0",
    "tokio": "#6e6e6e",
    "async-io": "#e08a1e",
    "std": "#3a9a3a",
}

LABEL_W = 200  # left column: workload headings and implementation names
BAR_X = 210
BAR_W = 560
VALUE_W = 270  # right column: ratio, raw median and page faults
ROW_H = 19
BAR_H = 13
GROUP_GAP = 12
HEAD_H = 22
TOP = 70
BOTTOM = 46


def color(impl):
    if impl == "evstream":
        return COLORS["evstream"]
    if impl.startswith("evstream"):
        return COLORS["evstream-variant"]
    if impl.startswith("tokio"):
        return COLORS["tokio"]
    if impl.startswith("async-io"):
        return COLORS["async-io"]
    return COLORS["std"]


def parse(stream):
    """Returns (header line or None, [(workload, [row, ...]), ...])."""
    header = None
    groups = {}
    order = []
    faults = {}
    for line in stream:
        line = line.rstrip("\n")
        if line.startswith("evstream comparison:"):
            header = line
        if line.startswith("FAULTS\t"):
            fields = line.split("\t")
            if len(fields) >= 7:
                faults[(fields[1], fields[2])] = (float(fields[3]), fields[6])
            continue
        if not line.startswith("RESULT\t"):
            continue
        fields = line.split("\t")
        if len(fields) < 9:
            sys.exit(f"chart.py: malformed RESULT line: {line!r}")
        _, workload, impl, median, lo, hi, unit, ratio, better = fields[:9]
        row = {
            "impl": impl,
            "median": float(median),
            "min": float(lo),
            "max": float(hi),
            "unit": unit,
            "ratio": float(ratio),
            "higher": better == "higher",
            # The paired ratios' spread, when the bench printed it.
            "paired": (float(fields[9]), float(fields[10])) if len(fields) >= 11 else None,
        }
        if workload not in groups:
            groups[workload] = []
            order.append(workload)
        groups[workload].append(row)
    # Faults are per workload: the first group of each workload shows them
    # (a metric's workload is its first word: conns-rss -> conns).
    seen = set()
    for workload in order:
        base = workload.split("-")[0]
        for row in groups[workload]:
            row["faults"] = None if base in seen else faults.get((base, row["impl"]))
        seen.add(base)
    return header, [(w, groups[w]) for w in order]


def advantage(row, value=None):
    """How much better than tokio, > 1 = better, whatever the unit: for the
    median by default, or for another value of the same row (min, max),
    measured against tokio's median."""
    r = row["ratio"]
    if math.isnan(r) or r <= 0 or row["median"] <= 0:
        return float("nan")
    if value is not None:
        r *= value / row["median"]
        if r <= 0:
            return float("nan")
    return r if row["higher"] else 1.0 / r


def spread(row):
    """The advantage range over the repetitions: the paired ratios' min to
    max, or (older output) min and max against tokio's median."""
    if row["paired"] is not None:
        a, b = (invert(row, r) for r in row["paired"])
    else:
        a, b = advantage(row, row["min"]), advantage(row, row["max"])
    return min(a, b), max(a, b)


def invert(row, ratio):
    """A ratio impl/tokio as an advantage (> 1 = better than tokio)."""
    if math.isnan(ratio) or ratio <= 0:
        return float("nan")
    return ratio if row["higher"] else 1.0 / ratio


def fmt(v):
    if v >= 1000:
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def nice_step(top):
    for step in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0):
        if top / step <= 10:
            return step
    return 10.0


def draw(header, groups):
    values = [v for _, rows in groups for r in rows for v in (advantage(r),) + spread(r)]
    finite = [v for v in values if not math.isnan(v)]
    top = max(finite + [1.0]) * 1.08
    step = nice_step(top)
    top = math.ceil(top / step) * step
    scale = BAR_W / top

    height = TOP + BOTTOM
    for _, rows in groups:
        height += HEAD_H + len(rows) * ROW_H + GROUP_GAP
    width = BAR_X + BAR_W + VALUE_W

    out = []
    add = out.append
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">'
    )
    add(f'<rect width="{width}" height="{height}" fill="white"/>')
    add(
        f'<text x="12" y="22" font-size="15" font-weight="bold">'
        f"evstream vs tokio, async-io and blocking std (loopback TCP)</text>"
    )
    add(
        '<text x="12" y="40" fill="#444">Relative to tokio (dashed line = 1.0), '
        "better to the right (time and memory inverted). "
        "Median of the ratios paired per repetition; whiskers: min to max.</text>"
    )
    if header:
        add(f'<text x="12" y="56" fill="#777" font-size="10">{escape(header[:170])}</text>')

    plot_top = TOP - 6
    plot_bottom = height - BOTTOM + 6
    # Grid and axis labels.
    tick = 0.0
    while tick <= top + 1e-9:
        x = BAR_X + tick * scale
        add(
            f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" '
            f'stroke="#e4e4e4" stroke-width="1"/>'
        )
        add(
            f'<text x="{x:.1f}" y="{plot_bottom + 14}" text-anchor="middle" fill="#555">'
            f"{tick:g}x</text>"
        )
        tick += step
    add(
        f'<text x="{BAR_X + BAR_W / 2:.0f}" y="{plot_bottom + 32}" text-anchor="middle" fill="#333">'
        "advantage over tokio (&gt;1 = better than tokio)</text>"
    )

    y = TOP
    for workload, rows in groups:
        unit = rows[0]["unit"]
        direction = "higher" if rows[0]["higher"] else "lower"
        add(
            f'<text x="12" y="{y + 15}" font-weight="bold">{escape(workload)}</text>'
            f'<text x="{LABEL_W - 4}" y="{y + 15}" text-anchor="end" fill="#666" font-size="10">'
            f"{escape(unit)}, {direction} is better</text>"
        )
        y += HEAD_H
        for row in rows:
            v = advantage(row)
            cy = y + ROW_H / 2
            add(
                f'<text x="{LABEL_W - 4}" y="{cy + 4:.1f}" text-anchor="end">'
                f'{escape(row["impl"])}</text>'
            )
            if math.isnan(v):
                add(f'<text x="{BAR_X + 4}" y="{cy + 4:.1f}" fill="#999">no tokio reference</text>')
            else:
                w = max(v * scale, 1.0)
                add(
                    f'<rect x="{BAR_X}" y="{cy - BAR_H / 2:.1f}" width="{w:.1f}" height="{BAR_H}" '
                    f'fill="{color(row["impl"])}"><title>{escape(row["impl"])}: '
                    f'median {fmt(row["median"])} {escape(row["unit"])} '
                    f'(min {fmt(row["min"])}, max {fmt(row["max"])})</title></rect>'
                )
                lo, hi = spread(row)
                label_x = BAR_X + w + 4
                if not math.isnan(lo) and hi - lo > 1e-6:
                    x_lo, x_hi = BAR_X + lo * scale, BAR_X + hi * scale
                    add(
                        f'<path d="M{x_lo:.1f},{cy:.1f}H{x_hi:.1f}M{x_lo:.1f},{cy - 3:.1f}V{cy + 3:.1f}'
                        f'M{x_hi:.1f},{cy - 3:.1f}V{cy + 3:.1f}" stroke="#222" stroke-width="1" fill="none"/>'
                    )
                    label_x = max(label_x, x_hi + 4)
                add(f'<text x="{label_x:.1f}" y="{cy + 4:.1f}" font-size="11">{v:.2f}x</text>')
            right = f'{fmt(row["median"])} {escape(row["unit"])}'
            if row.get("faults"):
                count, per = row["faults"]
                right += f", {fmt(count)} faults/{escape(per)}"
            add(
                f'<text x="{width - 8}" y="{cy + 4:.1f}" text-anchor="end" fill="#666" font-size="10">'
                f"{right}</text>"
            )
            y += ROW_H
        y += GROUP_GAP

    one = BAR_X + 1.0 * scale
    add(
        f'<line x1="{one:.1f}" y1="{plot_top}" x2="{one:.1f}" y2="{plot_bottom}" '
        f'stroke="#222" stroke-width="1.2" stroke-dasharray="5,3"/>'
    )
    add("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "perf.svg")
    parser.add_argument("-o", "--output", default=os.path.normpath(default))
    args = parser.parse_args()
    header, groups = parse(sys.stdin)
    if not groups:
        sys.exit("chart.py: no RESULT lines on standard input (pipe the bench output in)")
    svg = draw(header, groups)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(svg)
    rows = sum(len(r) for _, r in groups)
    print(f"chart.py: wrote {args.output} ({len(groups)} workloads, {rows} bars)")


if __name__ == "__main__":
    main()
