#!/usr/bin/env python3
"""Results of `make bench` (bench/run-all.sh): collect, tabulate, plot.

  plot.py collect RAW_DIR OUT.json
      Reads the outputs the benchmarks printed (RAW_DIR/module.md from bench/module.sh,
      gateway.md from bench/gateway.sh, stack.md from bench/stack.sh, worker.md from the
      worker's drain bench; each a markdown table) and RAW_DIR/meta.json (machine, commands),
      and writes one JSON document: groups of rows, each row named with its configuration
      (shipped redis.conf or no AOF, access log on or off) and next to its baseline, the
      issue's targets checked, and the cross-row ratios (stack / trivial handler, stack /
      gateway alone, durable / no AOF, access log shipped / off, RESERVE / XADD, RESERVE / Lua,
      worker / plain INSERT). A benchmark that did not run is a group with status "not
      available yet" (or "failed").
  plot.py table RESULT.json
      Prints the summary table and the ratios (markdown).
  plot.py plot RESULT.json OUT.png
      Throughput and p50/p95/p99 per row, each next to its baseline (matplotlib, Agg).

Tables are read by their headers (the column whose header names requests/s, p50, p95, p99...),
so the benchmark scripts stay free to add columns.
"""
import json
import os
import re
import sys

# ---------------------------------------------------------------------------- parsing


