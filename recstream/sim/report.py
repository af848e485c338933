"""Several ``simulate --json`` results (seeds of each scenario) pooled into one table per
scenario and one plot of every arm's CTR over the rounds.

Per arm and round: the mean CTR over the seeds, with a 95% band across seeds (mean ± 1.96 · sd
/ √seeds, from two seeds on). Paired differences (model_retrain − arm) pool the users of every
seed as one sample (:func:`recstream.sim.paired.pool`); they need the per-user outcomes that
``simulate --per-user`` writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recstream.sim.arms import ARMS, SERVED
from recstream.sim.paired import Z95, Outcomes, pool


def by_scenario(results: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Results grouped by scenario, each group in seed order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in sorted(results, key=lambda r: (r["scenario"], r["seed"])):
        groups.setdefault(result["scenario"], []).append(result)
    return groups


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's runs (one per seed) as per-arm curves and pooled paired differences."""
    arms: dict[str, Any] = {}
    for arm in ARMS:
        present = [run["arms"][arm] for run in runs if "rounds" in run.get("arms", {}).get(arm, {})]
        if not present:
            absent = {run.get("arms", {}).get(arm, {}).get("absent") for run in runs}
            arms[arm] = {"absent": "; ".join(sorted(a for a in absent if a)) or "not run"}
            continue
        arms[arm] = _curve(present)
    return {
        "scenario": runs[0]["scenario"],
        "seeds": [run["seed"] for run in runs],
        "users": [run["users"] for run in runs],
        "rounds": max(len(run["rounds"]) for run in runs),
        "arms": arms,
        "paired_reference": SERVED,
        "paired": _paired(runs),
    }


def _curve(present: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean over runs of the arm's CTR per round, its band, and the means over the rounds."""
    n_rounds = max(len(a["rounds"]) for a in present)
    ctr, band = [], []
    for r in range(n_rounds):
        values = np.array([a["rounds"][r]["ctr"] for a in present if len(a["rounds"]) > r])
        ctr.append(float(values.mean()))
        band.append(_band(values))
    return {
        "runs": len(present),
        "ctr": ctr,
        "ctr_band": band,
        "mean": {
            key: float(np.mean([a["mean"][key] for a in present]))
            for key in ("ctr", "conversion", "coverage", "diversity")
        },
    }


def _band(values: np.ndarray) -> list[float] | None:
    if len(values) < 2:
        return None
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(len(values))
    return [float(values.mean()) - half, float(values.mean()) + half]


def _paired(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per arm, model_retrain − arm pooled over the runs that carry per-user outcomes."""
    out: dict[str, Any] = {}
    for arm in ARMS[1:]:
        pairs = [
            (Outcomes.from_json(per_user[SERVED]), Outcomes.from_json(per_user[arm]))
            for per_user in (run.get("per_user") or {} for run in runs)
            if SERVED in per_user and arm in per_user
        ]
        if pairs:
            # Users of every seed are pooled into one interval; the seeds' own differences
            # show how much the worlds themselves (one per seed) move the result.
            per_seed = [pool([pair])["ctr"]["diff"] for pair in pairs]
            out[arm] = {"runs": len(pairs), **pool(pairs), "per_seed_ctr": per_seed}
    return out


def markdown(summaries: Sequence[dict[str, Any]]) -> str:
    """One table per scenario."""
    lines = [
        "# Simulator arms",
        "",
        "CTR = clicks per list, mean over seeds per round. Δ = model_retrain − arm, paired per "
        "user (common random numbers), users of every seed pooled, 95% normal interval; "
        "beside it the smallest and largest of the seeds' own Δ CTR.",
    ]
    for s in summaries:
        lines += ["", *_scenario_table(s)]
    return "\n".join(lines) + "\n"


def _scenario_table(s: dict[str, Any]) -> list[str]:
    seeds = ", ".join(str(seed) for seed in s["seeds"])
    users = sorted(set(s["users"]))
    rounds = [f"r{r + 1}" for r in range(s["rounds"])]
    head = [
        "arm",
        *rounds,
        "CTR",
        "conversion",
        "Δ CTR [95% CI]",
        "Δ CTR per seed (min … max)",
        "Δ conversion [95% CI]",
    ]
    lines = [
        f"## {s['scenario']}: {len(s['seeds'])} seeds ({seeds}) × "
        f"{'/'.join(map(str, users))} users, {s['rounds']} rounds",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for arm, data in s["arms"].items():
        if "absent" in data:
            lines.append(f"| {arm} | absent: {data['absent']} |")
            continue
        ctrs = [f"{c:.3f}" for c in data["ctr"]] + [""] * (len(rounds) - len(data["ctr"]))
        paired = s["paired"].get(arm)
        ctr_ci, conv_ci = (_ci(paired[m]) if paired else "—" for m in ("ctr", "conversion"))
        by_seed: list[float] = paired.get("per_seed_ctr", []) if paired else []
        spread = f"{min(by_seed):+.3f} … {max(by_seed):+.3f}" if by_seed else "—"
        mean = data["mean"]
        row = [arm, *ctrs, f"{mean['ctr']:.3f}", f"{mean['conversion']:.3f}"]
        row += [ctr_ci, spread, conv_ci]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _ci(x: dict[str, Any]) -> str:
    if x["low"] is None:
        return f"{x['diff']:+.3f} (n {x['n']})"
    return f"{x['diff']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}] (n {x['n']})"


def plot(s: dict[str, Any], path: Path) -> None:
    """Every arm's CTR over the rounds (mean over seeds, 95% band across seeds) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for arm, data in s["arms"].items():
        if "absent" in data:
            continue
        rounds = np.arange(1, len(data["ctr"]) + 1)
        style = "-" if arm == SERVED else "--" if arm == "oracle" else "-."
        (line,) = ax.plot(rounds, data["ctr"], style, marker="o", label=arm)
        bands = [(r, b) for r, b in zip(rounds, data["ctr_band"], strict=True) if b is not None]
        if bands:
            xs = [r for r, _ in bands]
            ax.fill_between(
                xs,
                [b[0] for _, b in bands],
                [b[1] for _, b in bands],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
    ax.set_title(f"{s['scenario']}: CTR by arm, {len(s['seeds'])} seeds")
    ax.set_xlabel("round")
    ax.set_ylabel("CTR (clicks per list)")
    ax.set_xticks(np.arange(1, s["rounds"] + 1))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
