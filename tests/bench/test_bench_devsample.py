"""The ablation chooses the recipe on images the benchmark never reports."""

from __future__ import annotations

from forkpoint.benchmarks.datasets import development_sample, load_pool, sample_task


def test_development_held_out_images_are_neither_training_nor_benchmark_test_images(tmp_path):
    pool = load_pool("digits", tmp_path / "data")
    dev = development_sample(pool, 10, 5, seed=1)
    bench = sample_task(pool, 10, 10, 5, seed=1)
    as_bytes = lambda images: {bytes(im.tobytes()) for im in images}  # noqa: E731
    held = as_bytes(dev.test[0])
    assert len(dev.test[1]) == 5 * len(pool.class_names)
    assert not held & as_bytes(dev.train[0]) and not held & as_bytes(dev.val[0])
    assert not held & as_bytes(bench.test[0])  # drawn from the training pool, never the test split
    assert as_bytes(dev.train[0]) == as_bytes(bench.train[0])  # same training sample as the benchmark's


def test_the_ablation_names_full_finetunings_variants_when_a_variant_is_unknown(tmp_path):
    from click.testing import CliRunner

    from forkpoint.benchmarks import ablation

    res = CliRunner().invoke(ablation.main, ["--variants", "default,nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown variant 'nope'" in res.output
    assert "full-ft-bn-frozen" in res.output and not (tmp_path / "ablation.json").exists()
