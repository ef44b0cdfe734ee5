#!/usr/bin/env python3
"""Benchmarks of clw-fortress against what operators would use instead (issue 11).

Run through `make bench` (scripts/bench.sh builds and sets up first). Standard library only.
Talks to the real engine through the `docker` CLI and runs the release binary. Every container
it creates is named `clwb-...` and labelled `clw-test=1` (foreign ones) or belongs to a fortress
named `clwb-...` (managed ones); all are removed at the end, also on failure.

Writes raw samples to target/bench/*.json and the summary to target/bench/summary.json; the
markdown table is rendered by bench/report.py into docs/BENCHMARKS.md.
"""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
BIN = ROOT / "target" / "release" / "clw-fortress"
IMAGE = "clw-fixture:busybox"
CG = Path("/sys/fs/cgroup")
RUN_ID = "%06x" % random.getrandbits(24)
ONLY = set(filter(None, os.environ.get("CLW_BENCH_ONLY", "").split(",")))

N_EXPOSURE = int(os.environ.get("CLW_BENCH_EXPOSURE_N", "50"))
N_SWEEP = int(os.environ.get("CLW_BENCH_SWEEP_N", "100"))
IDLE_SECONDS = int(os.environ.get("CLW_BENCH_IDLE_S", "120"))
N_KILL = 8
N_HTTP = 5

created = []  # (kind, name): "c" container, "f" fortress label
fortresses = []
tmpdirs = []


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def docker(*args, check=True):
    return sh(["docker", *args], check=check)


def pct(xs, p):
    """Nearest-rank percentile (with 50 samples, p99 is the largest)."""
    s = sorted(xs)
    if not s:
        return None
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def stats(xs):
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "min": min(xs),
        "p25": pct(xs, 25),
        "p50": pct(xs, 50),
        "p75": pct(xs, 75),
        "p99": pct(xs, 99),
        "max": max(xs),
    }


def save(name, data):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


# --- fortress fixtures (the layout of tests/common/mod.rs's Fixture) -----------------------