def md_tables(text):
    """Every markdown table in text, as a list of {header: cell} rows."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-|: ]+\|$", lines[i + 1].strip()):
            head = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(head, cells)))
                i += 1
            tables.append((head, rows))
        else:
            i += 1
    return tables


UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(cell, default_unit="ms"):
    """'1.23ms', '850.00us', '2.1s', '4.215' (in default_unit) -> milliseconds."""
    if cell is None:
        return None
    m = re.match(r"^\s*([0-9.]+)\s*(us|µs|ms|s|m)?\b", cell)
    if not m:
        return None
    return float(m.group(1)) * UNITS[m.group(2) or default_unit]


def number(cell):
    if cell is None:
        return None
    m = re.match(r"^\s*([0-9.]+)\s*([kKmM]?)", cell.replace(",", ""))
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)]


def col(head, *words):
    """The first header containing every word (case-insensitive)."""
    for h in head:
        if all(w.lower() in h.lower() for w in words):
            return h
    return None


def row_of(head, r, name, role, unit):
    tput = col(head, "requests/s") or col(head, "orders/s") or col(head, "/s")
    out = {"name": name, "role": role, "unit": unit,
           "throughput": number(r.get(tput)) if tput else None}
    for p in ("p50", "p90", "p95", "p99"):
        h = col(head, p)
        if h:
            default = "ms"
            v = r.get(h, "")
            # wrk reports p90 where the gateway table has its p95 column: keep it honest.
            if p == "p95" and "(p90)" in v:
                out["p90_ms"] = ms(v)
                continue
            out[f"{p}_ms"] = ms(v, default)
    return out


def read(path):
    try:
        return open(path).read()
    except OSError:
        return None


def status_of(raw, name):
    st = read(os.path.join(raw, name + ".status"))
    return (st or "not available yet").strip()


def module_role(name):
    if name.startswith("SECKILL"):
        return "subject"
    if name.startswith("XADD"):
        return "baseline"
    if name.startswith("Lua"):
        return "comparison"
    return "reference"


def module_groups(raw):
    text = read(os.path.join(raw, "module.md"))
    st = status_of(raw, "module")
    if st != "ok" or not text:
        return [{"name": "module", "status": st, "rows": []},
                {"name": "Redis memory per buyer", "status": st, "rows": []}]
    groups = []
    for head, rows in md_tables(text):
        if col(head, "pipeline") and col(head, "requests/s") and col(head, "p50"):
            config_col = col(head, "config")
            by_key = {}
            for r in rows:
                key = (r.get(config_col, "") if config_col else "", r[col(head, "pipeline")])
                by_key.setdefault(key, []).append(r)
            for (config, pipe), rs in by_key.items():
                g = {"name": f"module, {config + ', ' if config else ''}pipeline {pipe}", "status": "ok",
                     "unit": "requests/s", "rows": [], "command": "bench/module.sh",
                     "config": config, "pipeline": int(pipe)}
                for r in rs:
                    name = r[head[0]]
                    row = row_of(head, r, name, module_role(name), "requests/s")
                    row["config"] = config
                    cpu = col(head, "cpu", "request")
                    if cpu:
                        row["server_cpu_us_per_request"] = number(r.get(cpu))
                    g["rows"].append(row)
                groups.append(g)
        elif col(head, "bytes per buyer"):
            g = {"name": "Redis memory per buyer", "status": "ok", "unit": "bytes", "rows": [],
                 "command": "bench/module.sh (1,000,000 reservations, shipped redis.conf)"}
            for r in rows:
                name = r[head[0]]
                g["rows"].append({"name": name, "unit": "bytes",
                                  "role": "subject" if "buyer set" in name or "buyers hash" in name else "reference",
                                  "bytes": number(r[col(head, "bytes per buyer")])})
            groups.append(g)
    return groups


# The gateway's configurations (bench/gateway.sh labels), the headline one first.
GATEWAY_CONFIGS = {"shipped": "shipped", "no AOF": "noaof", "access log off": "nolog",
                   "no AOF + access log off": "noaof-nolog",
                   "admission on (difficulty 0)": "admission"}


def gateway_config_key(config):
    if config.startswith("shipped"):
        return "shipped"
    return GATEWAY_CONFIGS.get(config)


def gateway_group(raw):
    text = read(os.path.join(raw, "gateway.md"))
    st = status_of(raw, "gateway")
    g = {"name": "gateway", "status": st, "unit": "requests/s", "rows": [],
         "command": "bench/gateway.sh"}
    if st != "ok" or not text:
        return g
    for head, rows in md_tables(text):
        if not col(head, "requests/s"):
            continue
        config_col = col(head, "config")
        for r in rows:
            target = r[head[0]]
            config = r.get(config_col, "") if config_col else ""
            if "trivial" in target.lower():
                name, role, key = target, "baseline", "trivial"
            elif target.startswith("one RESERVE"):
                # The floor: the durable round trip with no gateway work around it (and,
                # when asked for, the same without AOF: a labelled variant, not the floor).
                name = f"{target} ({config})"
                noaof = config.startswith("no AOF")
                role, key = ("variant", "floor-noaof") if noaof else ("reference", "floor")
            else:
                key = gateway_config_key(config) or "shipped"
                name = f"{target}, {config}" if config else target
                role = "subject" if key == "shipped" else "variant"
            row = row_of(head, r, name, role, "requests/s")
            row["config"] = config
            row["key"] = key
            row["label"] = {"trivial": name, "floor": "floor: one RESERVE, nothing else",
                            "floor-noaof": "floor, no AOF",
                            "shipped": "POST, shipped"}.get(key, f"POST, {config}")
            non = col(head, "non-2xx")
            if non:
                row["non_2xx"] = number(r.get(non))
            cpu = col(head, "cpu", "request")
            if cpu:
                row["server_cpu_us_per_request"] = number(r.get(cpu))
            machine = col(head, "machine", "request")
            if machine:
                row["machine_cpu_us_per_request"] = number(r.get(machine))
            g["rows"].append(row)
    return g


def cluster_group(raw):
    """bench/cluster.sh: the gateway on one redis-server (baseline) and on a 3-shard cluster
    with min_replicas 0 (subject) and 1 (variant)."""
    text = read(os.path.join(raw, "cluster.md"))
    st = status_of(raw, "cluster")
    g = {"name": "gateway on Redis Cluster", "status": st, "unit": "requests/s", "rows": [],
         "command": "bench/cluster.sh"}
    if st != "ok" or not text:
        return g
    for head, rows in md_tables(text):
        if not col(head, "requests/s"):
            continue
        config_col = col(head, "config")
        for r in rows:
            config = r.get(config_col, "") if config_col else ""
            if config.startswith("standalone"):
                role, key = "baseline", "standalone"
            elif "min_replicas 0" in config:
                role, key = "subject", "cluster0"
            else:
                role, key = "variant", "cluster1"
            row = row_of(head, r, f"POST /api/v1/seckill, {config}", role, "requests/s")
            row["config"], row["key"], row["label"] = config, key, config
            pending = col(head, "pending")
            if pending:
                row["pending_202"] = number(r.get(pending))
            cpu = col(head, "cpu", "request")
            if cpu:
                row["server_cpu_us_per_request"] = number(r.get(cpu))
            machine = col(head, "machine", "request")
            if machine:
                row["machine_cpu_us_per_request"] = number(r.get(machine))
            g["rows"].append(row)
    return g


def stack_group(raw):
    text = read(os.path.join(raw, "stack.md"))
    st = status_of(raw, "stack")
    g = {"name": "stack (make run)", "status": st, "unit": "requests/s", "rows": [],
         "command": "bench/stack.sh"}
    if st != "ok" or not text:
        return g
    # The labelled variant (bench/stack.sh run with a variant setting) comes after the
    # shipped row, from its own file, when it ran.
    variant = read(os.path.join(raw, "stack-nocap.md")) if status_of(raw, "stack-nocap") == "ok" else None
    for head, rows in md_tables(text + "\n" + (variant or "")):
        if not col(head, "requests/s"):
            continue
        config_col = col(head, "config")
        for r in rows:
            config = r.get(config_col, "") if config_col else ""
            role = "variant" if config.startswith("variant") else "subject"
            name = r[head[0]] + (f" ({config.split(':', 1)[1].strip()})" if role == "variant" else "")
            row = row_of(head, r, name, role, "requests/s")
            row["config"] = config
            for key, words in (("non_2xx", ("non-2xx",)), ("orders", ("orders",)),
                               ("drained_after_s", ("drained",))):
                h = col(head, *words)
                if h:
                    row[key] = number(r.get(h))
            g["rows"].append(row)
    # The CPU line under the table: where the machine's time went during the load.
    cpu = re.search(r"^CPU seconds during.*$", text, re.M)
    if cpu:
        g["cpu"] = cpu.group(0)
        per = re.search(r"([0-9.]+) µs per request", cpu.group(0))
        s = pick(g, "subject")
        if per and s:
            s["machine_cpu_us_per_request"] = float(per.group(1))
    return g


def worker_group(raw):
    text = read(os.path.join(raw, "worker.md"))
    st = status_of(raw, "worker")
    g = {"name": "worker drain", "status": st, "unit": "orders/s", "rows": [],
         "command": "cargo bench -p seckill-worker --bench drain"}
    if st != "ok" or not text:
        return g
    for head, rows in md_tables(text):
        if not col(head, "orders/s"):
            continue
        for r in rows:
            name = r[head[0]]
            role = "baseline" if ("plain" in name.lower() or "limit" in name.lower()) else "subject"
            row = row_of(head, r, name, role, "orders/s")
            for k in ("rows", "batch", "consumers", "seconds"):
                h = col(head, k)
                if h:
                    row[k] = number(r.get(h))
            g["rows"].append(row)
    return g


def pick(g, role):
    return next((r for r in g["rows"] if r["role"] == role), None)


def check_targets(groups):
    for g in groups:
        s = pick(g, "subject")
        if g["status"] != "ok" or s is None:
            continue
        b = pick(g, "baseline")
        if g["name"].startswith("module"):
            lua = next((r for r in g["rows"] if r["name"].startswith("Lua, feature")), None)
            if lua and lua.get("throughput"):
                ratio = s["throughput"] / lua["throughput"]
                g["target"] = {"text": "RESERVE >= 3x the feature-equivalent Lua script",
                               "short": "RESERVE >= 3x Lua", "ratio": round(ratio, 2), "met": ratio >= 3}
                cs, cl = s.get("server_cpu_us_per_request"), lua.get("server_cpu_us_per_request")
                if cs and cl:
                    g["target"]["server_cpu_ratio"] = round(cl / cs, 2)
        elif g["name"] == "gateway" and b and b.get("throughput"):
            ratio = s["throughput"] / b["throughput"]
            g["target"] = {"text": ">= 0.4x the trivial handler and >= 50,000 requests/s (shipped configuration)",
                           "short": ">= 0.4x trivial and >= 50k/s",
                           "ratio": round(ratio, 2),
                           "met": ratio >= 0.4 and s["throughput"] >= 50000}
        elif g["name"] == "gateway on Redis Cluster" and b and b.get("throughput"):
            ratio = s["throughput"] / b["throughput"]
            g["target"] = {"text": "3-shard cluster >= 0.8x standalone (and min_replicas 1 >= 0.8x 0)",
                           "short": "cluster >= 0.8x standalone", "ratio": round(ratio, 2),
                           "met": ratio >= 0.8}
            durable = next((r for r in g["rows"] if r.get("key") == "cluster1"), None)
            if durable and durable.get("throughput"):
                d = durable["throughput"] / s["throughput"]
                g["target"]["durability_ratio"] = round(d, 2)
                g["target"]["met"] = g["target"]["met"] and d >= 0.8
        elif g["name"] == "worker drain":
            g["target"] = {"text": ">= 50,000 orders/s", "short": ">= 50k orders/s", "met": (s["throughput"] or 0) >= 50000}
            if b and b.get("throughput"):
                g["target"]["ratio"] = round(s["throughput"] / b["throughput"], 2)
        elif g["name"].startswith("Redis memory"):
            g["target"] = {"text": "<= 100 bytes per buyer (excluding stream entries)",
                           "short": "buyer set <= 100 B/buyer",
                           "met": s["bytes"] <= 100}


def ratios(groups):
    """The cross-row ratios `make bench` reports: each names its two rows."""
    by_name = {g["name"]: g for g in groups if g["status"] == "ok"}
    out = []

    def add(name, num, den, what):
        if num and den and num.get("throughput") and den.get("throughput"):
            out.append({"name": name, "value": round(num["throughput"] / den["throughput"], 2),
                        "numerator": num["name"], "denominator": den["name"], "measures": what})

    gw = by_name.get("gateway", {"rows": []})
    gwk = {r.get("key"): r for r in gw["rows"]}
    stack = pick(by_name["stack (make run)"], "subject") if "stack (make run)" in by_name else None
    add("stack / trivial handler", stack, gwk.get("trivial"),
        "the whole stack against the cheapest warp reply")
    add("stack / gateway alone (shipped)", stack, gwk.get("shipped"),
        "what MariaDB, the worker, etcd and honcho next to the gateway cost")
    unpaced = pick(by_name["stack (make run)"], "variant") if "stack (make run)" in by_name else None
    add("stack, worker unpaced / gateway alone (shipped)", unpaced, gwk.get("shipped"),
        "the same, with the drain keeping pace with the sale (worker.max_orders_per_sec 0)")
    shipped = gwk.get("shipped")
    if stack and shipped and stack.get("machine_cpu_us_per_request") and shipped.get("machine_cpu_us_per_request"):
        out.append({"name": "machine CPU per request, gateway alone / stack",
                    "value": round(shipped["machine_cpu_us_per_request"] / stack["machine_cpu_us_per_request"], 2),
                    "numerator": shipped["name"], "denominator": stack["name"],
                    "measures": "the stack / gateway ratio the machine's CPU allows: all processes' CPU per "
                                "request (wrk included), the stack's with the drain's share of each order"})
    add("floor / trivial handler", gwk.get("floor"), gwk.get("trivial"),
        "the bound one durable RESERVE per request sets: a handler that does only that (no token, "
        "parse, limits, metrics or log) against the cheapest warp reply")
    add("gateway alone (shipped) / floor", gwk.get("shipped"), gwk.get("floor"),
        "what the gateway's own work (token, parse, limits, metrics, access log) costs beyond the "
        "durable round trip")
    add("stack / floor", stack, gwk.get("floor"),
        "the whole stack against the handler that only makes the durable round trip")
    add("gateway durable / no AOF (access log on)", gwk.get("shipped"), gwk.get("noaof"),
        "appendfsync always, seen through the gateway")
    add("gateway durable / no AOF (access log off)", gwk.get("nolog"), gwk.get("noaof-nolog"),
        "appendfsync always, seen through the gateway")
    add("gateway access log shipped / off (AOF)", gwk.get("shipped"), gwk.get("nolog"),
        "the shipped access log (every error and unexpected refusal, 1 in 100 other requests, a summary line every 10 s), written to a file")
    add("gateway access log shipped / off (no AOF)", gwk.get("noaof"), gwk.get("noaof-nolog"),
        "the shipped access log (every error and unexpected refusal, 1 in 100 other requests, a summary line every 10 s), written to a file")
    add("gateway admission on / off (shipped)", gwk.get("admission"), gwk.get("shipped"),
        "an admission token checked on every reservation (HMAC + seen-set, difficulty 0)")
    cl = by_name.get("gateway on Redis Cluster", {"rows": []})
    clk = {r.get("key"): r for r in cl["rows"]}
    add("gateway cluster / standalone", clk.get("cluster0"), clk.get("standalone"),
        "routing each RESERVE to its activity's primary over 3 shards, against one redis-server")
    add("gateway cluster min_replicas 1 / 0", clk.get("cluster1"), clk.get("cluster0"),
        "confirming every reservation on its shard's replica before the 200 (WAIT per node per batch)")
    modules = [g for g in groups if g["name"].startswith("module") and g["status"] == "ok"]
    for g in modules:
        s = pick(g, "subject")
        x = next((r for r in g["rows"] if r["name"].startswith("XADD")), None)
        lua = next((r for r in g["rows"] if r["name"].startswith("Lua, feature")), None)
        where = f"{g.get('config') or 'module'}, pipeline {g.get('pipeline', '?')}"
        add(f"RESERVE / XADD ({where})", s, x, "RESERVE against the stream append it cannot avoid")
        add(f"RESERVE / Lua ({where})", s, lua, "RESERVE against the feature-equivalent script")
    for pipe in (16, 1):
        pair = {g.get("config", ""): pick(g, "subject") for g in modules if g.get("pipeline") == pipe}
        durable = next((r for c, r in pair.items() if c.startswith("shipped")), None)
        add(f"RESERVE durable / no AOF (pipeline {pipe})", durable, pair.get("no AOF"),
            "appendfsync always at the module")
    wk = by_name.get("worker drain")
    if wk:
        add("worker / plain batched INSERT", pick(wk, "subject"), pick(wk, "baseline"),
            "the worker against the database's own limit")
    return out


def collect(raw, out):
    meta = json.loads(read(os.path.join(raw, "meta.json")) or "{}")
    groups = module_groups(raw) + [gateway_group(raw), stack_group(raw), cluster_group(raw),
                                   worker_group(raw)]
    # Memory last: it is not a throughput/latency row.
    groups.sort(key=lambda g: g["name"].startswith("Redis memory"))
    # The stack's row is read next to the gateway's own rows of the same run: the trivial
    # handler (its baseline) and the gateway alone as shipped (copies, marked as such).
    st = next(g for g in groups if g["name"] == "stack (make run)")
    gw = next(g for g in groups if g["name"] == "gateway")
    if st["status"] == "ok" and gw["status"] == "ok":
        for key, name, role in (("trivial", "trivial warp handler (gateway.sh, same run)", "baseline"),
                                ("shipped", "gateway alone, shipped (gateway.sh, same run)", "reference")):
            r = next((r for r in gw["rows"] if r.get("key") == key), None)
            if r:
                st["rows"].append(dict(r, name=name, label=name, role=role, copied_from="gateway"))
    check_targets(groups)
    doc = dict(meta, groups=groups, ratios=ratios(groups))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    json.dump(doc, open(out, "w"), indent=1, ensure_ascii=False)


# ---------------------------------------------------------------------------- table


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def table(path):
    doc = json.load(open(path))
    m = doc.get("machine", {})
    print(f"### make bench, {doc.get('date', '?')} — {m.get('cores', '?')} cores,"
          f" load average {m.get('load_before', '?')} before / {m.get('load_after', '?')} after,"
          f" commit {doc.get('commit', '?')}")
    print()
    print("| benchmark | row | role | throughput | p50 ms | p95 ms | p99 ms | vs baseline | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in doc["groups"]:
        if g["status"] != "ok" or not g["rows"]:
            print(f"| {g['name']} | {g['status']} | | | | | | | |")
            continue
        b = pick(g, "baseline")
        t = g.get("target", {})
        for i, r in enumerate(g["rows"]):
            if "bytes" in r:
                tp = f"{r['bytes']:.0f} bytes"
                p50 = p95 = p99 = vs = ""
            else:
                tp = f"{fmt(r.get('throughput'))} {r['unit']}"
                p50, p99 = fmt(r.get("p50_ms"), 3), fmt(r.get("p99_ms"), 3)
                p95 = (fmt(r.get("p95_ms"), 3) if r.get("p95_ms") is not None else
                       f"{fmt(r.get('p90_ms'), 3)} (p90)" if r.get("p90_ms") is not None else "–")
                vs = (f"{r['throughput'] / b['throughput']:.2f}x"
                      if b and b.get("throughput") and r.get("throughput") else "")
            tgt = ""
            if r["role"] == "subject" and t and r is pick(g, "subject"):
                tgt = f"{t['text']}: {'met' if t['met'] else 'MISSED'}"
                if "server_cpu_ratio" in t:
                    tgt += f" (server CPU {t['server_cpu_ratio']}x less)"
            print(f"| {g['name']} | {r['name']} | {r['role']} | {tp} | {p50} | {p95} | {p99} | {vs} | {tgt} |")
    if doc.get("ratios"):
        print()
        print("| ratio | value | measures |")
        print("|---|---|---|")
        for q in doc["ratios"]:
            print(f"| {q['name']} | {q['value']:.2f}x | {q['measures']} |")
    for g in doc["groups"]:
        if g.get("cpu"):
            print()
            print(f"{g['name']}: {g['cpu']}")


# ---------------------------------------------------------------------------- plot

COLORS = {"subject": "tab:blue", "variant": "tab:cyan", "baseline": "tab:gray",
          "comparison": "tab:orange", "reference": "tab:olive"}


def plot(path, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker.FuncFormatter below)

    doc = json.load(open(path))
    groups = doc["groups"]
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 2.6 * len(groups) + 0.8), squeeze=False)
    for (ax_t, ax_l), g in zip(axes, groups):
        ax_t.set_title(g["name"], loc="left", fontsize=10, fontweight="bold")
        if g["status"] != "ok" or not g["rows"]:
            for ax in (ax_t, ax_l):
                ax.axis("off")
            ax_t.text(0.02, 0.5, f"{g['name']}: {g['status']}", fontsize=11, color="tab:red",
                      transform=ax_t.transAxes)
            continue
        rows = g["rows"]
        names = [r.get("label", r["name"]) for r in rows]
        colors = [COLORS[r["role"]] for r in rows]
        target = g.get("target")
        if "bytes" in rows[0]:
            vals = [r["bytes"] for r in rows]
            ax_t.barh(names, vals, color=colors)
            ax_t.axvline(100, color="tab:red", linestyle="--", linewidth=1, label="target 100 B")
            ax_t.set_xlabel("bytes per buyer")
            ax_t.legend(fontsize=8, loc="upper right")
            if target:
                ax_l.set_title(f"target {target.get('short', target['text'])}: {'met' if target['met'] else 'MISSED'}",
                               loc="left", fontsize=9,
                               color="tab:green" if target["met"] else "tab:red")
            ax_t.set_xlim(0, max(vals + [100]) * 1.2)
            for y, v in enumerate(vals):
                ax_t.text(v, y, f" {v:.0f}", va="center", fontsize=8)
            ax_t.invert_yaxis()
            ax_l.axis("off")
            continue
        vals = [r.get("throughput") or 0 for r in rows]
        ax_t.barh(names, vals, color=colors)
        ax_t.set_xlabel(g["unit"])
        for y, v in enumerate(vals):
            ax_t.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        ax_t.set_xlim(0, max(vals) * 1.25 or 1)
        if g["name"] in ("gateway", "worker drain"):
            ax_t.axvline(50000, color="tab:red", linestyle="--", linewidth=1, label="target 50,000/s")
            ax_t.legend(fontsize=8, loc="lower right")
        ax_t.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}"))
        if target:
            ax_l.set_title(f"target {target.get('short', target['text'])}: {'met' if target['met'] else 'MISSED'}"
                           + (f" ({target['ratio']}x)" if 'ratio' in target else ""),
                           loc="left", fontsize=9,
                           color="tab:green" if target["met"] else "tab:red")
        ax_t.invert_yaxis()
        # Latency: p50 / p95 (or p90) / p99 per row.
        pct = [("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")]
        if all(r.get("p95_ms") is None for r in rows) and any(r.get("p90_ms") is not None for r in rows):
            pct[1] = ("p90", "p90_ms")
        if all(r.get(k) is None for r in rows for _, k in pct):
            ax_l.text(0.02, 0.5, "no latency figures (throughput benchmark)", transform=ax_l.transAxes,
                      fontsize=9, color="tab:gray")
            ax_l.axis("off")
            continue
        width = 0.8 / len(pct)
        for j, (label, key) in enumerate(pct):
            ys = [i + (j - 1) * width for i in range(len(rows))]
            xs = [r.get(key) or 0 for r in rows]
            ax_l.barh(ys, xs, height=width, label=label,
                      color=["#9ecae1", "#4292c6", "#08519c"][j])
        ax_l.set_yticks(range(len(rows)))
        ax_l.set_yticklabels(names)
        ax_l.set_xlabel("latency, ms")
        ax_l.legend(fontsize=8, loc="lower right")
        ax_l.invert_yaxis()
        ax_l.grid(axis="x", alpha=0.3)
    m = doc.get("machine", {})
    fig.suptitle(f"seckill benchmarks, {doc.get('date', '')} — {m.get('cores', '?')} cores, load "
                 f"{m.get('load_before', '?')}; blue: ours as shipped, cyan: other configurations, "
                 f"gray: baseline, orange: Lua, olive: reference",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    tmp = png + ".tmp"
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, png)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "collect":
        collect(args[1], args[2])
    elif len(args) == 2 and args[0] == "table":
        table(args[1])
    elif len(args) == 3 and args[0] == "plot":
        plot(args[1], args[2])
    else:
        sys.exit(__doc__)
