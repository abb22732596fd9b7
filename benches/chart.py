#!/usr/bin/env python3
"""Draw the benchmark chart as SVG from report.py's summary.json.

usage: chart.py SUMMARY_JSON OUT_SVG

Left: server CPU time per echoed line (us) at each connection count, per server.
Middle: RSS per idle connection (bytes) at the smallest idle count, with the
1,000-byte target. Right (when benches/httpserver.sh ran): the HTTP server's CPU time
per request beside nginx at each connection count. Standard library only.
"""
import json
import sys
from xml.sax.saxutils import escape

COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2']
HIGHLIGHT = 'socketloop'


def nice_max(v):
    if v <= 0:
        return 1
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        step = m * 10 ** (len(str(int(v))) - 1)
        if step >= v:
            return step
    return v


def main():
    src, dst = sys.argv[1], sys.argv[2]
    d = json.load(open(src))
    servers, levels = d['servers'], d['echo_levels']
    idle_n = d['idle_levels'][0] if d['idle_levels'] else None
    bar, gap, top, left_label = 13, 12, 70, 90
    group_h = max(1, len(levels)) * bar + gap
    panel_w = 330
    height = top + len(servers) * group_h + 60
    http = d.get('http')
    panels = 3 if http else 2
    width = panels * (left_label + panel_w) + 50 * panels + 10
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="white"/>',
          '<text x="10" y="20" font-size="15" font-weight="bold">Line echo: socketloop beside its peers'
          ' (lower is better)</text>']
    reps = d.get('reps', 0)
    el.append(f'<text x="10" y="38" fill="#555">medians of {reps} run(s); server pinned to one core, '
              'load generator on another; 32-byte lines on 127.0.0.1</text>')

    def panel(x0, title, values, unit, decimals, target=None, target_label='', rows=None):
        # values: {server: [(label, value, color)]}; rows: the servers, in order
        rows = rows or servers
        vmax = max([v for rows in values.values() for _, v, _ in rows if v is not None] + [target or 0])
        vmax = nice_max(vmax * 1.05)
        sx = panel_w / vmax
        el.append(f'<text x="{x0}" y="{top - 14}" font-weight="bold">{escape(title)}</text>')
        for i, s in enumerate(rows):
            y = top + i * group_h
            weight = ' font-weight="bold"' if s == HIGHLIGHT else ''
            el.append(f'<text x="{x0 + left_label - 6}" y="{y + group_h / 2}" text-anchor="end"'
                      f'{weight}>{escape(s)}</text>')
            for j, (label, v, color) in enumerate(values.get(s, [])):
                yy = y + j * bar
                if v is None:
                    el.append(f'<text x="{x0 + left_label + 4}" y="{yy + bar - 3}" fill="#b00">'
                              f'{escape(label)}: failed</text>')
                    continue
                w = max(1.0, v * sx)
                el.append(f'<rect x="{x0 + left_label}" y="{yy}" width="{w:.1f}" height="{bar - 2}" '
                          f'fill="{color}"/>')
                el.append(f'<text x="{x0 + left_label + w + 4:.1f}" y="{yy + bar - 3}" font-size="10">'
                          f'{v:,.{decimals}f}</text>')
        axis_y = top + len(rows) * group_h
        el.append(f'<line x1="{x0 + left_label}" y1="{top - 4}" x2="{x0 + left_label}" y2="{axis_y}" '
                  'stroke="#333"/>')
        el.append(f'<line x1="{x0 + left_label}" y1="{axis_y}" x2="{x0 + left_label + panel_w}" '
                  f'y2="{axis_y}" stroke="#333"/>')
        for k in range(5):
            t = vmax * k / 4
            x = x0 + left_label + t * sx
            el.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10">'
                      f'{t:,.{0 if t == int(t) else 1}f}</text>')
        el.append(f'<text x="{x0 + left_label + panel_w / 2}" y="{axis_y + 30}" text-anchor="middle">'
                  f'{escape(unit)}</text>')
        if target:
            x = x0 + left_label + target * sx
            el.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#c00" '
                      'stroke-dasharray="4,3"/>')
            el.append(f'<text x="{x + 3:.1f}" y="{top + 2}" fill="#c00" font-size="10">'
                      f'{escape(target_label)}</text>')

    cpu = {s: [(f'{c:,} conns', d['cpu_us_per_msg'][s].get(str(c)), COLORS[j % len(COLORS)])
               for j, c in enumerate(levels)] for s in servers}
    panel(10, 'Server CPU time per message', cpu, 'microseconds per echoed line', 2)
    # legend for the connection counts
    lx = 10 + left_label
    for j, c in enumerate(levels):
        el.append(f'<rect x="{lx}" y="{height - 18}" width="10" height="10" fill="{COLORS[j % len(COLORS)]}"/>')
        el.append(f'<text x="{lx + 14}" y="{height - 9}" font-size="11">{c:,} conn{"s" if c > 1 else ""}</text>')
        lx += 95
    if idle_n:
        mem = {}
        for s in servers:
            i = d['idle'][s][str(idle_n)]
            v = i['bytes_per_conn'] if i['ok_runs'] == i['runs'] else None
            mem[s] = [(f'{idle_n:,} held', v, '#e15759' if s == HIGHLIGHT else '#9c9c9c')]
        panel(10 + left_label + panel_w + 50, f'RSS per idle connection ({idle_n:,} held)', mem,
              'bytes per connection', 0, target=1000, target_label='target 1,000')
    if http:
        names = ['socketloop', 'nginx']
        req = {s: [(f'{c:,} conns', http['cpu_us_per_req'][s].get(str(c)), COLORS[j % len(COLORS)])
                   for j, c in enumerate(http['levels'])] for s in names}
        panel(10 + 2 * (left_label + panel_w + 50), 'HTTP server: CPU time per request (wrk)', req,
              'microseconds per request', 2, rows=names)
    el.append('</svg>')
    with open(dst, 'w') as f:
        f.write('\n'.join(el) + '\n')


if __name__ == '__main__':
    main()
