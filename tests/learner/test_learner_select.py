"""Greedy selection's rules on scored candidates: which ranges are tried and which is chosen.

The candidates are plain scores (what profile and greedy runs return); the function
under test is the learner's own ``greedy_select``.
"""

from __future__ import annotations

import dataclasses

from forkpoint.learner.profile import Candidate
from forkpoint.learner.select import SelectionConfig, greedy_select

N = 16


def cost(start: int) -> float:
    """Extra inference when forking at ``start``: grows with how early the fork is (Lite0-like)."""
    return {13: 24.9, 14: 18.9, 15: 12.9}.get(start, 100.0)


def cand(start: int, stop: int, loss: float, acc: float = 0.9, stage: str = "profile") -> Candidate:
    return Candidate(start, stop, [f"u{i}" for i in range(start, stop)], 1000 * (stop - start), cost(start), acc, 0.0, 1,
                     stage, loss)


def scorer(losses: dict[tuple[int, int], float], asked: list):
    def score(options):
        asked.append(list(options))
        return [cand(a, b, losses[(a, b)], stage="greedy") for a, b in options]
    return score


PROFILE_13 = [cand(13, 14, 0.50), cand(14, 15, 0.60), cand(15, 16, 0.70)]


def test_the_branch_tunes_from_its_fork_to_the_head():
    # unit 13 profiles best and no earlier fork is affordable: its run to the head is tuned whole,
    # even though the short scored run of it looks a little worse (no extra inference either way)
    asked: list = []
    chosen, tried = greedy_select(PROFILE_13, scorer({(13, 16): 0.509}, asked), cost, N, SelectionConfig())
    assert (chosen.start, chosen.stop) == (13, 16) and asked == [[(13, 16)]] and [c.stage for c in tried] == ["greedy"]
    # the paper's rule (every growth must improve by the margin) stops at the single unit
    chosen, _ = greedy_select(PROFILE_13, scorer({(13, 15): 0.505, (13, 16): 0.509}, []), cost, N,
                              SelectionConfig(free_growth=False))
    assert (chosen.start, chosen.stop) == (13, 14)


def test_an_earlier_fork_must_improve_by_the_margin():
    profile = [cand(13, 14, 0.70), cand(14, 15, 0.65), cand(15, 16, 0.50)]
    asked: list = []
    # from 15 the run to the head is [15, 16); a fork at 14 is tried and a tie is not enough
    chosen, tried = greedy_select(profile, scorer({(14, 16): 0.50}, asked), cost, N, SelectionConfig())
    assert (chosen.start, chosen.stop) == (15, 16) and asked == [[(14, 16)]]
    # clear improvements move the fork, one unit at a time, while each pays
    chosen, tried = greedy_select(profile, scorer({(14, 16): 0.40, (13, 16): 0.395}, []), cost, N, SelectionConfig())
    assert (chosen.start, chosen.stop) == (14, 16) and [(c.start, c.stop) for c in tried] == [(14, 16), (13, 16)]


def test_budgets_bound_the_run_and_the_fork():
    # two units at most: the run from 13 is [13, 15); the cost budget forbids forks before 14
    asked: list = []
    chosen, _ = greedy_select(PROFILE_13, scorer({(13, 15): 0.30}, asked), cost, N, SelectionConfig(max_blocks=2))
    assert (chosen.start, chosen.stop) == (13, 15)
    cheap = SelectionConfig(max_extra_cost=20.0)
    chosen, tried = greedy_select(PROFILE_13, scorer({(14, 16): 0.6}, []), cost, N, cheap)
    assert (chosen.start, chosen.stop) == (14, 16) and [(c.start, c.stop) for c in tried] == [(14, 16)]
    # one unit at most: earlier forks reuse the profile's scores instead of training again
    asked = []
    chosen, tried = greedy_select(PROFILE_13[1:], scorer({}, asked), cost, N, dataclasses.replace(cheap, max_blocks=1))
    assert (chosen.start, chosen.stop) == (14, 15) and asked == [] and tried == []
