"""The benchmarks page's side-by-side table: computed from each run's own summary rows."""

from forkpoint.benchmarks.history import runs_table


def _run(commit: str, cells: dict[tuple[str, str, str], tuple[float, float]]) -> dict:
    summary = [{"task": t, "regime": g, "method": m, "mean": acc, "seconds": s, "n": 2} for (t, g, m), (acc, s) in cells.items()]
    for g in {g for _, g, _ in cells}:
        for m in {m for _, _, m in cells}:
            accs = [a for (t, gg, mm), (a, _) in cells.items() if gg == g and mm == m]
            summary.append({"task": "mean", "regime": g, "method": m, "mean": sum(accs) / len(accs), "n": 2})
    return {"machine": {"git_commit": commit}, "sections": {"accuracy": {"tasks": ["a", "b"], "summary": summary}}}


def test_rows_put_the_shipped_run_first_with_gap_and_time_ratio_per_regime():
    new = _run("abc1234", {("a", "10/class", "subtuning"): (0.80, 3.0), ("b", "10/class", "subtuning"): (0.60, 1.0),
                           ("a", "10/class", "full-ft"): (0.75, 8.0), ("b", "10/class", "full-ft"): (0.55, 2.0),
                           ("a", "100/class", "subtuning"): (0.90, 9.0), ("a", "100/class", "full-ft"): (0.95, 10.0)})
    old = _run("0ld0000+dirty (note)", {("a", "10/class", "subtuning"): (0.5, 1.0), ("a", "10/class", "full-ft"): (0.5, 4.0)})
    t = runs_table({"cpu-recipe5": old, "cpu": new})
    assert [r[:3] for r in t.rows] == [["shipped recipe", "abc1234", "10/class"], ["shipped recipe", "abc1234", "100/class"],
                                       ["recipe 5", "0ld0000+dirty", "10/class"]]
    first = dict(zip(t.columns, t.rows[0]))
    assert first["subtuning"] == "70.0" and first["full-ft"] == "65.0" and first["lora"] == "–"
    assert first["SubTuning − full FT (pt)"] == "+5.0"
    assert first["add-task / full FT time"] == "0.40×"  # (3 + 1) / (8 + 2), summed over tasks
    assert dict(zip(t.columns, t.rows[1]))["SubTuning − full FT (pt)"] == "-5.0"


def test_no_accuracy_anywhere_gives_no_table():
    assert runs_table({"cpu": {"machine": {}, "sections": {"cost": {}}}}) is None
