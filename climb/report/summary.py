"""The closing summary a finished run prints (the Snakefile's `onsuccess`): the exported mixture and whether the
search supports it, what ClimbMix holds, and where the report and the validation table are. It is also written to
``results/summary.txt``, which `make run` prints last, after building the report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from climb.core.io import atomic_open, read_json
from climb.search.signal import describe


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def run_summary(mixture_path: str, manifest_path: str, summary_paths: list[str],
                report_path: str = "results/report.html") -> str:
    """Text of the summary from the files the run wrote; parts it did not build are left out."""
    lines = ["", "climb: the run is complete."]
    if Path(mixture_path).exists():
        final = read_json(mixture_path)
        weights = ", ".join(f"{k}: {v:.3f}" for k, v in final.get("weights", {}).items())
        lines.append(f"  final mixture ({mixture_path}): {weights}")
        for path in summary_paths:
            if Path(path).exists():
                s = read_json(path)
                signal, skill = s.get("signal") or {}, s.get("skill") or {}
                fitted = s.get("fitted_signal") or {}
                lines.append(f"    round {s.get('round')}: SNR {_fmt(signal.get('snr'))} (rounds 1..{s.get('round')}: "
                             f"{_fmt(fitted.get('snr'))}), out-of-fold Spearman "
                             f"{_fmt(skill.get('out_of_fold_spearman'))}, predicted vs measured Spearman "
                             f"{_fmt(skill.get('realized_spearman'))}")
        judged = final.get("verdict")
        if judged:
            state = "supported" if judged["supported"] else "NOT supported"
            if final.get("fallback") == "prior":
                state += " (the natural mixture is used instead; the searched one is under `searched`)"
            lines.append(f"  verdict: {state}")
            lines += [f"    {line}" for line in describe(judged).splitlines()]
    if Path(manifest_path).exists():
        manifest = read_json(manifest_path)
        lines.append(f"  ClimbMix: {len(manifest.get('parts', []))} Parquet parts, {manifest.get('realised_tokens'):,} "
                     f"tokens ({Path(manifest_path).parent}/)")
    table = Path("results/validation/validation_table.md")
    if table.exists():
        lines.append(f"  validation table: {table}")
    lines.append(_report_line(report_path))
    return "\n".join(lines)


def _report_line(report_path: str) -> str:
    if Path(report_path).exists():
        return f"  report: open {report_path} in a browser"
    return f"  report: `snakemake --report {report_path}` builds it (`make run` does), then open it"


def write_summary(text: str, path: str = "results/summary.txt") -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text.lstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m climb.report.summary results/summary.txt results/report.html``: the run's summary, its report line
    brought up to date (`make run` builds the report after the run)."""
    summary_path, report_path = (argv if argv is not None else sys.argv[1:])[:2]
    lines = [line for line in Path(summary_path).read_text().splitlines() if not line.startswith("  report: ")]
    print("\n".join(["", *lines, _report_line(report_path)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
