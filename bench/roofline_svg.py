#!/usr/bin/python3
"""The before/after table of bench/before_after.py as a figure.

    bench/before_after.py REV > log; bench/roofline_svg.py log docs/roofline.svg

One group of bars per benchmark and thread count: the percentage of the FMA
peak before and after, with the target set for that workload on 2 threads
drawn as a dashed line where one was set. Plain SVG, no plotting library.
"""
import re
import sys

TARGETS = {"wide-step": 80, "sample": 65, "unet-step": 50}
COLOURS = {"before": "#b8c4d6", "after": "#2b5d9c"}


def rows(path):
    out = []
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 11 and re.match(r"^\d+$", cells[1]):
                out.append((cells[0], int(cells[1]), float(cells[6].rstrip("%")), float(cells[8].rstrip("%"))))
    return out


def main():
    data = rows(sys.argv[1])
    if not data:
        sys.exit("no table rows found")
    W, H, left, top, bottom = 760, 340, 60, 40, 70
    plot_h = H - top - bottom
    group = (W - left - 20) / len(data)
    bar = group * 0.3

    def y(pct):
        return top + plot_h * (1 - pct / 100)

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">Share of the measured FMA peak, '
         f'before and after (2-core AMD EPYC, AVX-512)</text>']
    for p in range(0, 101, 20):
        s.append(f'<line x1="{left}" x2="{W - 20}" y1="{y(p):.1f}" y2="{y(p):.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{left - 6}" y="{y(p) + 4:.1f}" text-anchor="end">{p}%</text>')
    for i, (name, th, before, after) in enumerate(data):
        x0 = left + i * group + group * 0.15
        for j, (who, v) in enumerate((("before", before), ("after", after))):
            x = x0 + j * bar
            s.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar:.1f}" height="{y(0) - y(v):.1f}" '
                     f'fill="{COLOURS[who]}"/>')
            s.append(f'<text x="{x + bar / 2:.1f}" y="{y(v) - 3:.1f}" text-anchor="middle" font-size="9">{v:.0f}</text>')
        if name in TARGETS and th == 2:  # the targets are for 2 threads
            t = TARGETS[name]
            s.append(f'<line x1="{x0 - 4:.1f}" x2="{x0 + 2 * bar + 4:.1f}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     f'stroke="#c0392b" stroke-width="2" stroke-dasharray="4,2"/>')
        s.append(f'<text x="{x0 + bar:.1f}" y="{H - bottom + 16}" text-anchor="middle">{name}</text>')
        s.append(f'<text x="{x0 + bar:.1f}" y="{H - bottom + 30}" text-anchor="middle">{th} thread{"s" if th > 1 else ""}</text>')
    ly = H - 18
    for j, who in enumerate(("before", "after")):
        s.append(f'<rect x="{left + j * 110}" y="{ly - 9}" width="12" height="12" fill="{COLOURS[who]}"/>')
        s.append(f'<text x="{left + j * 110 + 16}" y="{ly + 1}">{who}</text>')
    s.append(f'<line x1="{left + 230}" x2="{left + 260}" y1="{ly - 3}" y2="{ly - 3}" stroke="#c0392b" stroke-width="2" '
             f'stroke-dasharray="4,2"/><text x="{left + 266}" y="{ly + 1}">target</text>')
    s.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(s) + "\n")
    print(f"wrote {sys.argv[2]} ({len(data)} groups)")


if __name__ == "__main__":
    main()
