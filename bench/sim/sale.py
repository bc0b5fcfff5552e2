#!/usr/bin/env python3
"""Flash-sale simulation helpers for bench/simulate-sale.sh.

  sale.py schedule USERS OUT.json [--clickers-pct 1] [--clicks 10] [--burst-share 0.6]
                   [--tail-s 20] [--seed 1]
      Who clicks when, relative to the sale's opening (ms): a [t_ms, user_index] list sorted by
      time. (100 - clickers-pct)% of users click once: burst-share of them in the first second,
      the rest with an exponential tail (mean tail-s/4, cut at tail-s). clickers-pct% of users
      click `clicks` times: the first click in [-0.5 s, +0.5 s] (eager users, some before the
      start), then every 100-400 ms.
  sale.py sample --redis HOST:PORT --activity ID --gateway URL --start-ms T --out CSV
                 --done FILE [--interval 0.2] [--max-s 600]
      Every --interval seconds: the gateway's POST /api/v1/seckill replies by status (from
      /metrics), SECKILL.STATUS, and the stream's length, lag and pending for the worker group.
      Stops once FILE exists (the load is over) and the worker's backlog is 0, or after max-s.
  sale.py offered SCHEDULE.json CSV
      Adds the clicks the schedule offered per second (offered_per_s, offered_total) to the CSV,
      so the plot shows demand next to what the stack served.
  sale.py plot CSV PNG [--title TEXT]
      The timeline: requests/s by reply, stock remaining, cumulative successes and orders
      written, worker backlog.
"""
import argparse
import csv
import json
import os
import random
import socket
import sys
import time
import urllib.request


