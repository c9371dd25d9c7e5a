"""Storage: bytes a task adds (its branch's safetensors: tuned units + head) vs a full model copy.

Next to the bytes, what a branch adds to one shared pass when another task forks at the
same unit or deeper: its units from the fork on and the tail (``Backbone.extra_cost_pct``).
Alone a task costs one pass and nothing extra; the deepest-forking task adds the previous
deepest fork's share instead (``MultiTaskModel.marginal_cost_pct``).
"""

from __future__ import annotations

from safetensors.torch import save

from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.stats import ratio
from forkpoint.benchmarks.tables import TableSpec, num
from forkpoint.learner import Branch
from forkpoint.learner.baselines import FullFinetune

NUM_CLASSES = 10


def _bytes(tensors: dict) -> int:
    return len(save({k: v.contiguous() for k, v in tensors.items()}))


def run(ctx: BenchContext) -> dict:
    s, bb = ctx.settings, ctx.backbone
    nb = bb.num_blocks
    full = FullFinetune(bb, NUM_CLASSES)
    full_bytes = _bytes({k: v.detach().cpu() for k, v in full.state_dict().items()})
    ranges = {(nb, nb)} | {(nb - k, nb) for k in range(1, s.max_blocks + 1)}
    chosen = set()
    for row in ctx.results.get("accuracy", {}).get("rows", []):
        if row["method"] == "subtuning":
            chosen.add((row["start"], row["stop"]))
    ranges |= chosen
    rows = []
    for start, stop in sorted(ranges, key=lambda r: (-r[0], r[1])):
        br = Branch.new(bb, start, stop, NUM_CLASSES)
        b = _bytes(br.tensors())
        rows.append({"start": start, "stop": stop, "blocks": bb.block_names[start:stop], "params": br.num_params(), "bytes": b,
                     "pct_of_full_model": 100.0 * ratio(b, full_bytes), "chosen_by_subtuning": (start, stop) in chosen,
                     "extra_cost_pct": bb.extra_cost_pct(start)})  # marginal cost next to a deeper fork
    return {"full_model_bytes": full_bytes, "full_model_params": sum(p.numel() for p in full.parameters()), "rows": rows,
            "chosen_max_pct": max((r["pct_of_full_model"] for r in rows if r["chosen_by_subtuning"]), default=float("nan"))}


def tables(result: dict) -> list[TableSpec]:
    rows = []
    for r in result["rows"]:
        label = "linear probe (head only)" if r["start"] == r["stop"] else f"{r['blocks'][0]}..{r['blocks'][-1]}" if len(r["blocks"]) > 1 else r["blocks"][0]
        rows.append([label, "yes" if r["chosen_by_subtuning"] else "", f"{r['params']:,}", num(r["bytes"] / 2**20), num(r["pct_of_full_model"], 1),
                     num(r["extra_cost_pct"], 1)])
    rows.append(["full model copy", "", f"{result['full_model_params']:,}", num(result["full_model_bytes"] / 2**20), "100.0", "100.0"])
    return [TableSpec("Storage per task (safetensors, fp32, 10-class head)",
                      ["branch", "chosen in accuracy run", "params", "MiB", "% of full model", "marginal inference %"], rows, align_left=2,
                      note="Marginal inference: FLOPs the task adds to one shared pass, in % of one pass, next to a task that forks "
                           "at the same unit or deeper (its units from the fork on and the tail). Alone a task costs one pass, "
                           "nothing extra. A full copy adds a whole pass.")]
