"""Avalanche's metrics for a run, read back into plain numbers.

Every strategy gets a fresh ``EvaluationPlugin`` with experience/stream accuracy,
forgetting and BWT plus the accuracy matrix. After training experience i the runner
evaluates experiences 0..i, so row i of the matrix is "after task i" and entries above
the diagonal (tasks not seen yet) are left empty.
"""

from __future__ import annotations

import math
import warnings

import torch

from forkpoint.learner.device import Stopwatch, warm_up

STREAM_FORGETTING = "StreamForgetting/eval_phase/test_stream"
STREAM_BWT = "StreamBWT/eval_phase/test_stream"
EXP_ACC = "Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{e:03d}"
EXP_FORGETTING = "ExperienceForgetting/eval_phase/test_stream/Task{t:03d}/Exp{e:03d}"
ACC_MATRIX = "EvalStream/Acc_Matrix"


def make_evaluator():
    """A silent EvaluationPlugin (no loggers: the runner renders progress and reports)."""
    from avalanche.evaluation.metrics import accuracy_matrix_metrics, accuracy_metrics, bwt_metrics, forgetting_metrics
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        return EvaluationPlugin(
            accuracy_metrics(experience=True, stream=True),
            forgetting_metrics(experience=True, stream=True),
            bwt_metrics(experience=True, stream=True),
            accuracy_matrix_metrics(),
            loggers=[],
        )


def accuracy_matrix(evaluator, num_steps: int) -> list[list[float | None]]:
    """acc[i][j]: accuracy on experience j after training experience i (None for j > i).

    Read from the per-experience accuracy history (float64), which the AccuracyMatrix
    metric mirrors in float32.
    """
    history = evaluator.get_all_metrics()
    matrix: list[list[float | None]] = [[None] * num_steps for _ in range(num_steps)]
    for j in range(num_steps):
        values = history.get(EXP_ACC.format(t=j, e=j), ([], []))[1]
        for k, v in enumerate(values):  # evaluations of exp j happen after steps j, j+1, ...
            if j + k < num_steps:
                matrix[j + k][j] = float(v)
    return matrix


def avalanche_matrix(evaluator) -> list[list[float]] | None:
    last = evaluator.get_last_metrics().get(ACC_MATRIX)
    return None if last is None else torch.as_tensor(last).tolist()


def last_value(evaluator, name: str, default: float = 0.0) -> float:
    v = evaluator.get_last_metrics().get(name)
    return default if v is None else float(v)


def forgetting_per_task(evaluator, num_steps: int) -> list[float | None]:
    """Avalanche's experience forgetting after the last step (None for the last task: nothing came after)."""
    last = evaluator.get_last_metrics()
    out: list[float | None] = []
    for j in range(num_steps):
        v = last.get(EXP_FORGETTING.format(t=j, e=j))
        out.append(None if v is None else float(v))
    return out


def changed_accuracies(matrix: list[list[float | None]]) -> list[str]:
    """Every place where an experience's accuracy differs (at all) from when it was learned."""
    problems = []
    for j in range(len(matrix)):
        learned = matrix[j][j]
        for i in range(j + 1, len(matrix)):
            v = matrix[i][j]
            if v is not None and learned is not None and v != learned:
                problems.append(f"experience {j}: accuracy {learned!r} after step {j} but {v!r} after step {i}")
    return problems


def mean(values) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


@torch.no_grad()
def inference_ms_per_image(model, x: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of answering every learned task for ``x``, per image."""
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    warm_up(device)
    model.infer_all(x[:2])  # warm-up (allocations, lazy inits)
    best = math.inf
    for _ in range(repeats):
        with Stopwatch(device) as sw:  # synchronised: on CUDA the clock must wait for the kernels
            model.infer_all(x)
        best = min(best, sw.seconds)
    return 1000.0 * best / max(len(x), 1)