def schedule(a):
    rng = random.Random(a.seed)
    clickers = set(rng.sample(range(a.users), a.users * a.clickers_pct // 100))
    out = []
    mean_tail = a.tail_s * 1000 / 4
    for u in range(a.users):
        if u in clickers:
            t = rng.uniform(-500, 500)
            for _ in range(a.clicks):
                out.append((int(t), u))
                t += rng.uniform(100, 400)
        elif rng.random() < a.burst_share:
            out.append((int(rng.uniform(0, 1000)), u))
        else:
            t = 1000 + rng.expovariate(1 / mean_tail)
            while t > a.tail_s * 1000:
                t = 1000 + rng.expovariate(1 / mean_tail)
            out.append((int(t), u))
    out.sort()
    json.dump(out, open(a.out, "w"), separators=(",", ":"))
    first_s = sum(1 for t, _ in out if t < 1000)
    print(f"{len(out)} clicks by {a.users} users ({len(clickers)} clicking {a.clicks} times),"
          f" {first_s} in the first second (from {out[0][0] / 1000:+.2f} s),"
          f" last at {out[-1][0] / 1000:.1f} s", file=sys.stderr)


class Resp:
    """A minimal RESP2 client: enough for SECKILL.STATUS, XLEN and XINFO GROUPS."""

    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        buf = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            buf += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(buf)
        return self.read()

    def read(self):
        line = self.f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(f"bad reply {line!r}")


def pairs(flat):
    return dict(zip(flat[0::2], flat[1::2])) if isinstance(flat, list) else {}


def scrape(url):
    """POST /api/v1/seckill replies by status from the gateway's /metrics."""
    by_status = {}
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("seckill_gateway_http_requests_total{") and 'route="seckill"' in line:
                    labels, value = line.rsplit(" ", 1)
                    status = labels.split('status="')[1].split('"')[0]
                    by_status[status] = by_status.get(status, 0) + int(float(value))
    except OSError:
        return None
    return by_status


FIELDS = ["t_s", "requests", "ok", "r409", "r403", "r429", "r5xx", "other", "req_per_s",
          "ok_per_s", "remaining", "reserved", "stream_len", "lag", "pending", "orders_written"]


def sample(a):
    host, port = a.redis.rsplit(":", 1)
    r = Resp(host, int(port))
    key = f"seckill:{{{a.activity}}}:stream"
    out = open(a.out, "w", newline="")
    w = csv.DictWriter(out, FIELDS)
    w.writeheader()
    prev = None
    began = time.time()
    done_at = None
    while time.time() - began < a.max_s:
        now = time.time()
        codes = scrape(a.gateway.rstrip("/") + "/metrics") or {}
        st = pairs(r.cmd("SECKILL.STATUS", a.activity))
        xlen = r.cmd("XLEN", key)
        groups = r.cmd("XINFO", "GROUPS", key)
        lag, pending = xlen, 0
        if isinstance(groups, list):
            for g in groups:
                d = pairs(g)
                if d.get("name") == a.group:
                    pending = d.get("pending", 0)
                    lag = d.get("lag") if d.get("lag") is not None else xlen - d.get("entries-read", 0)
        total = sum(codes.values())
        row = {
            "t_s": round(now - a.start_ms / 1000, 3),
            "requests": total,
            "ok": codes.get("200", 0),
            "r409": codes.get("409", 0),
            "r403": codes.get("403", 0),
            "r429": codes.get("429", 0),
            "r5xx": sum(v for k, v in codes.items() if k.startswith("5")),
            "remaining": st.get("remaining", ""),
            "reserved": st.get("reserved", ""),
            "stream_len": xlen,
            "lag": lag,
            "pending": pending,
            "orders_written": xlen - lag - pending,
        }
        row["other"] = total - row["ok"] - row["r409"] - row["r403"] - row["r429"] - row["r5xx"]
        if prev is None:
            row["req_per_s"] = row["ok_per_s"] = 0
        else:
            dt = now - prev[0]
            row["req_per_s"] = round((total - prev[1]["requests"]) / dt, 1)
            row["ok_per_s"] = round((row["ok"] - prev[1]["ok"]) / dt, 1)
        w.writerow(row)
        out.flush()
        prev = (now, row)
        if os.path.exists(a.done) and lag == 0 and pending == 0:
            done_at = done_at or now
            if now - done_at > 1.0:  # a second of flat line after the end
                break
        time.sleep(max(0.0, a.interval - (time.time() - now)))
    out.close()


def offered(a):
    """Adds offered_per_s (clicks the schedule sends per second, over each sample's interval)
    and offered_total to the timeline CSV."""
    sched = [t / 1000 for t, _ in json.load(open(a.schedule))]
    rows = list(csv.DictReader(open(a.csv)))
    j, prev_t = 0, None
    for r in rows:
        t = float(r["t_s"])
        n = 0
        while j < len(sched) and sched[j] <= t:
            j, n = j + 1, n + 1
        r["offered_total"] = j
        r["offered_per_s"] = round(n / (t - prev_t), 1) if prev_t is not None and t > prev_t else 0
        prev_t = t
    w = csv.DictWriter(open(a.csv, "w", newline=""), list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)


def plot(a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(a.csv)))
    f = lambda k: [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows]
    t = f("t_s")
    # Left: the whole sale from 2 s before the opening; right: a zoom on the first seconds.
    fig, axes = plt.subplots(4, 2, figsize=(15, 11), sharex="col",
                             gridspec_kw={"width_ratios": [2, 1]})

    def rate(k):
        v = f(k)
        return [0] + [max(0.0, (v[i] - v[i - 1]) / (t[i] - t[i - 1])) for i in range(1, len(v))]
    series = [("ok", "200 reserved", "tab:green"), ("r409", "409 sold out / limit", "tab:orange"),
              ("r403", "403 not started", "tab:gray"), ("r429", "429 rate limited", "tab:purple"),
              ("r5xx", "5xx", "tab:red"), ("other", "other", "black")]
    rates = [rate(k) for k, _, _ in series]
    backlog = [l + p for l, p in zip(f("lag"), f("pending"))]
    has_offered = "offered_per_s" in rows[0]
    for c, (lo, hi) in enumerate([(-2, max(t) + 0.5), (-1, 3)]):
        ax = axes[:, c]
        ax[0].stackplot(t, *rates, labels=[l for _, l, _ in series], colors=[c_ for _, _, c_ in series])
        if has_offered:
            ax[0].plot(t, f("offered_per_s"), color="k", linewidth=0.8, linestyle="--",
                       label="clicks offered (schedule)")
        ax[1].plot(t, f("remaining"), color="tab:blue")
        ax[1].set_ylim(bottom=0)
        ax[2].plot(t, f("ok"), label="reservations (200)", color="tab:green")
        ax[2].plot(t, f("orders_written"), label="orders written by the worker (acked)",
                   color="tab:brown", linestyle="--")
        ax[3].plot(t, backlog, color="tab:red", label="lag + pending")
        ax[3].set_xlabel("seconds since the sale opened")
        for x in ax:
            x.axvline(0, color="k", linewidth=0.6, linestyle=":")
            x.grid(alpha=0.3)
            x.set_xlim(lo, hi)
    axes[0, 0].set_ylabel("requests/s (served)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(a.title, loc="left")
    axes[0, 1].set_title("zoom: the opening", loc="left")
    axes[0, 0].set_yscale("symlog", linthresh=1000) if has_offered else None
    axes[0, 1].set_yscale("symlog", linthresh=1000) if has_offered else None
    axes[1, 0].set_ylabel("stock remaining\n(SECKILL.STATUS)")
    axes[2, 0].set_ylabel("cumulative")
    axes[2, 0].legend(loc="lower right", fontsize=8)
    axes[3, 0].set_ylabel("worker backlog\n(XINFO GROUPS)")
    axes[3, 0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    tmp = a.png + ".tmp"
    fig.savefig(tmp, dpi=110, format="png")
    os.replace(tmp, a.png)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("schedule")
    s.add_argument("users", type=int)
    s.add_argument("out")
    s.add_argument("--clickers-pct", type=int, default=1)
    s.add_argument("--clicks", type=int, default=10)
    s.add_argument("--burst-share", type=float, default=0.6)
    s.add_argument("--tail-s", type=float, default=20)
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("sample")
    s.add_argument("--redis", required=True)
    s.add_argument("--activity", required=True)
    s.add_argument("--gateway", required=True)
    s.add_argument("--start-ms", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--done", required=True)
    s.add_argument("--group", default="seckill-orders")
    s.add_argument("--interval", type=float, default=0.2)
    s.add_argument("--max-s", type=float, default=600)
    s = sub.add_parser("offered")
    s.add_argument("schedule")
    s.add_argument("csv")
    s = sub.add_parser("plot")
    s.add_argument("csv")
    s.add_argument("png")
    s.add_argument("--title", default="flash sale")
    a = p.parse_args()
    {"schedule": schedule, "sample": sample, "offered": offered, "plot": plot}[a.cmd](a)


if __name__ == "__main__":
    main()
