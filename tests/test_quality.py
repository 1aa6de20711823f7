"""Generative runs measured, not only trained: a VAE's ELBO terms, active units and mean-image
baseline, and a judge's Fréchet distance, confidence and coverage of generated samples."""

import jax
import numpy as np
import pytest

import dlexp
from dlexp.data import load_dataset
from dlexp.errors import ConfigError
from dlexp.quality.frechet import class_coverage, frechet_distance, gaussian
from dlexp.quality.judge import train_judge


def test_frechet_distance_of_known_gaussians():
    mu, cov = np.zeros(3), np.diag([1.0, 4.0, 9.0])
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2 = 1 + (1 + 0 + 4)
    assert frechet_distance(mu, cov, np.array([1.0, 0, 0]), np.diag([4.0, 4.0, 1.0])) == pytest.approx(6.0)
    assert class_coverage(np.array([5, 5, 5, 5])) == pytest.approx(np.log(4))
    assert class_coverage(np.array([20, 0, 0, 0])) == 0.0


@pytest.fixture(scope="module")
def digits(cache_dir):
    return load_dataset({"_target_": "dlexp.data.builtin.digits", "scale": "minmax"}, seed=0, cache_dir=cache_dir)


def test_the_judge_finds_real_digits_close_and_noise_far(digits, tmp_path):
    judge = train_judge(digits, seed=0, steps=150, cache_dir=str(tmp_path))
    assert judge.accuracy > 0.9 and judge.source == "trained for 150 steps"
    measure = jax.jit(judge.sums)

    def fid(x):
        return frechet_distance(*gaussian(measure(x, np.ones(len(x), np.float32))), *judge.reference)

    train, val = digits.x["train"], digits.x["val"]
    noise = np.random.default_rng(0).uniform(size=val.shape).astype(np.float32)
    assert fid(train) == pytest.approx(0.0, abs=1e-3)  # the reference itself
    assert fid(noise) > 20 * fid(val)
    again = train_judge(digits, seed=0, steps=150, cache_dir=str(tmp_path))  # a sweep's next run: cached
    assert again.source.endswith("(cached)")
    assert all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again.model.params), jax.tree.leaves(judge.model.params))
    )


def test_a_collapsed_vae_sits_at_the_mean_image_and_the_preset_does_not(tmp_path, cache_dir):
    common = [
        "experiment=digits_vae",
        "trainer.progress=false",
        "logger.console=false",
        "quality.judge=off",
        "trainer.checkpoint.enabled=false",
        f"paths.cache={cache_dir}",
    ]
    good = dlexp.run(common, run_dir=str(tmp_path / "good"))["test"]
    collapsed = dlexp.run([*common, "model.beta=100"], run_dir=str(tmp_path / "collapsed"))["test"]
    assert good["active_units"] >= 4 and good["mse"] < 0.6 * good["baseline_mse"]
    assert collapsed["active_units"] <= 1 and collapsed["mse"] == pytest.approx(collapsed["baseline_mse"], rel=0.25)
    assert good["elbo"] == pytest.approx(-(good["recon"] + good["kl"]))
    assert good["bpd"] == pytest.approx(-good["elbo"] / (64 * np.log(2)))


def test_a_gan_is_judged_by_its_samples_and_reported_with_them(tmp_path, cache_dir):
    short = ["dataset.scale=minmax", "trainer.progress=false", "logger.console=false", f"paths.cache={cache_dir}"]
    classifier = tmp_path / "cnn"  # a classification run on the same data: the judge, reused
    dlexp.run(["model=cnn", "trainer.steps=60", *short], run_dir=str(classifier))
    run_dir = tmp_path / "gan"
    gan = ["model=gan", "model.output=sigmoid", "trainer.steps=40", "trainer.eval_every=20"]
    summary = dlexp.run([*gan, *short, f"quality.judge={classifier}"], run_dir=str(run_dir))
    assert summary["objective"]["metric"] == "val/fid"  # the default objective, val/loss, says nothing of samples
    test = summary["test"]
    assert test["real_fid"] < test["fid"] and 0 <= test["coverage"] <= np.log(10) + 1e-9
    assert summary["quality"]["judge"] == f"the best state of {classifier}"
    with pytest.raises(ConfigError, match=r"quality.judge=.* scaled as it is \(dataset.scale=standard\)"):
        dlexp.run([*gan, *short[1:], f"quality.judge={classifier}"], run_dir=str(tmp_path / "standard"))
    from dlexp.report import write_report

    write_report(str(run_dir))
    report = (run_dir / "report" / "report.md").read_text()
    assert "![samples from the prior" in report and (run_dir / "report" / "interpolation.png").exists()


def test_kl_warmup_and_free_bits_change_only_the_training_loss():
    from dlexp.tasks import Reconstruction

    kl_dims = np.array([[0.1, 2.0], [0.3, 4.0]], np.float32)  # dimension 0 under a 0.5-nat floor
    out = {"recon": np.zeros((2, 3), np.float32), "kl_dims": kl_dims, "log_sigma": np.zeros(3, np.float32)}
    x = np.full((2, 3), 0.5, np.float32)
    plain = Reconstruction(likelihood="bernoulli")
    nll = np.asarray(plain.nll(out, x))
    losses = plain.loss(out, x)
    np.testing.assert_allclose(losses, nll + kl_dims.sum(1), rtol=1e-6)  # the reported loss: the -ELBO
    warm = Reconstruction(likelihood="bernoulli", kl_warmup_steps=10)
    halfway = warm.train_losses(losses, out, x, {"step": np.int32(5)})
    np.testing.assert_allclose(halfway, nll + 0.5 * kl_dims.sum(1), rtol=1e-6)
    floor = Reconstruction(likelihood="bernoulli", free_bits=0.5)
    np.testing.assert_allclose(floor.train_losses(losses, out, x, {"step": np.int32(0)}), nll + [2.5, 4.5], rtol=1e-6)
