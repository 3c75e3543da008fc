"""Build-time figures and tables for the performance page.

``generate(results_dir, out_dir)`` reads every ``*.json`` in
``benchmarks/results`` (records with ``op``, ``case``, ``threads``,
``pyxconv_ms``, ``torch_ms`` and ``ratio``; a file may hold a list of records
or an object with a ``records`` or ``results`` list) and writes
``performance_results.rst`` with one bar chart per operation and a table. With
no results it writes a note that says so, and the build still succeeds.
"""
import json
from pathlib import Path

FIELDS = ("op", "case", "threads", "pyxconv_ms", "torch_ms", "ratio")


def load_records(results_dir):
    """All benchmark records found in ``results_dir``, with the file each came from."""
    records, files = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data = data.get("records", data.get("results", []))
        if not isinstance(data, list):
            continue
        good = [r for r in data if isinstance(r, dict) and "op" in r and "pyxconv_ms" in r]
        if good:
            files.append(path.name)
            for r in good:
                # forward and forward+backward timings of one op get plots of their own
                op = f"{r['op']} {r['mode']}" if r.get("mode") else r["op"]
                records.append(dict(r, op=op, source=path.name, case=case_label(r)))
    return records, files


def case_label(record):
    """The record's ``case``, or else a label made of its other descriptive fields."""
    if record.get("case") not in (None, ""):
        return str(record["case"])
    skip = set(FIELDS) | {"source", "wait_policy", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}
    parts = []
    for key, value in record.items():
        if key in skip or isinstance(value, float):
            continue
        if isinstance(value, (list, tuple)):
            value = "x".join(str(v) for v in value)
        parts.append(f"{key} {value}")
    return ", ".join(parts) or "default"


def _fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _plot(op, rows, png):
    import matplotlib.pyplot as plt
    import numpy as np

    cases = list(dict.fromkeys(str(r.get("case", "")) for r in rows))
    threads = sorted({int(r.get("threads", 1)) for r in rows})
    series = []
    for t in threads:
        for lib, key in (("pyxconv", "pyxconv_ms"), ("PyTorch", "torch_ms"),
                         ("onnxruntime", "ort_ms")):
            vals = []
            for c in cases:
                match = [r for r in rows if str(r.get("case", "")) == c
                         and int(r.get("threads", 1)) == t]
                v = match[-1].get(key) if match else None
                vals.append(float(v) if isinstance(v, (int, float)) else np.nan)
            if not np.all(np.isnan(vals)):
                series.append((f"{lib}, {t} thread{'s' if t > 1 else ''}", vals, lib))
    # The page's text column is ~7 inches wide: a wider figure is shrunk and its
    # labels become unreadable, so many cases get a taller figure instead.
    fig, ax = plt.subplots(figsize=(7.0, 3.6 if len(cases) <= 4 else 5.0))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(cases))
    colors = {"pyxconv": ["#1f77b4", "#6baed6"], "PyTorch": ["#d62728", "#fc9272"],
              "onnxruntime": ["#2ca02c", "#98df8a"]}
    used = {"pyxconv": 0, "PyTorch": 0, "onnxruntime": 0}
    for i, (label, vals, lib) in enumerate(series):
        color = colors[lib][min(used[lib], 1)]
        used[lib] += 1
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=label, color=color)
    ax.set_xticks(x)
    ax.set_xticklabels(cases, rotation=30 if len(cases) > 4 else 20, ha="right", fontsize=8)
    ax.set_ylabel("time per call (ms)")
    ax.set_yscale("log")
    ax.set_title(op)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def generate(results_dir, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, files = load_records(results_dir)
    rst = out_dir / "performance_results.rst"
    if not records:
        rst.write_text(
            ".. note::\n\n"
            "   No benchmark results were found when these pages were built: "
            "``benchmarks/results/`` holds no JSON file of records. Run the "
            "benchmark to produce one and rebuild the documentation; the "
            "plots and the table then appear here.\n")
        return rst
    lines = [f"Results from {', '.join(f'``{f}``' for f in files)}.", ""]
    ops = list(dict.fromkeys(r["op"] for r in records))
    for op in ops:
        rows = [r for r in records if r["op"] == op]
        slug = "".join(ch if ch.isalnum() else "_" for ch in str(op))
        png = out_dir / f"perf_{slug}.png"
        _plot(str(op), rows, png)
        with_ort = any("ort_ms" in r for r in rows)
        engines = "pyxconv, PyTorch and onnxruntime" if with_ort else "pyxconv and PyTorch"
        lines += [str(op), "-" * max(3, len(str(op))), "",
                  f".. figure:: /generated/perf_{slug}.png",
                  f"   :alt: time per call of {op}, {engines}, by case and threads",
                  "",
                  f"   Time per call of ``{op}`` (log scale, lower is better).", "",
                  ".. list-table::", "   :header-rows: 1", "",
                  "   * - case", "     - threads", "     - pyxconv (ms)", "     - PyTorch (ms)",
                  "     - ratio (recorded)"]
        if with_ort:
            lines += ["     - onnxruntime (ms)", "     - ratio to onnxruntime"]
        for r in rows:
            lines += [f"   * - {_fmt(r.get('case'))}", f"     - {_fmt(r.get('threads'))}",
                      f"     - {_fmt(r.get('pyxconv_ms'))}", f"     - {_fmt(r.get('torch_ms'))}",
                      f"     - {_fmt(r.get('ratio'))}"]
            if with_ort:
                lines += [f"     - {_fmt(r.get('ort_ms'))}", f"     - {_fmt(r.get('ratio_ort'))}"]
        lines.append("")
    rst.write_text("\n".join(lines) + "\n")
    return rst
