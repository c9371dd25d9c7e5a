"""How big a benchmark run is: one frozen dataclass per preset (smoke, quick, full, gpu).

Every section reads its sizes from here, so a run's JSON records exactly what was
measured and a preset can be cut to fit a time budget in one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from forkpoint.contract.errors import ConfigError

SECTIONS = ("cost", "accuracy", "throughput", "storage", "forgetting")
DOMAIN_STREAM = ("mnist", "fashion", "animals", "digits")


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and knobs of one benchmark run (recorded verbatim in the results)."""

    mode: str
    device: str = "cpu"
    arch: str = "tf_efficientnet_lite0"
    weights: str | None = None  # local weights file for a non-default arch (never fetched)
    backbone_note: str = ""  # why this backbone (the GPU mode looks for a bigger model's local weights)
    resolution: int = 32
    threads: int = 1  # one thread: OpenMP spin-waits badly when other jobs share the 2 cores
    bf16: bool = False  # autocast on CUDA
    # accuracy: stream tasks x data regimes x methods x seeds
    tasks: tuple[str, ...] = DOMAIN_STREAM[:2]
    regimes: tuple[int | None, ...] = (10, 50, None)  # images per class; None = all (capped below)
    all_cap_per_class: int = 100  # "all" is the whole pool up to this many per class
    test_per_class: int = 50
    seeds: tuple[int, ...] = (0,)
    regime_seeds: tuple[int, ...] = ()  # per regime: run only its first K seeds (bigger regimes cost more); () = every seed
    profile_epochs: int = 1
    train_epochs: int = 3
    batch_size: int = 64  # upper bound; small samples use n_train // 8 (>= 8) so they still get steps
    lr: float = 1e-3  # tuned units and LoRA adapters (the learner's default)
    head_lr: float = 3e-3
    # The scenarios harness's rate (its Avalanche baselines and per-task full finetuning). The accuracy
    # section's baselines pick theirs on validation instead (learner.lrsearch).
    cl_lr: float = 3e-4
    max_blocks: int = 3  # greedy selection budget (learner default)
    max_extra_cost: float = 30.0  # % of one pass (learner default)
    fixed_late_blocks: int = 2  # "SubTuning, fixed late branch" tunes the last K units
    lora_rank: int = 8
    # add-task cost: one task, full candidate profile (learner default) vs alternatives
    cost_task: str = "mnist"
    cost_per_class: int = 40
    growth_counts: tuple[int, ...] = (1, 2, 4, 8, 16)
    # inference throughput
    task_counts: tuple[int, ...] = (1, 2, 4, 8, 16)
    batch_sizes: tuple[int, ...] = (1, 64)
    warmup: int = 2
    repeats: int = 5
    # forgetting: the scenarios harness's continual-learning baselines on the domain stream
    forgetting_per_class: int = 50
    cl_baselines: tuple[str, ...] = ("naive", "ewc", "lwf", "replay")

    def __post_init__(self) -> None:
        if self.resolution < 16:
            raise ConfigError(f"resolution {self.resolution} is too small for the backbone: use >= 16")
        if self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be >= 1")
        if not self.seeds:
            raise ConfigError("no seeds given: pass at least one --seeds value")
        if self.regime_seeds and len(self.regime_seeds) != len(self.regimes):
            raise ConfigError(f"regime_seeds {self.regime_seeds} must give one seed count per regime {self.regimes}")

    def to_dict(self) -> dict:
        return asdict(self)

    def batch_for(self, n_train: int) -> int:
        """Batch size for ``n_train`` images: at most ``batch_size``, small enough for >= 8 steps per epoch."""
        return max(8, min(self.batch_size, n_train // 8))

    def seeds_for(self, per_class: int | None) -> tuple[int, ...]:
        if self.regime_seeds and per_class in self.regimes:
            return self.seeds[:max(1, self.regime_seeds[self.regimes.index(per_class)])]
        return self.seeds


def preset(mode: str, device: str = "cpu") -> BenchSettings:
    """The named preset; ``device == 'cuda'`` turns any preset into its GPU variant (224 px, bf16)."""
    if mode == "smoke":
        s = BenchSettings(
            mode="smoke", regimes=(4,), cl_baselines=("naive",), all_cap_per_class=8, test_per_class=5,
            profile_epochs=1, train_epochs=1, batch_size=32, cost_per_class=4, growth_counts=(1, 2),
            task_counts=(1, 2), batch_sizes=(1, 4), warmup=1, repeats=2, forgetting_per_class=3, max_blocks=2,
        )
    elif mode == "quick":
        s = BenchSettings(mode="quick", regimes=(10, 50), cost_per_class=20, growth_counts=(1, 4, 16),
                          forgetting_per_class=20, warmup=1, repeats=3)
    elif mode == "full":
        # sized for about an hour on one CPU core: the 64 px domain stream, 10/50/100 images
        # per class (100/class = ~1,000 labelled images per task), 2 seeds everywhere
        s = BenchSettings(
            mode="full", tasks=DOMAIN_STREAM, resolution=64, regimes=(10, 50, 100), regime_seeds=(2, 2, 2),
            all_cap_per_class=100, test_per_class=50, seeds=(0, 1), profile_epochs=1, train_epochs=5,
            cost_per_class=30, growth_counts=(1, 4, 16), forgetting_per_class=20, repeats=5,
        )
    else:
        raise ConfigError(f"unknown benchmark mode '{mode}': use smoke, quick or full")
    if device.startswith("cuda"):
        s = replace(s, device=device, resolution=224, bf16=True, batch_size=max(s.batch_size, 64))
        if mode == "full":  # a GPU affords the whole grid: 10/50/100/all, 3 seeds everywhere, longer training
            s = replace(s, regimes=(10, 50, 100, None), regime_seeds=(), seeds=(0, 1, 2), all_cap_per_class=500, test_per_class=100,
                        profile_epochs=2, train_epochs=6, cost_per_class=100, growth_counts=(1, 2, 4, 8, 16),
                        forgetting_per_class=100, repeats=10, warmup=3)
    return s
