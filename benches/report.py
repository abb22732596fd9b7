#!/usr/bin/env python3
"""Summarise a benches/run.sh results directory.

usage: report.py RESULTS_DIR

Reads RESULTS_DIR/results.txt (one line per run, key=value fields from the load
generator plus kind/server/conns/rep), prints the Markdown table of medians and
ratios to the raw mio server, and writes RESULTS_DIR/detail.md (every median
per server and level) and RESULTS_DIR/summary.json (for chart.py).
Standard library only.
"""
import json
import os
import statistics
import sys

# Table labels of servers whose run.sh name is terse.
LABELS = {'copas-api': 'copas API on socketloop'}


def parse(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            head, _, note = line.partition(' note=')
            r = dict(kv.split('=', 1) for kv in head.split() if '=' in kv)
            r['note'] = note.strip()
            runs.append(r)
    return runs


def num(r, k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None


def median(rs, k):
    v = [x for x in (num(r, k) for r in rs) if x is not None]
    return statistics.median(v) if v else None


def fmt(x, d=1):
    return '-' if x is None else f'{x:,.{d}f}'


def main():
    out = sys.argv[1]
    runs = parse(os.path.join(out, 'results.txt'))
    servers = []
    for r in runs:
        if r['kind'] in ('echo', 'idle') and r['server'] not in servers:
            servers.append(r['server'])
    echo_levels = sorted({int(r['conns']) for r in runs if r['kind'] == 'echo'})
    idle_levels = sorted({int(r['conns']) for r in runs if r['kind'] == 'idle'})

    def group(kind, s, c):
        return [r for r in runs if r['kind'] == kind and r['server'] == s and int(r['conns']) == c]

    def ok(rs):
        return [r for r in rs if r.get('status') == 'ok' and r.get('server_alive') == '1']

    summary = {'servers': servers, 'echo_levels': echo_levels, 'idle_levels': idle_levels,
               'cpu_us_per_msg': {}, 'idle': {}, 'reps': max((int(r['rep']) for r in runs), default=0)}
    for s in servers:
        summary['cpu_us_per_msg'][s] = {str(c): median(ok(group('echo', s, c)), 'server_us_per_msg')
                                       for c in echo_levels}
        summary['idle'][s] = {}
        for n in idle_levels:
            rs = group('idle', s, n)
            good = ok(rs)
            worst = min(rs, key=lambda r: num(r, 'verified') or 0) if rs else {}
            summary['idle'][s][str(n)] = {
                'runs': len(rs), 'ok_runs': len(good),
                'bytes_per_conn': median(good, 'bytes_per_conn'),
                'warmed': num(worst, 'warmed'), 'held': num(worst, 'held'),
                'verified': num(worst, 'verified'),
                'died': any(r.get('server_alive') == '0' for r in rs),
                'note': next((r['note'] for r in rs if r.get('note')), ''),
            }
    raw = summary['cpu_us_per_msg'].get('raw', {})

    def cpu_cell(s, c):
        v = summary['cpu_us_per_msg'][s][str(c)]
        if v is None:
            return 'failed'
        base = raw.get(str(c))
        return f'{v:.2f} ({v / base:.2f}x)' if base else f'{v:.2f}'

    def held_cell(s, n):
        i = summary['idle'][s][str(n)]
        if i['runs'] and i['ok_runs'] == i['runs']:
            return f'held, all verified ({fmt(i["bytes_per_conn"], 0)} B/conn)'
        served = int(i['warmed'] or 0)
        if 'descriptor too large' in i['note']:
            why = "died: select()'s FD_SETSIZE (1,024)"
        elif i['died']:
            why = 'died: ' + i['note'][-70:]
        else:
            why = 'failed'
        return f'{why}; {served:,} served, {int(i["verified"] or 0):,} verified after the hold'

    if not servers:
        http_table(runs, summary)
        with open(os.path.join(out, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        return

    small = idle_levels[0] if idle_levels else None
    big = idle_levels[-1] if len(idle_levels) > 1 else None
    cols = [f'CPU us/msg, {c:,} conn{"s" if c > 1 else ""} (vs raw)' for c in echo_levels]
    if small:
        cols.append(f'bytes per idle conn, {small:,} held')
    if big:
        cols.append(f'{big:,} connections')
    print(f'| server | {" | ".join(cols)} |')
    print('|---|' + '---:|' * (len(cols) - (1 if big else 0)) + ('---|' if big else ''))
    for s in servers:
        cells = [cpu_cell(s, c) for c in echo_levels]
        if small:
            i = summary['idle'][s][str(small)]
            cells.append(fmt(i['bytes_per_conn'], 0) if i['ok_runs'] == i['runs'] else held_cell(s, small))
        if big:
            cells.append(held_cell(s, big))
        print(f'| {LABELS.get(s, s)} | {" | ".join(cells)} |')
    reps = summary['reps']
    print(f'\nMedians of {reps} run{"s" if reps != 1 else ""} each; CPU = server CPU time per echoed '
          f'line (us), ratio to the raw mio server in the same run.')
    http_table(runs, summary)

    with open(os.path.join(out, 'detail.md'), 'w') as f:
        f.write('| server | conns | ok runs | msgs/s | p50 us | p99 us | server CPU % | server us/msg '
                '| loadgen CPU % | other CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n')
        for c in echo_levels:
            for s in servers:
                rs = group('echo', s, c)
                g = ok(rs)
                f.write(f'| {s} | {c:,} | {len(g)}/{len(rs)} | {fmt(median(g, "msgs_per_s"), 0)} '
                        f'| {fmt(median(g, "p50_us"))} | {fmt(median(g, "p99_us"))} '
                        f'| {fmt(median(g, "server_cpu_pct"), 0)} | {fmt(median(g, "server_us_per_msg"), 2)} '
                        f'| {fmt(median(g, "loadgen_cpu_pct"), 0)} | {fmt(median(g, "other_cpu_pct"), 0)} |\n')
        f.write('\n| server | conns | ok runs | served | held | verified | RSS before kB | RSS held kB '
                '| bytes/conn | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n')
        for n in idle_levels:
            for s in servers:
                for r in group('idle', s, n):
                    f.write(f'| {s} | {n:,} | {r.get("status")} | {r.get("warmed", "-")} | {r.get("held", "-")} '
                            f'| {r.get("verified", "-")} | {r.get("rss_before_kb", "-")} '
                            f'| {r.get("rss_held_kb", "-")} | {r.get("bytes_per_conn", "-")} | {r["note"]} |\n')
    machine = os.path.join(out, 'machine.txt')
    if os.path.exists(machine):
        summary['machine'] = open(machine).read().strip().splitlines()
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)


def http_table(runs, summary):
    """The HTTP server rows (benches/httpserver.sh): CPU per request, socketloop beside
    nginx, at each connection count; the ratio of the medians and the median of the
    per-repetition ratios (the two servers run back to back in each repetition)."""
    http = [r for r in runs if r['kind'] == 'http']
    if not http:
        return
    levels = sorted({int(r['conns']) for r in http})
    good = [r for r in http if r.get('status') == 'ok']
    med = {s: {str(c): median([r for r in good if r['server'] == s and int(r['conns']) == c],
                              'server_us_per_req') for c in levels} for s in ('socketloop', 'nginx')}
    pairs = {}
    for c in levels:
        ratios = []
        for rep in sorted({r['rep'] for r in good}):
            a = [num(r, 'server_us_per_req') for r in good
                 if r['server'] == 'socketloop' and int(r['conns']) == c and r['rep'] == rep]
            b = [num(r, 'server_us_per_req') for r in good
                 if r['server'] == 'nginx' and int(r['conns']) == c and r['rep'] == rep]
            if a and b and b[0]:
                ratios.append(a[0] / b[0])
        pairs[str(c)] = statistics.median(ratios) if ratios else None
    summary['http'] = {'levels': levels, 'cpu_us_per_req': med, 'paired_ratio': pairs}
    cols = ' | '.join(f'CPU us/req, {c:,} conns' for c in levels)
    print(f'\n| http server: socketloop vs nginx (wrk -t1, keep-alive) | {cols} |')
    print('|---|' + '---:|' * len(levels))
    for s in ('socketloop', 'nginx'):
        cells = []
        for c in levels:
            v, base = med[s][str(c)], med['nginx'][str(c)]
            if v is None:
                cells.append('failed')
            elif s == 'socketloop' and base:
                cells.append(f'{v:.2f} ({v / base:.2f}x nginx; paired {fmt(pairs[str(c)], 2)}x)')
            else:
                cells.append(f'{v:.2f}')
        print(f'| {s} | {" | ".join(cells)} |')
    reps = len({r['rep'] for r in http})
    print(f'\nMedians of {reps} run{"s" if reps != 1 else ""}; CPU = server CPU time (user + system) per '
          'request; "paired": the median of the per-repetition ratios. Goal: <= 0.8x nginx.')


if __name__ == '__main__':
    main()
