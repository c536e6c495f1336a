#!/usr/bin/env python3
"""Benchmark result plumbing for tools/bench_compare.sh. Standard library only, so no venv is needed.

    bench_table.py tag --case NAME --round R --impl safeaware|torch --mode M --batch B --seq T
                       [--new-tokens K] [--dtype D] [--device D] [--threads N] [--stdout FILE] [--stderr FILE]
        Reads one run's stdout, from --stdout FILE or stdin, and takes the last line that is a JSON object.
        It checks the shared schema and that the run used the requested shape, dtype, device and threads.
        It writes that object as one line with "case" and "round" added. If the run printed no valid
        object or used other settings, it writes {"case", "round", "impl", "error"} and exits 1. The
        error includes the tail of --stderr FILE.

    bench_table.py table RESULTS.jsonl [--peak-bf16-tflops 989] [--peak-f32-tflops 67]
        Prints a Markdown table with one row per case: the median over rounds of each side's
        median step/call time and throughput, and ratio = safeaware throughput / torch throughput.
        Train rows on cuda also get an MFU column, 6 * params * tokens/s / peak, computed here with the
        same peak for both sides. Exit 0, or 1 if any run failed (the table is still printed).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import OrderedDict

REQUIRED = {
    "impl": str, "mode": str, "model": str, "params": int, "batch": int, "seq": int,
    "new_tokens": (int, type(None)), "steps": int, "warmup": int, "threads": (int, type(None)),
    "device": str, "dtype": str, "median_s": (int, float), "p10_s": (int, float), "p90_s": (int, float),
    "tokens_per_s": (int, float), "images_per_s": (int, float), "peak_mem_mib": (int, float, type(None)),
    "mfu": (int, float, type(None)), "versions": dict,
}


def tail(path: str | None, n: int = 15) -> str:
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def last_json_object(text: str):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def check(obj: dict, a) -> list[str]:
    problems = []
    for key, typ in REQUIRED.items():
        if key not in obj:
            problems.append(f"missing key {key!r}")
        elif isinstance(obj[key], bool) or not isinstance(obj[key], typ):
            problems.append(f"key {key!r} has type {type(obj[key]).__name__}")
    if problems:
        return problems
    want = {"impl": a.impl, "mode": a.mode, "batch": a.batch, "seq": a.seq}
    if a.mode == "generate":
        want["new_tokens"] = a.new_tokens
    if a.dtype:
        want["dtype"] = a.dtype
    for key, val in want.items():
        if obj[key] != val:
            problems.append(f"{key} is {obj[key]!r}, requested {val!r}")
    if a.device and obj["device"].split(":")[0] != a.device.split(":")[0]:
        problems.append(f"device is {obj['device']!r}, requested {a.device!r}")
    if a.threads is not None and obj["threads"] is not None and obj["threads"] != a.threads:
        problems.append(f"threads is {obj['threads']}, requested {a.threads}")
    if not obj["tokens_per_s"] > 0:
        problems.append(f"tokens_per_s is {obj['tokens_per_s']}")
    return problems


def cmd_tag(a) -> int:
    if a.stdout:
        with open(a.stdout, errors="replace") as f:
            text = f.read()
    else:
        text = sys.stdin.read()
    obj = last_json_object(text)
    base = {"case": a.case, "round": a.round}
    if obj is None:
        err = "no JSON object on stdout"
    else:
        problems = check(obj, a)
        err = "; ".join(problems) if problems else None
    label = f"round {a.round} {a.case} {a.impl}"
    if err is None:
        print(json.dumps({**base, **obj}))
        print(f"  {label}: {obj['tokens_per_s']:.2f} tokens/s, median {obj['median_s']:.4f} s", file=sys.stderr)
        return 0
    print(f"  {label}: FAILED: {err}", file=sys.stderr)
    if a.rc is not None and a.rc != 0:
        err = f"exit status {a.rc}: {err}"
    st = tail(a.stderr)
    print(json.dumps({**base, "impl": a.impl, "mode": a.mode, "error": err, "stderr_tail": st}))
    return 1


# ------------------------------------------------------------------------------------------ table
def fmt(x, nd=1):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd + 1}f}" if abs(x) >= 1 else f"{x:.3g}"


def with_range(xs):
    if not xs:
        return "—"
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})"


def cmd_table(a) -> int:
    rows = []
    with open(a.results) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"bench_table: {a.results}:{n}: not JSON, skipped", file=sys.stderr)
    cases: OrderedDict[str, dict] = OrderedDict()
    errors = []
    for r in rows:
        c = cases.setdefault(r.get("case", "?"), {"safeaware": [], "torch": [], "failed": {"safeaware": 0, "torch": 0}})
        impl = r.get("impl", "?")
        if impl not in ("safeaware", "torch"):
            continue
        if "error" in r:
            c["failed"][impl] += 1
            last = [ln for ln in (r.get("stderr_tail") or "").splitlines() if ln.strip()]
            hint = f" (stderr: {last[-1].strip()[:200]})" if last else ""
            errors.append(f"{r.get('case')} round {r.get('round')} {impl}: {r['error']}{hint}")
        else:
            c[impl].append(r)

    peaks = {"bf16": a.peak_bf16_tflops * 1e12, "f32": a.peak_f32_tflops * 1e12}
    show_mfu = any(r["mode"] == "train" and r["device"].startswith("cuda")
                   for c in cases.values() for impl in ("safeaware", "torch") for r in c[impl])
    head = ["case", "mode", "B", "T", "K", "device", "dtype", "threads",
            "safeaware tok/s", "torch tok/s", "ratio", "safeaware s", "torch s",
            "safeaware MiB", "torch MiB"]
    if show_mfu:
        head += ["safeaware MFU", "torch MFU"]
    head += ["runs ok"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    notes = []
    for name, c in cases.items():
        ref = (c["torch"] or c["safeaware"] or [None])[0]
        if ref is None:
            out.append(f"| {name} | " + " | ".join(["—"] * (len(head) - 2)) + " | 0 |")
            continue
        tps = {i: [r["tokens_per_s"] for r in c[i]] for i in ("safeaware", "torch")}
        med_s = {i: [r["median_s"] for r in c[i]] for i in ("safeaware", "torch")}
        mem = {i: [r["peak_mem_mib"] for r in c[i] if r.get("peak_mem_mib") is not None] for i in ("safeaware", "torch")}
        ratio = None
        if tps["safeaware"] and tps["torch"]:
            ratio = statistics.median(tps["safeaware"]) / statistics.median(tps["torch"])
        cells = [name, ref["mode"], str(ref["batch"]), str(ref["seq"]),
                 str(ref["new_tokens"]) if ref["new_tokens"] is not None else "—",
                 ref["device"].split(":")[0], ref["dtype"], str(ref["threads"]),
                 with_range(tps["safeaware"]), with_range(tps["torch"]),
                 f"{ratio:.2f}x" if ratio is not None else "—",
                 fmt(statistics.median(med_s["safeaware"]), 2) if med_s["safeaware"] else "—",
                 fmt(statistics.median(med_s["torch"]), 2) if med_s["torch"] else "—",
                 fmt(max(mem["safeaware"])) if mem["safeaware"] else "—",
                 fmt(max(mem["torch"])) if mem["torch"] else "—"]
        if show_mfu:
            for i in ("safeaware", "torch"):
                rs = c[i]
                if rs and ref["mode"] == "train" and ref["device"].startswith("cuda") and ref["dtype"] in peaks:
                    mfu = 6 * rs[0]["params"] * statistics.median(tps[i]) / peaks[ref["dtype"]]
                    cells.append(f"{100 * mfu:.1f}%")
                    if mfu > 1:
                        notes.append(f"{name}: {i} MFU {100 * mfu:.0f}% is above 100%: the peak is wrong for this "
                                     f"card or this side used a faster math mode (e.g. TF32 for f32)")
                else:
                    cells.append("—")
        n_ok = f"{len(c['safeaware'])}+{len(c['torch'])}"
        if c["failed"]["safeaware"] or c["failed"]["torch"]:
            n_ok += f" ({c['failed']['safeaware']}+{c['failed']['torch']} failed)"
        cells.append(n_ok)
        out.append("| " + " | ".join(cells) + " |")
        # Sanity notes: both sides must have timed the same model.
        params = {i: {r["params"] for r in c[i]} for i in ("safeaware", "torch")}
        if params["safeaware"] and params["torch"] and params["safeaware"] != params["torch"]:
            notes.append(f"{name}: parameter counts differ (safeaware {sorted(params['safeaware'])}, "
                         f"torch {sorted(params['torch'])}): not the same model?")
    print("\n".join(out))
    print()
    print("tok/s = median over rounds of each run's tokens/s (train: B·T per step; generate: B·K new tokens "
          "per call), range in brackets; s = median step/call time; MiB = peak memory (CPU: process peak RSS; "
          "GPU: peak allocated); ratio = safeaware tok/s ÷ torch tok/s (> 1: safeaware faster); "
          "runs ok = safeaware+torch runs that produced a result.")
    if show_mfu:
        print(f"MFU = 6·params·tok/s ÷ peak, peak {a.peak_bf16_tflops:g} TFLOP/s bf16, {a.peak_f32_tflops:g} "
              "TFLOP/s f32 (H100 SXM dense), the same formula for both sides.")
    for n in notes:
        print(f"- note: {n}")
    for e in errors:
        print(f"- failed: {e}")
    return 1 if errors else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tag")
    t.add_argument("--case", required=True)
    t.add_argument("--round", type=int, required=True)
    t.add_argument("--impl", required=True, choices=["safeaware", "torch"])
    t.add_argument("--mode", required=True, choices=["train", "generate"])
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--seq", type=int, required=True)
    t.add_argument("--new-tokens", type=int)
    t.add_argument("--dtype")
    t.add_argument("--device")
    t.add_argument("--threads", type=int)
    t.add_argument("--rc", type=int, help="the run's exit status, quoted in the error record")
    t.add_argument("--stdout", help="the run's stdout (default: read stdin)")
    t.add_argument("--stderr", help="the run's stderr, quoted in the error record")
    tb = sub.add_parser("table")
    tb.add_argument("results")
    tb.add_argument("--peak-bf16-tflops", type=float, default=989.0)
    tb.add_argument("--peak-f32-tflops", type=float, default=67.0)
    a = p.parse_args(argv)
    return cmd_tag(a) if a.cmd == "tag" else cmd_table(a)


if __name__ == "__main__":
    sys.exit(main())
