"""``simulate-report``: several runs per scenario pooled into a table and a plot; and the
``simulate`` table with one line per arm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from recstream.cli import app
from recstream.cli_sim import _table
from recstream.sim.arms import ARMS
from recstream.sim.loop import LoopConfig, Simulation
from recstream.sim.paired import Outcomes, pool
from recstream.sim.report import by_scenario, markdown, plot, summarise
from recstream.sim.scenarios import SCENARIOS
from recstream.sim.world import World
from tests.unit.test_sim_loop import FakeBus


def run(scenario: str, seed: int, rounds: int = 2, per_user: bool = True) -> dict[str, Any]:
    world = World(SCENARIOS[scenario], seed=seed, n_users=15)
    cfg = LoopConfig(
        rounds=rounds, warmup_events=3, catalogue_settle_s=0, run_tag="r", per_user=per_user
    )
    result = Simulation(world, FakeBus(world.catalogue.ids), cfg, sleep=lambda s: None).run()
    return json.loads(json.dumps(result))  # as simulate --json writes it


@pytest.fixture(scope="module")
def runs() -> list[dict[str, Any]]:
    return [run("courses", 2), run("courses", 1), run("media", 1)]


def test_runs_are_grouped_by_scenario_in_seed_order(runs: list[dict[str, Any]]) -> None:
    groups = by_scenario(runs)
    assert list(groups) == ["courses", "media"]
    assert [r["seed"] for r in groups["courses"]] == [1, 2]


def test_summary_averages_seeds_and_pools_their_users(runs: list[dict[str, Any]]) -> None:
    courses = by_scenario(runs)["courses"]
    s = summarise(courses)
    assert (s["seeds"], s["rounds"]) == ([1, 2], 2)
    assert list(s["arms"]) == list(ARMS)
    assert s["arms"]["model_frozen"] == {"absent": courses[0]["arms"]["model_frozen"]["absent"]}
    oracle = s["arms"]["oracle"]
    per_seed = [[r["ctr"] for r in c["arms"]["oracle"]["rounds"]] for c in courses]
    assert oracle["ctr"] == pytest.approx(np.mean(per_seed, axis=0).tolist())
    low, high = oracle["ctr_band"][0]
    assert low <= oracle["ctr"][0] <= high
    pairs = [
        tuple(Outcomes.from_json(c["per_user"][a]) for a in ("model_retrain", "popularity"))
        for c in courses
    ]
    per_seed = [pool([pair])["ctr"]["diff"] for pair in pairs]
    assert s["paired"]["popularity"] == {"runs": 2, **pool(pairs), "per_seed_ctr": per_seed}
    assert s["paired"]["popularity"]["ctr"]["n"] == 30
    assert "model_frozen" not in s["paired"]


def test_without_per_user_outcomes_there_is_no_pooled_difference() -> None:
    s = summarise([run("travel", 1, per_user=False)])
    assert s["paired"] == {}
    assert s["arms"]["popularity"]["ctr_band"] == [None, None]  # one seed: no band
    assert "| popularity |" in markdown([s])


def test_markdown_has_a_table_per_scenario(runs: list[dict[str, Any]]) -> None:
    text = markdown([summarise(group) for group in by_scenario(runs).values()])
    assert "## courses: 2 seeds (1, 2)" in text and "## media: 1 seeds (1)" in text
    assert "| arm | r1 | r2 | CTR | conversion | Δ CTR [95% CI] |" in text
    assert text.count("| oracle |") == 2
    assert "| model_frozen | absent:" in text


def test_plot_writes_a_png(runs: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "courses.png"
    plot(summarise(by_scenario(runs)["courses"]), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_plots_and_skips_unreadable_files(
    runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    files = []
    for n, result in enumerate(runs):
        files.append(tmp_path / f"run{n}.json")
        files[-1].write_text(json.dumps(result))
    broken = tmp_path / "failed.json"
    broken.write_text("")  # what a failed simulate leaves
    out = tmp_path / "report"
    args = ["simulate-report", "--out", str(out), "--json", *map(str, files), str(broken)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipping" in result.output
    report = json.loads(result.output.splitlines()[-1])
    assert [s["scenario"] for s in report["scenarios"]] == ["courses", "media"]
    assert sorted(p.name for p in out.iterdir()) == ["courses.png", "media.png"]
    markdown_run = CliRunner().invoke(app, ["simulate-report", *map(str, files)])
    assert markdown_run.exit_code == 0 and "# Simulator arms" in markdown_run.output
    nothing = CliRunner().invoke(app, ["simulate-report", str(broken)])
    assert nothing.exit_code == 1


def test_simulate_table_has_a_line_per_arm_with_paired_differences(
    runs: list[dict[str, Any]],
) -> None:
    text = _table(runs[0])
    lines = {line.split()[0]: line for line in text.splitlines() if line}
    assert "absent:" in lines["model_frozen"]
    assert "(served)" in lines["model_retrain"]
    paired = runs[0]["paired"]["oracle"]["ctr"]
    assert f"{paired['diff']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]" in lines["oracle"]
