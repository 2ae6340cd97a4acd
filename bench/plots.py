"""Plots for docs/performance.md, as SVG written by hand: no plotting library to install, and
the files diff as text. Three shapes: horizontal bars, grouped horizontal bars, lines."""

from html import escape

FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
GATEHOUSE = "#c44e52"
OTHER = "#4c72b0"


def _nice_max(v):
    """A round axis end at or above v."""
    if v <= 0:
        return 1.0
    exp = 1.0
    while exp * 10 <= v:
        exp *= 10
    while exp > v:
        exp /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= v:
            return step * exp
    return 10 * exp


def _fmt(v):
    if v == 0:
        return "0"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _svg(width, height, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} font-size="12">\n'
        f'<rect width="{width}" height="{height}" fill="white"/>\n{body}</svg>\n'
    )


def _x_axis(x0, x1, y_top, y_bottom, vmax, unit, ticks=5):
    out = []
    for i in range(ticks + 1):
        v = vmax * i / ticks
        x = x0 + (x1 - x0) * i / ticks
        out.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_bottom}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x:.1f}" y="{y_bottom + 16}" text-anchor="middle" fill="#555">{_fmt(v)}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y_bottom + 34}" text-anchor="middle" fill="#333">{escape(unit)}</text>')
    return out


def bars(title, items, unit, highlight=lambda name: False):
    """items: [(label, value)]; one horizontal bar each."""
    label_w, right, bar_h, gap = 230, 90, 22, 8
    width = 860
    top = 40
    height = top + len(items) * (bar_h + gap) + 50
    x0, x1 = label_w, width - right
    vmax = _nice_max(max((v for _, v in items), default=1))
    out = [f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>']
    y_bottom = top + len(items) * (bar_h + gap)
    out += _x_axis(x0, x1, top - 4, y_bottom, vmax, unit)
    for i, (label, v) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = (x1 - x0) * v / vmax
        color = GATEHOUSE if highlight(label) else OTHER
        out.append(f'<text x="{x0 - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        out.append(f'<text x="{x0 + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#333">{_fmt(v)}</text>')
    return _svg(width, height, "\n".join(out) + "\n")


def grouped(title, labels, series, values, unit):
    """labels: one group per label; series: names within a group; values[i][j]: label i, series j.
    Bars are drawn on a scale up to the largest value; a group whose values are far apart still
    shows each number beside its bar."""
    label_w, right, bar_h, inner, gap = 230, 90, 11, 1, 10
    width = 860
    top = 58
    group_h = len(series) * (bar_h + inner)
    height = top + len(labels) * (group_h + gap) + 50
    x0, x1 = label_w, width - right
    vmax = _nice_max(max((v for row in values for v in row), default=1))
    out = [f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>']
    for j, name in enumerate(series):
        lx = x0 + j * 90
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>')
        out.append(f'<text x="{lx + 16}" y="42">{escape(name)}</text>')
    y_bottom = top + len(labels) * (group_h + gap)
    out += _x_axis(x0, x1, top - 4, y_bottom, vmax, unit)
    for i, label in enumerate(labels):
        y = top + i * (group_h + gap)
        out.append(f'<text x="{x0 - 8}" y="{y + group_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        for j, v in enumerate(values[i]):
            yy = y + j * (bar_h + inner)
            w = (x1 - x0) * v / vmax
            out.append(f'<rect x="{x0}" y="{yy}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[j % len(PALETTE)]}"/>')
            out.append(f'<text x="{x0 + w + 4:.1f}" y="{yy + bar_h - 2}" font-size="10" fill="#333">{_fmt(v)}</text>')
    return _svg(width, height, "\n".join(out) + "\n")


def lines(title, xs, series, unit):
    """xs: category labels along x; series: [(name, [value per x])]."""
    width, height = 860, 420
    left, right, top, bottom = 80, 240, 40, 60
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    vmax = _nice_max(max((v for _, vs in series for v in vs), default=1))
    out = [f'<text x="{(x0 + x1) / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i in range(6):
        v = vmax * i / 5
        y = y0 - (y0 - y1) * i / 5
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_fmt(v)}</text>')
    out.append(f'<text x="18" y="{(y0 + y1) / 2:.1f}" transform="rotate(-90 18 {(y0 + y1) / 2:.1f})" text-anchor="middle">{escape(unit)}</text>')
    n = len(xs)

    def xpos(k):
        return x0 + (x1 - x0) * (k + 0.5) / n

    for k, label in enumerate(xs):
        out.append(f'<text x="{xpos(k):.1f}" y="{y0 + 18}" text-anchor="middle" fill="#555">{escape(label)}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{y0 + 40}" text-anchor="middle">concurrent connections</text>')
    for j, (name, vs) in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        pts = " ".join(f"{xpos(k):.1f},{y0 - (y0 - y1) * v / vmax:.1f}" for k, v in enumerate(vs))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for k, v in enumerate(vs):
            out.append(f'<circle cx="{xpos(k):.1f}" cy="{y0 - (y0 - y1) * v / vmax:.1f}" r="3.5" fill="{color}"/>')
        ly = top + 10 + j * 20
        out.append(f'<line x1="{x1 + 20}" y1="{ly}" x2="{x1 + 44}" y2="{ly}" stroke="{color}" stroke-width="2.5"/>')
        out.append(f'<text x="{x1 + 50}" y="{ly + 4}">{escape(name)}</text>')
    return _svg(width, height, "\n".join(out) + "\n")
