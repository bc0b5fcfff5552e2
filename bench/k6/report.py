#!/usr/bin/env python3
"""Helpers of bench/load-test.sh (standard library only).

  report.py summary K6_SUMMARY.json RESULT.json [EXPECTED]
      prints QPS, P50/P95/P99 and replies by code from k6's end-of-test summary, and writes
      the same figures as JSON (RESULT.json) for docs/bench-results. EXPECTED: the refusals
      that are not errors, comma-separated [409_SOLD_OUT,409_LIMIT_EXCEEDED].
  report.py verify BASE_URL ACTIVITY TOKENS WINNERS_FILE [SAMPLE]
      checks through the HTTP API: the activity shows 0 remaining; every winner (user ids,
      one per line, from MySQL) sees exactly one order of the activity in GET /api/v1/orders
      and "success" in GET /api/v1/seckill/result; SAMPLE users without an order see none.
      Exit status 1 on any failure.
"""
import base64
import concurrent.futures
import json
import random
import sys
import urllib.error
import urllib.request


def summary(path, out_path, expected="409_SOLD_OUT,409_LIMIT_EXCEEDED"):
    expected = set(expected.split(","))
    data = json.load(open(path))
    m = data["metrics"]
    dur = m["http_req_duration"]["values"]
    reqs = m["http_reqs"]["values"]
    codes = {}
    for name, metric in m.items():
        if name.startswith("seckill_replies{code:"):
            code = name[len("seckill_replies{code:"):-1]
            n = int(metric["values"].get("count", 0))
            if n:
                codes[code] = n
    total = sum(codes.values()) or 1
    dropped = int(m.get("dropped_iterations", {}).get("values", {}).get("count", 0))
    state = data.get("state", {})
    seconds = state.get("testRunDurationMs", 0) / 1000
    result = {
        "requests": int(reqs["count"]),
        "qps": round(reqs["rate"], 1),
        "duration_s": round(seconds, 1),
        "p50_ms": round(dur["p(50)"], 3),
        "p90_ms": round(dur["p(90)"], 3),
        "p95_ms": round(dur["p(95)"], 3),
        "p99_ms": round(dur["p(99)"], 3),
        "max_ms": round(dur["max"], 3),
        "codes": codes,
        "dropped_iterations": dropped,
    }
    print(f"requests      {result['requests']} in {seconds:.1f} s"
          f" ({dropped} iterations dropped by k6: no free VU)")
    print(f"QPS           {result['qps']:.0f} requests/s (mean over the run, ramp included)")
    print(f"latency       p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms"
          f"  p99 {result['p99_ms']:.2f} ms  max {result['max_ms']:.1f} ms")
    print("replies by code (status_MACHINE_CODE):")
    for code, n in sorted(codes.items(), key=lambda kv: -kv[1]):
        kind = "ok" if code == "200" else "expected refusal" if code in expected else "ERROR"
        print(f"  {code:28} {n:9d}  {100 * n / total:6.2f}%  {kind}")
    errors = sum(n for c, n in codes.items() if c != "200" and c not in expected)
    result["error_rate"] = round(errors / total, 6)
    result["refusal_rate"] = round(sum(n for c, n in codes.items() if c in expected) / total, 6)
    print(f"error rate    {100 * result['error_rate']:.3f}% (replies other than 200 and the"
          f" expected refusals {', '.join(sorted(expected))})")
    late = m.get("click_late_ms", {}).get("values")
    if late:
        # sale.js: how long clicks waited for a free VU (users queued behind the backlog).
        result["click_wait_ms"] = {k: round(late[k], 1) for k in ("p(50)", "p(99)", "max")}
        print(f"click wait    p50 {late['p(50)']:.0f} ms  p99 {late['p(99)']:.0f} ms  max"
              f" {late['max']:.0f} ms (clicks sent after their scheduled time: no free VU)")
    json.dump(result, open(out_path, "w"), indent=1)


def jwt_sub(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["sub"]


def get(base, path, token):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def verify(base, activity, tokens_path, winners_path, sample=200):
    tokens = {jwt_sub(t): t for t in open(tokens_path).read().split()}
    winners = [w.strip() for w in open(winners_path) if w.strip()]
    failures = []

    status, body = get(base, f"/api/v1/activities/{activity}", "")
    data = body.get("data") or {}
    if status != 200 or data.get("remaining") != 0:
        failures.append(f"GET /api/v1/activities/{activity}: {status} remaining"
                        f" {data.get('remaining')} state {data.get('state')} (want remaining 0)")

    def check_winner(user):
        token = tokens.get(user)
        if token is None:
            return f"winner {user} is not one of the seeded users"
        st, body = get(base, "/api/v1/orders", token)
        mine = [o for o in (body.get("data") or []) if str(o.get("activity_id")) == activity]
        if st != 200 or len(mine) != 1:
            return f"user {user}: GET /api/v1/orders {st}, {len(mine)} orders of the activity"
        st, body = get(base, f"/api/v1/seckill/result?activity_id={activity}", token)
        if st != 200 or (body.get("data") or {}).get("status") != "success":
            return f"user {user}: result {st} {body.get('data')}"
        return None

    def check_loser(user):
        st, body = get(base, "/api/v1/orders", tokens[user])
        mine = [o for o in (body.get("data") or []) if str(o.get("activity_id")) == activity]
        if st != 200 or mine:
            return f"user {user} without a reservation: GET /api/v1/orders {st}, {len(mine)} orders"
        return None

    losers = random.sample(sorted(set(tokens) - set(winners)),
                           min(sample, len(set(tokens) - set(winners))))
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        failures += [f for f in pool.map(check_winner, winners) if f]
        failures += [f for f in pool.map(check_loser, losers) if f]
    print(f"API: activity remaining {data.get('remaining')} ({data.get('state')});"
          f" {len(winners)} winners each see exactly one order and 'success';"
          f" {len(losers)} sampled other users see no order" if not failures else
          f"API: {len(failures)} failure(s)")
    for f in failures[:20]:
        print("  -", f)
    return 1 if failures else 0


def cpu(before, after, k6_time, wall_ns):
    """CPU seconds each process used during the run (stack: /proc deltas; k6: /usr/bin/time)."""
    import os
    read = lambda p: dict(l.split() for l in open(p)) if os.path.exists(p) else {}
    b, a = read(before), read(after)
    use = {k: float(a[k]) - float(b.get(k, 0)) for k in a}
    if os.path.exists(k6_time):
        try:
            use["k6"] = sum(float(x) for x in open(k6_time).read().split()[-2:])
        except ValueError:
            pass
    wall = int(wall_ns) / 1e9
    if use:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(use.items(), key=lambda kv: -kv[1]))
        print(f"{parts} (of {wall * os.cpu_count():.0f} core-seconds in {wall:.0f} s)")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "cpu" and len(sys.argv) == 6:
        sys.exit(cpu(*sys.argv[2:]))
    if cmd == "summary" and len(sys.argv) in (4, 5):
        summary(*sys.argv[2:])
    elif cmd == "verify" and len(sys.argv) in (6, 7):
        sys.exit(verify(*sys.argv[2:6], *(int(x) for x in sys.argv[6:])))
    else:
        sys.exit(__doc__)
