"""The racecar §5.3 (smoke GAN) and §5.4 (stylization) examples run end to end at a tiny setting."""

import json
import os

from example_support import check_outputs, run_example

def _run(script, out, env, *flags):
    return run_example(script, out, "--preset=tiny", *flags, env=env)


def _env(tmp_path):
    # The tiny smoke set (2 plumes x 4 frames, 16x16) is simulated into a private cache.
    return {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home")}


def _check_common(results, out, pngs):
    assert results["seeds"] == [0]
    check_outputs(out, results, pngs)


def test_smoke_gan_tiny_and_resumes(tmp_path):
    out, env = tmp_path / "smoke", _env(tmp_path)
    printed = _run("smoke_gan.py", out, env)
    assert "wrote" in printed and "RR6_A" in printed and "Std_B1" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 4 and results["transfer_steps"] == 4
    assert results["data"]["test_frames"] == 4
    r = results["results"]
    for name in ("Std_A", "RR6_A"):
        assert r[name]["output_mse"][0] >= 0 and r[name]["regenerated_input_mse"][0] >= 0
    for name in ("Std_AB1", "RR6_AB1", "Std_B1"):
        assert r[name]["test_l2_mean"] >= 0 and len(r[name]["paper_table6_mean_std"]) == 2
    _check_common(results, out, ("fig8_outputs_and_inputs.png", "b1_transfer.png"))
    # A second run finds every model finished (task A weights included) and trains nothing.
    again = _run("smoke_gan.py", out, env)
    assert again.count(": cached") == 5
    assert json.loads((out / "results.json").read_text())["results"] == r


def test_stylization_tiny_and_resumes(tmp_path):
    out, env = tmp_path / "style", _env(tmp_path)
    printed = _run("stylization.py", out, env)
    assert "wrote" in printed and "RR16_A" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 3 and results["scale"]["image_size"] == 32
    for name in ("Std_A", "RR16_A"):
        r = results["results"][name]
        assert 0.0 <= r["test_accuracy"][0] <= 1.0
        assert 0.0 <= r["shapes_iou_with_source_disc"][0] <= 1.0
        assert r["upres_mse_to_sharp_after"][0] >= 0
    _check_common(results, out, ("stylization.png",))
    again = _run("stylization.py", out, env)
    assert again.count(": cached") == 2