class Fortress:
    def __init__(self, tag):
        self.name = f"clwb-{tag}-{RUN_ID}"
        fortresses.append(self.name)
        self.dir = Path(tempfile.mkdtemp(prefix="clwb-"))
        tmpdirs.append(self.dir)
        self.home = self.dir / "home"
        oc = self.home / ".openclaw"
        for d in ["workspace", "agents", "memory", "cron", "logs", "extensions", "skills",
                  "credentials", "matrix", "identity", "devices"]:
            (oc / d).mkdir(parents=True)
        (oc / "openclaw.json").write_text("{}\n")
        (oc / "credentials" / "channel-token.json").write_text("{}\n")
        for p in [oc, *oc.rglob("*")]:
            os.lchown(p, 1000, 1000)
        sd = self.home / ".config" / "openclaw-secrets"
        sd.mkdir(parents=True)
        os.chmod(sd, 0o700)
        fd = os.open(sd / "secrets.env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"ANTHROPIC_API_KEY=sk-ant-bench-{random.getrandbits(64):016x}\n".encode())
        os.close(fd)
        self.secrets = sd / "secrets.env"
        (self.dir / "binds").mkdir()
        (self.dir / "binds" / "bench.yaml").write_text(
            "apiVersion: clw-fortress/v1\nkind: BindSet\nmetadata: {name: bench}\n"
            f"root: {json.dumps(str(oc))}\nbinds:\n"
            "  - {source: workspace, target: /agent-workspace, mode: rw}\n"
            "  - {source: memory, mode: rw}\n"
            "  - {source: logs, mode: ro}\n"
            "  - {source: openclaw.json, mode: ro}\n"
            "deny: [credentials, secrets.env, matrix, identity, devices]\n")
        self.manifest = self.dir / "fortress.yaml"
        self.state = self.dir / "state.db"

    def sandbox(self, i):
        return f"{self.name}-s{i}"

    def write(self, sandboxes=0, extra=""):
        sb = "".join(
            f"  - name: {self.sandbox(i)}\n    bindSets: [bench]\n    command: [sleep, \"3600\"]\n"
            for i in range(sandboxes))
        self.manifest.write_text(
            "apiVersion: clw-fortress/v1\nkind: Fortress\n"
            f"metadata:\n  name: {self.name}\n"
            "engine:\n  socket: unix:///var/run/docker.sock\n"
            f"state:\n  path: {json.dumps(str(self.state))}\n"
            f"secrets:\n  file: {json.dumps(str(self.secrets))}\n"
            "bindSets: [binds/bench.yaml]\n"
            f"defaults:\n  image: {IMAGE}\n  user: \"1000:1000\"\n"
            "  limits: {memory: 64Mi, memorySwap: 64Mi, cpus: 0.5, pids: 64}\n"
            f"sandboxes:\n{sb if sb else '  []'}\n" + extra)

    def cmd(self, *args):
        return [str(BIN), "-f", str(self.manifest), *args]

    def run(self, *args, check=True):
        env = dict(os.environ, HOME=str(self.home), NO_COLOR="1")
        r = subprocess.run(self.cmd(*args), capture_output=True, text=True, env=env)
        if check and r.returncode != 0:
            raise RuntimeError(f"clw-fortress {' '.join(args)} -> {r.returncode}: {r.stderr}")
        return r


class Daemon:
    def __init__(self, fortress):
        self.log = fortress.dir / f"daemon-{random.getrandbits(16):04x}.log"
        env = dict(os.environ, HOME=str(fortress.home), NO_COLOR="1")
        self.p = subprocess.Popen(fortress.cmd("-v", "daemon"), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        self.wait_log("limits sweep:")

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_log(self, needle, timeout=120):
        end = time.time() + timeout
        while needle not in self.text():
            if self.p.poll() is not None or time.time() > end:
                raise RuntimeError(f"daemon: no {needle!r}:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def foreign(name, *args, image_cmd=("sleep", "3600"), detach=True):
    created.append(name)
    return docker("run" if detach else "create", *(["-d"] if detach else []), "--name", name,
                  "--label", "clw-test=1", *args, IMAGE, *image_cmd)


def cleanup():
    ids = set()
    for f in fortresses:
        ids.update(docker("ps", "-aq", "--filter", f"label=clw-fortress.fortress={f}",
                          check=False).split())
    ids.update(docker("ps", "-aq", "--filter", f"label=clwb.run={RUN_ID}", check=False).split())
    for n in created:
        if docker("container", "inspect", "-f", "{{.Id}}", n, check=False):
            ids.add(n)
    ids = sorted(ids)
    for i in range(0, len(ids), 50):
        docker("rm", "-f", "-v", *ids[i:i + 50], check=False)
    log(f"cleanup: removed {len(ids)} container(s)")


def cg_file(cid, ctrl, f):
    return CG / ctrl / "docker" / cid / f


# --- 1. exposure window ---------------------------------------------------------------------


def bench_exposure():
    log(f"exposure: {N_EXPOSURE} foreign containers, daemon watching")
    label = f"clwb.adopt={RUN_ID}-x"
    fx = Fortress("exp")
    fx.write(extra=f"adopt:\n  - selector: {{label: {label}}}\n"
                   "    limits: {memory: 64Mi, cpus: 0.5, pids: 64}\n")
    d = Daemon(fx)
    piddir = CG / "pids" / "docker"
    seen, ok = {}, {}
    stop = threading.Event()

    def watch():
        # Polls the cgroup tree for new containers and for their pids.max reaching the limit.
        while not stop.is_set():
            now = time.time_ns()
            try:
                entries = os.listdir(piddir)
            except FileNotFoundError:
                entries = []
            for e in entries:
                if len(e) != 64 or e in ok:
                    continue
                seen.setdefault(e, now)
                try:
                    v = (piddir / e / "pids.max").read_text().strip()
                    m = int((CG / "memory" / "docker" / e / "memory.limit_in_bytes")
                            .read_text())
                except (OSError, ValueError):
                    continue
                if v == "64" and m == 64 << 20:
                    ok[e] = now
            time.sleep(0.0005)

    before = set(os.listdir(piddir)) if piddir.exists() else set()
    for e in before:
        ok[e] = 0
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    samples, signed, from_cgroup, first_sight = [], [], [], 0
    t0 = time.time()
    names = []
    try:
        for i in range(N_EXPOSURE):
            name = f"clwb-exp-{RUN_ID}-{i}"
            names.append(name)
            cid = foreign(name, "--label", label, "--label", f"clwb.run={RUN_ID}")
            end = time.time() + 30
            while cid not in ok and time.time() < end:
                time.sleep(0.01)
            if cid not in ok:
                raise RuntimeError(f"{name} never got its limits")
            t_start = events_time(cid, "start", t0)
            exp = max(0, ok[cid] - t_start) / 1e6
            signed.append((ok[cid] - t_start) / 1e6)
            from_cgroup.append((ok[cid] - seen.get(cid, ok[cid])) / 1e6)
            if ok[cid] <= seen.get(cid, 0):
                first_sight += 1
            samples.append(exp)
    finally:
        stop.set()
        d.stop()
    log_text = d.text()
    # The analytic baseline: a 5-minute timer running a docker update loop over the same set.
    loop = (
        f"for c in $(docker ps -q --filter label={label}); do "
        "docker update --memory 64m --memory-swap 64m --cpus 0.5 --pids-limit 64 $c >/dev/null; "
        "done")
    runs = [timed_shell(loop) for _ in range(3)]
    wall = [r["wall_s"] for r in runs]
    docker("rm", "-f", "-v", *names, check=False)
    res = {
        "daemon_exposure_ms": samples,
        "daemon": stats(samples),
        "signed_ms": signed,
        "signed": stats(signed),
        "cgroup_unlimited_ms": from_cgroup,
        "cgroup_unlimited": stats(from_cgroup),
        "limits_in_force_at_first_sight": first_sight,
        "event_adoptions_logged": log_text.count("adopted"),
        "timer_loop_runs": runs,
        "timer_loop_wall_s": stats(wall),
        "timer_analytic": {
            "model": "U(0, 300 s) + position in loop * loop_time / n",
            "p50_s": 150 + pct(wall, 50) / 2,
            "p99_s": 0.99 * 300 + pct(wall, 50),
            "mean_s": 150 + pct(wall, 50) / 2,
        },
        "n": N_EXPOSURE,
        "loadavg": loadavg(),
    }
    save("exposure", res)
    return res


def events_time(cid, action, since):
    """TimeNano of the container's first `action` event since `since` (engine clock)."""
    for _ in range(50):
        out = docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                     "--filter", f"container={cid}", "--filter", f"event={action}",
                     "--format", "{{.TimeNano}}")
        if out:
            return int(out.split()[0])
        time.sleep(0.1)
    raise RuntimeError(f"no {action} event for {cid}")


def timed_shell(script):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "client_cpu_s": cpu}


def timed_cmd(args, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "client_cpu_s": cpu, "rc": r.returncode, "stderr": r.stderr}


# --- 2. sweep throughput --------------------------------------------------------------------


def bench_sweep():
    log(f"sweep: creating {N_SWEEP} foreign containers")
    label = f"clwb.sweep={RUN_ID}"
    fx = Fortress("swp")
    fx.write(extra=f"adopt:\n  - selector: {{label: {label}}}\n"
                   "    limits: {memory: 64Mi, cpus: 0.5, pids: 64}\n")
    names = []
    for i in range(N_SWEEP):
        name = f"clwb-swp-{RUN_ID}-{i}"
        names.append(name)
        foreign(name, "--label", label, "--label", f"clwb.run={RUN_ID}")
    ids = docker("ps", "-q", "--no-trunc", "--filter", f"label={label}").split()
    assert len(ids) == N_SWEEP, len(ids)
    loop = (
        f"for c in $(docker ps -q --filter label={label}); do "
        "docker update --memory 128m --memory-swap 128m --cpus 1 --pids-limit 128 $c >/dev/null; "
        "done")
    env = dict(os.environ, HOME=str(fx.home), NO_COLOR="1")
    shell_runs, enforce_runs, noop_runs = [], [], []
    try:
        for rep in range(3):
            log(f"sweep: rep {rep + 1}/3: shell loop (sets 128/1/128Mi)")
            shell_runs.append(timed_shell(loop))
            assert all_pids(ids, "128"), "the shell loop did not set every container"
            log(f"sweep: rep {rep + 1}/3: clw-fortress enforce (sets 64/0.5/64Mi)")
            r = timed_cmd(fx.cmd("enforce"), env)
            enforce_runs.append(r)
            assert r["rc"] == 0, r
            assert all_pids(ids, "64"), "enforce did not set every container"
            noop_runs.append(timed_cmd(fx.cmd("enforce"), env))
    finally:
        docker("rm", "-f", "-v", *names, check=False)
    res = {
        "n": N_SWEEP,
        "shell_loop": shell_runs,
        "enforce": [{k: v for k, v in r.items() if k != "stderr"} for r in enforce_runs],
        "enforce_converged": [{k: v for k, v in r.items() if k != "stderr"} for r in noop_runs],
        "shell_wall_s": stats([r["wall_s"] for r in shell_runs]),
        "enforce_wall_s": stats([r["wall_s"] for r in enforce_runs]),
        "enforce_converged_wall_s": stats([r["wall_s"] for r in noop_runs]),
        "loadavg": loadavg(),
    }
    save("sweep", res)
    return res


def all_pids(ids, want):
    return all(cg_file(i, "pids", "pids.max").read_text().strip() == want for i in ids)


# --- 3. time to heal ------------------------------------------------------------------------


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def wait(what, pred, timeout=120, every=0.02):
    end = time.time() + timeout
    while not pred():
        if time.time() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.time()


def started_at(name):
    out = docker("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", name)
    running, at = out.split()
    return running == "true", at


def bench_heal():
    log("heal: a managed sandbox and an HTTP target, daemon watching")
    fx = Fortress("heal")
    port = free_port()
    web = f"clwb-web-{RUN_ID}"
    url = f"http://127.0.0.1:{port}/index.html"
    script = (f"mkdir -p /tmp/www && echo ok > /tmp/www/index.html; "
              f"httpd -f -p 127.0.0.1:{port} -h /tmp/www & "
              "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done")
    foreign(web, "--network", "host", "--label", f"clwb.run={RUN_ID}",
            image_cmd=("sh", "-c", script))
    wait("the web target", lambda: http_ok(url))
    sbx = fx.sandbox(0)
    fx.write(sandboxes=1, extra=(
        "health:\n"
        f"  - name: sbx\n    exec: {{container: {sbx}, command: [\"true\"]}}\n    every: 1h\n"
        f"    failures: 5\n    restart: {{container: {sbx}}}\n"
        "    backoff: {initial: 1s, max: 2s}\n    quarantine: {restarts: 100, within: 1m}\n"
        f"  - name: web\n    http: {{url: \"{url}\", timeout: 1s}}\n    every: 5s\n"
        f"    failures: 1\n    restart: {{container: {web}}}\n"
        "    backoff: {initial: 1s, max: 2s}\n    quarantine: {restarts: 100, within: 1m}\n"))
    fx.run("apply")
    d = Daemon(fx)
    kill_s, http_s, poll_s = [], [], []
    try:
        time.sleep(3)
        for i in range(N_KILL):
            _, before = started_at(sbx)
            t = time.time()
            docker("kill", sbx)
            wait("the sandbox to run again",
                 lambda: (lambda r: r[0] and r[1] != before)(started_at(sbx)), every=0.01)
            kill_s.append(time.time() - t)
            log(f"heal: kill -> running {kill_s[-1]:.2f}s")
            time.sleep(3)  # beyond the 2 s backoff cap, so every sample starts from rest
        for i in range(N_HTTP):
            wait("the web target", lambda: http_ok(url))
            time.sleep(random.uniform(0, 5))  # a random phase against the daemon's tick
            docker("exec", web, "killall", "httpd")
            t = time.time()
            wait("the web target restarted", lambda: http_ok(url), every=0.05)
            http_s.append(time.time() - t)
            log(f"heal: http down -> up {http_s[-1]:.2f}s (daemon)")
            time.sleep(3)
    finally:
        d.stop()
    # The autoheal-style baseline: a 5-second shell poller, measured the same way.
    poller = subprocess.Popen(
        ["bash", "-c", f"while :; do curl -fsS -m 1 -o /dev/null {url} || "
                       f"docker restart -t 1 {web} >/dev/null; sleep 5; done"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for i in range(N_HTTP):
            wait("the web target", lambda: http_ok(url))
            time.sleep(random.uniform(0, 5))
            docker("exec", web, "killall", "httpd")
            t = time.time()
            wait("the web target restarted", lambda: http_ok(url), every=0.05)
            poll_s.append(time.time() - t)
            log(f"heal: http down -> up {poll_s[-1]:.2f}s (5 s poller)")
    finally:
        os.killpg(poller.pid, signal.SIGTERM)
        poller.wait()
    # The restart itself, measured for the analytic baselines.
    restart = []
    for _ in range(3):
        t = time.time()
        docker("restart", "-t", "1", web)
        wait("the web target", lambda: http_ok(url), every=0.02)
        restart.append(time.time() - t)
    res = {
        "kill_to_running_s": kill_s,
        "daemon_kill": stats(kill_s),
        "http_daemon_s": http_s,
        "daemon_http": stats(http_s),
        "http_poller5_s": poll_s,
        "poller5_http": stats(poll_s),
        "restart_to_ok_s": restart,
        "restart": stats(restart),
        "daemon_config": "http every 5s (daemon tick 10s), failures 1; sandbox: die event",
        "timer3m_analytic": {
            "model": "3-minute timer, restart at the 3rd consecutive failure: "
                     "U(0,180 s) + 2*180 s + restart",
            "min_s": 360, "p50_s": 450 + pct(restart, 50), "max_s": 540 + pct(restart, 50)},
        "loadavg": loadavg(),
    }
    save("heal", res)
    return res


# --- 4. verify and 6. footprint (one fortress of 20 sandboxes) ------------------------------


def bench_verify_footprint():
    log("verify/footprint: applying a fortress of 20 sandboxes")
    fx = Fortress("vf")
    port = free_port()
    web = f"clwb-vweb-{RUN_ID}"
    url = f"http://127.0.0.1:{port}/index.html"
    foreign(web, "--network", "host", "--label", f"clwb.run={RUN_ID}",
            image_cmd=("sh", "-c", f"mkdir -p /tmp/www && echo ok > /tmp/www/index.html; "
                                   f"exec httpd -f -p 127.0.0.1:{port} -h /tmp/www"))
    s0, s1 = fx.sandbox(0), fx.sandbox(1)
    health = (
        "health:\n"
        f"  - name: web\n    http: {{url: \"{url}\", timeout: 2s}}\n    every: 30s\n"
        f"    failures: 3\n    restart: {{container: {web}}}\n"
        f"  - name: e0\n    exec: {{container: {s0}, command: [\"true\"]}}\n    every: 30s\n"
        f"    failures: 3\n    restart: {{container: {s0}}}\n"
        f"  - name: e1\n    exec: {{container: {s1}, command: [\"true\"]}}\n    every: 30s\n"
        f"    failures: 3\n    restart: {{container: {s1}}}\n")
    fx.write(sandboxes=20, extra=health)
    t = time.perf_counter()
    fx.run("apply")
    apply_s = time.perf_counter() - t
    log(f"verify/footprint: apply of 20 took {apply_s:.1f}s")
    env = dict(os.environ, HOME=str(fx.home), NO_COLOR="1")

    # 4. verify: one sandbox (3 runs), ten sandboxes (2 runs), per-sandbox figures from -v.
    one, ten, per = [], [], []
    for _ in range(3):
        r = timed_cmd(fx.cmd("-v", "verify", "--sandbox", s0, "--format", "json"), env)
        one.append(r)
        per.extend(parse_verified(r["stderr"]))
    # Ten sandboxes: a manifest with the first ten only.
    fx.write(sandboxes=10, extra=health)
    for _ in range(2):
        r = timed_cmd(fx.cmd("-v", "verify", "--format", "json"), env)
        ten.append(r)
        per.extend(parse_verified(r["stderr"]))
    fx.write(sandboxes=20, extra=health)
    verify = {
        "one_sandbox": [{k: v for k, v in r.items() if k != "stderr"} for r in one],
        "ten_sandboxes": [{k: v for k, v in r.items() if k != "stderr"} for r in ten],
        "one_wall_s": stats([r["wall_s"] for r in one]),
        "ten_wall_s": stats([r["wall_s"] for r in ten]),
        "per_sandbox": per,
        "per_sandbox_elapsed_ms": stats([p["elapsed_ms"] for p in per]),
        "per_exec_ms": stats([p["elapsed_ms"] / max(1, p["execs"]) for p in per]),
        "rcs": [r["rc"] for r in one + ten],
        "loadavg": loadavg(),
    }
    save("verify", verify)

    # 6. footprint: the daemon idle with 20 sandboxes and 3 probes.
    log(f"footprint: daemon idle for {IDLE_SECONDS}s with 20 sandboxes and 3 probes")
    d = Daemon(fx)
    try:
        time.sleep(15)  # past the start-up sweep and the first probes
        pid = d.p.pid
        tck = os.sysconf("SC_CLK_TCK")

        def cpu_ticks():
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])

        def rss_kib():
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

        c0, t0, rss = cpu_ticks(), time.time(), []
        while time.time() - t0 < IDLE_SECONDS:
            rss.append(rss_kib())
            time.sleep(5)
        c1, t1 = cpu_ticks(), time.time()
        rss.append(rss_kib())
    finally:
        d.stop()
    foot = {
        "idle_s": t1 - t0,
        "cpu_s": (c1 - c0) / tck,
        "cpu_percent_of_one_core": 100 * (c1 - c0) / tck / (t1 - t0),
        "rss_kib": rss,
        "rss": stats(rss),
        "sandboxes": 20,
        "probes": 3,
        "apply_20_s": apply_s,
        "loadavg": loadavg(),
    }
    save("footprint", foot)
    return verify, foot


def parse_verified(stderr):
    out = []
    for line in stderr.splitlines():
        if "verified" not in line or "elapsed_ms" not in line:
            continue
        kv = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        try:
            out.append({"sandbox": kv.get("sandbox"), "execs": int(kv["execs"]),
                        "scanned_bytes": int(kv["scanned_bytes"]),
                        "elapsed_ms": int(kv["elapsed_ms"])})
        except (KeyError, ValueError):
            pass
    return out


# --- 5. backup ------------------------------------------------------------------------------


def bench_backup():
    log("backup: cargo bench --bench backup_snapshot (see its output below)")
    env = dict(os.environ, CLW_BENCH_OUT=str(OUT / "backup.json"), CLW_BENCH_MODES="WAL")
    env.setdefault("CLW_BENCH_DB_MIB", "1024")
    subprocess.run(["cargo", "bench", "--bench", "backup_snapshot"], check=True, env=env,
                   cwd=ROOT)
    return json.loads((OUT / "backup.json").read_text())


# --- 4b. content scan -----------------------------------------------------------------------


def bench_scan():
    log("scan: cargo bench --bench content_scan (see its output below)")
    env = dict(os.environ, CLW_BENCH_OUT=str(OUT / "scan.json"))
    subprocess.run(["cargo", "bench", "--bench", "content_scan"], check=True, env=env, cwd=ROOT)
    r = json.loads((OUT / "scan.json").read_text())
    r["loadavg"] = loadavg()
    return r


# --- main -----------------------------------------------------------------------------------


def machine():
    mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(int(mem) / (1 << 20), 1),
        "kernel": os.uname().release,
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "engine": docker("version", "--format",
                         "dockerd {{.Server.Version}} (API {{.Server.APIVersion}}), "
                         "CLI {{.Client.Version}}"),
        "cgroup": docker("info", "--format", "{{.CgroupVersion}} ({{.CgroupDriver}})"),
        "sqlite3": sh(["sqlite3", "--version"], check=False).split(" ")[0],
        "clw_fortress": sh([str(BIN), "--version"]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "loadavg_start": loadavg(),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {"machine": machine()}
    previous = OUT / "summary.json"
    if ONLY and previous.exists():
        # A subset run updates the figures it measures and keeps the others (with the
        # machine line of this run, whose load average is what the new figures saw).
        kept = json.loads(previous.read_text())
        kept.pop("machine", None)
        summary.update({k: v for k, v in kept.items() if k not in ONLY})
    save("summary", summary)

    def want(k):
        return not ONLY or k in ONLY

    try:
        for key, fn in [("exposure", bench_exposure), ("sweep", bench_sweep),
                        ("heal", bench_heal), ("verify", bench_verify_footprint),
                        ("scan", bench_scan), ("backup", bench_backup)]:
            if not want(key):
                continue
            try:
                r = fn()
                if key == "verify":
                    summary["verify"], summary["footprint"] = r
                else:
                    summary[key] = r
            except Exception as e:  # one failed figure must not lose the others
                log(f"{key}: FAILED: {e}")
                summary[key] = {"error": str(e)[:2000]}
            finally:
                cleanup()
            save("summary", summary)
    finally:
        cleanup()
        for d in tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
    summary["machine"]["loadavg_end"] = loadavg()
    save("summary", summary)
    log("done; raw results in target/bench/")


if __name__ == "__main__":
    main()
