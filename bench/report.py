#!/usr/bin/env python3
"""Renders the figures of target/bench/summary.json into docs/BENCHMARKS.md.

Only the part between the `figures:begin` and `figures:end` markers is rewritten; the method
and the discussion around it are prose kept in the file.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = ROOT / "target" / "bench" / "summary.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def f(x, d=1):
    return "n/a" if x is None else f"{x:.{d}f}"


def spread(s, scale=1.0, d=1):
    """`p50 (p25–p75, min–max)`."""
    if not s or not s.get("n"):
        return "not measured"
    g = lambda k: f(s[k] * scale, d)
    return f"{g('p50')} ({g('p25')}–{g('p75')}; min {g('min')}, max {g('max')}; n={s['n']})"


def failed(r):
    return f"**not measured**: {r['error'][:300]}" if r and "error" in r else None


def render(s):
    m = s["machine"]
    out = [
        f"Run of {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB memory, "
        f"kernel {m['kernel']}, {m['engine']}, cgroup {m['cgroup']}, sqlite3 shell "
        f"{m['sqlite3']}, {m['clw_fortress']} (release build). Load average (1/5/15 min) at "
        f"start {' '.join(m['loadavg_start'])}, at the end {' '.join(m.get('loadavg_end', ['?']))}.",
        "",
        "Values are `median (p25–p75; min, max; n)` unless stated otherwise.",
        "",
    ]
    e = s.get("exposure")
    out += ["### 1. Exposure window (foreign container start -> its limits in the cgroup files)", ""]
    if failed(e) or not e:
        out += [failed(e) or "not run", ""]
    else:
        a = e["timer_analytic"]
        out += [
            "| | p50 | p99 | spread |",
            "| --- | --- | --- | --- |",
            f"| clw-fortress daemon (event-driven), ms | {f(e['daemon']['p50'])} | "
            f"{f(e['daemon']['p99'])} | {spread(e['daemon'])} |",
            f"| 5-min timer + `docker update` loop (analytic), s | {f(a['p50_s'])} | "
            f"{f(a['p99_s'])} | uniform 0–300 s plus the loop's position |",
            "",
            f"Signed, limits-in-force minus `start` event (negative: in force before the "
            f"container's process ran), ms: {spread(e['signed'])}. How long the container's "
            f"cgroup existed without the limits (from its first sight by the watcher), ms: "
            f"{spread(e['cgroup_unlimited'])}.",
            "",
            f"Load average at the end of this figure: {' '.join(e['loadavg'])}. Containers whose "
            f"limits were already in force when their cgroup first appeared (set at `create`, "
            f"before `start`): {e['limits_in_force_at_first_sight']} of {e['n']}.",
            "",
            f"The baseline loop over the same {e['n']} containers (one `docker update` each): "
            f"wall {spread(e['timer_loop_wall_s'], d=2)} s; client CPU per run "
            + ", ".join(f"{r['client_cpu_s']:.2f} s" for r in e["timer_loop_runs"])
            + " (the `docker` CLI processes; dockerd's share is not included).",
            "",
        ]
    w = s.get("sweep")
    out += ["### 2. Sweep throughput (limits on 100 containers)", ""]
    if failed(w) or not w:
        out += [failed(w) or "not run", ""]
    else:
        n = w["n"]
        sh_, en, nc = w["shell_wall_s"], w["enforce_wall_s"], w["enforce_converged_wall_s"]
        cpu = lambda rs: f(sorted(r["client_cpu_s"] for r in rs)[len(rs) // 2], 2)
        out += [
            "| | wall, s | containers/s (median) | client CPU, s (median) |",
            "| --- | --- | --- | --- |",
            f"| `clw-fortress enforce` (all {n} changed) | {spread(en, d=2)} | "
            f"{f(n / en['p50'])} | {cpu(w['enforce'])} |",
            f"| shell loop of `docker update` (all {n} changed) | {spread(sh_, d=2)} | "
            f"{f(n / sh_['p50'])} | {cpu(w['shell_loop'])} |",
            f"| `clw-fortress enforce`, already converged | {spread(nc, d=2)} | "
            f"{f(n / nc['p50'])} | {cpu(w['enforce_converged'])} |",
            "",
            f"Load average at the end of this figure: {' '.join(w['loadavg'])}.",
            "",
        ]
    h = s.get("heal")
    out += ["### 3. Time to heal", ""]
    if failed(h) or not h:
        out += [failed(h) or "not run", ""]
    else:
        t = h["timer3m_analytic"]
        out += [
            "| | median, s | spread, s |",
            "| --- | --- | --- |",
            f"| sandbox killed -> running again, daemon (`die` event) | "
            f"{f(h['daemon_kill']['p50'], 2)} | {spread(h['daemon_kill'], d=2)} |",
            f"| HTTP target down -> serving again, daemon (`every: 5s`, `failures: 1`) | "
            f"{f(h['daemon_http']['p50'], 2)} | {spread(h['daemon_http'], d=2)} |",
            f"| HTTP target down -> serving again, 5-s shell poller (curl + docker restart) | "
            f"{f(h['poller5_http']['p50'], 2)} | {spread(h['poller5_http'], d=2)} |",
            f"| HTTP target, 3-min timer and 3 failures (analytic) | {f(t['p50_s'], 0)} | "
            f"{f(t['min_s'], 0)}–{f(t['max_s'], 0)}, uniform |",
            f"| the restart itself (`docker restart -t 1` -> serving) | "
            f"{f(h['restart']['p50'], 2)} | {spread(h['restart'], d=2)} |",
            "",
            f"Load average at the end of this figure: {' '.join(h['loadavg'])}.",
            "",
        ]
    v = s.get("verify")
    out += ["### 4. Verify cost", ""]
    if failed(v) or not v:
        out += [failed(v) or "not run", ""]
    else:
        ps = v["per_sandbox"]
        execs = sorted(p["execs"] for p in ps)
        scanned = sorted(p["scanned_bytes"] for p in ps)
        out += [
            "| | wall, s |",
            "| --- | --- |",
            f"| full suite, 1 sandbox (`verify --sandbox`) | {spread(v['one_wall_s'], d=2)} |",
            f"| full suite, 10 sandboxes | {spread(v['ten_wall_s'], d=2)} |",
            f"| per sandbox, from `-v` (`elapsed_ms`) | "
            f"{spread(v['per_sandbox_elapsed_ms'], 1 / 1000, 2)} |",
            f"| per exec probe (`elapsed_ms / execs`, upper bound: includes the scan) | "
            f"{spread(v['per_exec_ms'], 1 / 1000, 3)} |",
            "",
            f"Per sandbox: {execs[len(execs) // 2] if execs else '?'} execs, "
            f"{(scanned[len(scanned) // 2] / (1 << 20)) if scanned else 0:.1f} MiB streamed and "
            f"scanned (median). Exit statuses: {v['rcs']}. Load average at the end: "
            f"{' '.join(v['loadavg'])}.",
            "",
        ]
    c = s.get("scan")
    out += ["### 4b. Content scan throughput (`cargo bench --bench content_scan`)", ""]
    if failed(c) or not c:
        out += [failed(c) or "not run", ""]
    else:
        runs = ", ".join(f"{x:.0f}" for x in c["scan_mib_per_s"])
        raw = ", ".join(f"{x:.0f}" for x in c["raw_only_mib_per_s"])
        out += [
            "| | MiB/s (median) | runs, MiB/s |",
            "| --- | --- | --- |",
            f"| content scan: {c['secrets']} secrets, {c['patterns']} patterns, tar walk, "
            f"archives opened | **{c['scan_median']:.0f}** | {runs} |",
            f"| raw values only, one pass, nothing opened (the previous scan's ceiling) | "
            f"{c['raw_only_median']:.0f} | {raw} |",
            "",
            f"Corpus: {c['size_mib']:.1f} MiB tar of {c['files']} files, "
            f"{c['expanded_mib']:.1f} MiB decompressed on the way; every planted secret found. "
            f"Load average at the end: {' '.join(c['loadavg'])}.",
            "",
        ]
    b = s.get("backup")
    out += ["### 5. Backup of a WAL database under a continuous writer", ""]
    if failed(b) if isinstance(b, dict) else False:
        out += [failed(b), ""]
    elif not b:
        out += ["not run", ""]
    else:
        for mode in b:
            out += [
                f"Source {mode['size_mib']:.0f} MiB, journal mode {mode['mode']}; the writer "
                "commits one 200-byte row every millisecond on its own connection.",
                "",
                "| method | wall, s | MiB/s | finished | commits during | commit p50, ms | "
                "commit p99, ms | commit max, ms |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for x in mode["figures"]:
                out.append(
                    f"| {x['method']} | {f(x['wall_s'], 2)} | {f(x['mib_per_s'], 0)} | "
                    f"{'yes' if x['finished'] else '**no** (stopped at the timeout)'} | "
                    f"{x['commits']} | {f(x['commit_p50_ms'], 2)} | {f(x['commit_p99_ms'], 2)} | "
                    f"{f(x['commit_max_ms'], 2)} |")
            out.append("")
    p = s.get("footprint")
    out += ["### 6. Footprint of the idle daemon (20 sandboxes, 3 probes)", ""]
    if failed(p) or not p:
        out += [failed(p) or "not run", ""]
    else:
        out += [
            f"Over {p['idle_s']:.0f} s idle: CPU {p['cpu_s']:.2f} s = "
            f"**{p['cpu_percent_of_one_core']:.2f} % of one core**; resident memory (VmRSS) "
            f"{spread(p['rss'], 1 / 1024, 1)} MiB, sampled every 5 s. (`apply` of the 20 "
            f"sandboxes took {p['apply_20_s']:.1f} s.) Load average at the end: "
            f"{' '.join(p['loadavg'])}.",
            "",
        ]
    return "\n".join(out)


def main():
    s = json.loads(SUMMARY.read_text())
    figures = render(s)
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        sys.exit(f"{DOC}: the {BEGIN} / {END} markers are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{figures}\n{END}{tail}")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
