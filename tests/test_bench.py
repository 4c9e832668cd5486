"""The speed benchmark: timings are produced and sane, the table prints, the reference runner's plumbing."""
from __future__ import annotations

import pytest

from stylegan_anime.benchmarks.training import (BenchResult, bench_data, bench_model, format_table, parse_reference_log,
                                  reference_command, write_reference_zip)
from stylegan_anime.cli import main


def test_bench_model_times_whole_iterations():
    r = bench_model("stylegan2", 64, kimg=0.016, warmup=1, device="cpu",
                    overrides=dict(channel_base=256, channel_max=16, z_dim=16, w_dim=16, num_fp16_res=0, batch=8))
    assert r.batch == 8 and r.sec_per_kimg > 0 and r.img_per_s == pytest.approx(1000 / r.sec_per_kimg)
    assert r.peak_mem_gb > 0
    assert bench_data(64, batch=16, seconds=0.2, device="cpu") > 0


def test_table_and_cli(capsys):
    table = format_table([BenchResult("stylegan2", 128, 32, 0.8123, 1231.0, 5.5, "x")])
    assert "s/kimg" in table and "0.812" in table and "1231.0" in table
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "dcgan", "--sizes", "64", "--kimg", "0.016", "--warmup", "1", "--device", "cpu"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert out.out.splitlines()[0].startswith("# CPU") and "dcgan" in out.out
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "nope"])
    assert e.value.code == 2 and "unknown nope" in capsys.readouterr().err


def test_reference_plumbing(tmp_path, capsys):
    log = ("tick 0     kimg 0.0      time 25s     sec/tick 4.1     sec/kimg 128.5   maintenance 21  gpumem 4.71\n"
           "tick 1     kimg 4.0      time 31s     sec/tick 5.9     sec/kimg 1.48    maintenance 0.0 gpumem 5.32\n"
           "tick 2     kimg 8.0      time 37s     sec/tick 5.8     sec/kimg 1.45    maintenance 0.0 gpumem 5.32\n")
    assert parse_reference_log(log) == (1.45, 5.32)
    assert parse_reference_log("no ticks here") is None
    cmd = reference_command(tmp_path, tmp_path / "d.zip", tmp_path / "o", 32, 8)
    assert cmd[1].endswith("train.py") and "--cfg=auto" in cmd and "--batch=32" in cmd and "--aug=noaug" in cmd
    import zipfile
    z = zipfile.ZipFile(write_reference_zip(tmp_path / "d.zip", 64, count=3))
    assert sorted(z.namelist()) == ["00000.png", "00001.png", "00002.png", "dataset.json"]
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "stylegan2", "--sizes", "64", "--kimg", "0.001", "--warmup", "0", "--device", "cpu",
              "--reference", str(tmp_path)])
    assert e.value.code == 2 and "no train.py" in capsys.readouterr().err


def test_profile_names_each_phase_and_writes_table_and_trace(tmp_path, capsys):
    import json

    from stylegan_anime.benchmarks.training import profile_model
    tiny = dict(channel_base=256, channel_max=16, z_dim=16, w_dim=16, num_fp16_res=0, batch=4, r1_interval=2,
                pl_interval=2)
    table, trace = profile_model("stylegan2", 64, tmp_path, iterations=2, warmup=1, device="cpu", overrides=tiny)
    assert "aten::" in table and "self_cpu_time_total" in table
    assert (tmp_path / "profile-stylegan2-64.txt").read_text().startswith("# stylegan2 at 64 px, batch 4")
    names = {e.get("name") for e in json.loads(trace.read_text())["traceEvents"]}
    # two iterations with both regularisers due every 2nd: every phase shows up as a named range
    assert {"phase:G", "phase:Greg", "phase:D", "phase:Dreg"} <= names
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "dcgan", "--sizes", "64", "--warmup", "0", "--device", "cpu", "--profile",
              str(tmp_path / "cli"), "--profile-iterations", "1"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert "Self CPU" in out.out and (tmp_path / "cli" / "profile-dcgan-64.trace.json").is_file()
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "dcgan", "--profile", str(tmp_path), "--profile-iterations", "0"])
    assert e.value.code == 2 and "--profile-iterations" in capsys.readouterr().err


def test_bench_sizes_take_every_power_of_two_from_32_to_1024(capsys):
    """Issue #20: `bench --sizes` accepts 32 ... 1024 (the old list took 64 and 128 only); defaults unchanged."""
    from stylegan_anime.benchmarks.training import bench_plan
    assert bench_plan(True)[0] == [64, 128] and bench_plan(False)[0] == [64]
    assert bench_plan(True, "32,256,1024,32")[0] == [32, 256, 1024]
    assert bench_plan(False, "512", preset="cpu")[0] == [512]
    for bad in ("16", "2048", "96", "x", ","):
        with pytest.raises(ValueError, match="--sizes"):
            bench_plan(True, bad)
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "dcgan", "--sizes", "96", "--device", "cpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: --sizes") and err.count("\n") == 1


def test_each_row_is_printed_as_soon_as_it_is_measured(monkeypatch, capsys):
    """A later case that runs past its time limit must not take the rows already measured with it."""
    import stylegan_anime.benchmarks.training as B
    seen = []

    def fake_bench_model(name, size, **kw):
        out = capsys.readouterr().out  # what was printed before this case started
        seen.append((name, size, out))
        if len(seen) == 3:
            raise KeyboardInterrupt  # the third case is killed
        return BenchResult(name, size, 8, 1.0 + len(seen), 100.0, 0.5)

    monkeypatch.setattr(B, "bench_model", fake_bench_model)
    monkeypatch.setattr(B, "bench_data", lambda *a, **k: 1.0)
    with pytest.raises((SystemExit, KeyboardInterrupt)):
        main(["bench", "--models", "dcgan,wgan", "--sizes", "64,128", "--device", "cpu"])
    # the flags line and the heading come first, each row before the next case starts
    assert "# ours:      cudnn.benchmark True, TF32 matmul False, TF32 cudnn False" in seen[0][2]
    assert seen[0][2].rstrip().splitlines()[-1].startswith("-----")
    assert seen[1][2].splitlines() == [format_table([BenchResult("dcgan", 64, 8, 2.0, 100.0, 0.5)]).splitlines()[-1]]
    assert seen[2][2].startswith("wgan ") and "3.000" in seen[2][2]


FAKE_NV_TRAIN = r'''
import os, sys
print("argv " + " ".join(sys.argv[1:]))
print("TORCH_EXTENSIONS_DIR " + os.environ["TORCH_EXTENSIONS_DIR"])
if os.environ.get("FAKE_NV_FALLBACK"):
    print('Setting up PyTorch plugin "bias_act_plugin"... Failed!')
    sys.stderr.write("/x/torch_utils/ops/bias_act.py:50: UserWarning: Failed to build CUDA kernels for bias_act. "
                     "Falling back to slow reference implementation. Details:\n\nTraceback ...\n")
    print('Setting up PyTorch plugin "upfirdn2d_plugin"... Failed!')
    sys.stderr.write("UserWarning: Failed to build CUDA kernels for upfirdn2d. Falling back to slow reference "
                     "implementation. Details:\n")
else:
    print('Setting up PyTorch plugin "bias_act_plugin"... Done.')
print("tick 0     kimg 0.0      time 25s     sec/tick 4.1     sec/kimg 128.5   maintenance 21  gpumem 4.71")
print("tick 1     kimg 4.0      time 31s     sec/tick 5.9     sec/kimg 2.00    maintenance 0.0 gpumem 5.32")
'''


def test_reference_with_slow_ops_is_labelled_and_claims_no_speedup(tmp_path, monkeypatch, capsys):
    """The reference's captured log: a fallback to its slow ops labels the row; its flags match ours; its plugins
    are built in a fresh TORCH_EXTENSIONS_DIR (never the user's, where a killed build's lock may sit)."""
    import stylegan_anime.benchmarks.training as B
    from stylegan_anime.benchmarks.training import reference_problems, run_reference
    checkout = tmp_path / "nv"
    checkout.mkdir()
    (checkout / "train.py").write_text(FAKE_NV_TRAIN)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "stale"))
    monkeypatch.setattr(B, "check_reference", lambda path: checkout)  # no GPU here
    monkeypatch.setattr(B, "bench_data", lambda *a, **k: 1.0)
    monkeypatch.setattr(B, "bench_model", lambda name, size, **k: BenchResult(name, size, 16, 1.0, 1000.0, 1.0))

    ok = run_reference(checkout, 64, batch=16, kimg=4, log_path=tmp_path / "ref.log")
    assert ok.problems == [] and ok.note == "reference" and ok.sec_per_kimg == 2.0
    log = (tmp_path / "ref.log").read_text()
    assert "--nobench=False --allow-tf32=False" in log and "--batch=16" in log
    assert f"TORCH_EXTENSIONS_DIR {tmp_path / 'stale'}" not in log

    monkeypatch.setenv("FAKE_NV_FALLBACK", "1")
    slow = run_reference(checkout, 64, batch=16, kimg=4)
    assert slow.problems == ["slow reference ops for bias_act, upfirdn2d (its CUDA build failed)"]
    assert slow.note.startswith("NOT COMPARABLE: slow reference ops")
    assert reference_problems('Setting up PyTorch plugin "x_plugin"... Failed!') == ["plugin build failed: x_plugin"]

    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "stylegan2", "--sizes", "64,128", "--device", "cpu", "--reference", str(checkout),
              "--reference-log", str(tmp_path / "cli.log")])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert "# reference: cudnn.benchmark True, TF32 matmul False, TF32 cudnn False" in out.out
    rows = [ln for ln in out.out.splitlines() if ln.startswith("stylegan2-ada-pytorch")]
    assert len(rows) == 2 and all("NOT COMPARABLE" in r for r in rows) and "faster" not in out.out
    assert out.err.count("warning: the reference's log shows slow reference ops") == 2
    dirs = {ln.split(" ", 1)[1] for ln in (tmp_path / "cli.log").read_text().splitlines()
            if ln.startswith("TORCH_EXTENSIONS_DIR ")}
    assert len(dirs) == 1 and str(tmp_path / "stale") not in dirs  # one fresh dir for the command's sizes

    monkeypatch.delenv("FAKE_NV_FALLBACK")
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "stylegan2", "--sizes", "64", "--device", "cpu", "--reference", str(checkout)])
    assert "reference; ours is 2.00x faster" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "--sizes", "64", "--device", "cpu", "--reference", str(checkout), "--reference-only"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "# ours" not in out and "timing dcgan" not in out
    assert [ln.split()[:3] for ln in out.splitlines() if ln.startswith("stylegan2")] == [
        ["stylegan2-ada-pytorch", "64", str(B.bench_batch("stylegan2", 64, {"preset": "cpu"}))]]


def _gpu_checks_plan(tmp_path, *args, budget=None):
    import os
    import subprocess
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, GPU_CHECKS_DRY="1")
    if budget is not None:
        env["GPU_CHECKS_BUDGET"] = str(budget)
    proc = subprocess.run(["bash", str(repo / "tools" / "gpu_checks.sh"), str(tmp_path / "out"), *args], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    parts = [ln for ln in proc.stdout.splitlines() if ln.startswith(("+ [", "- "))]
    return proc.stdout, parts


def test_gpu_checks_first_and_second_fit_their_slots(tmp_path):
    """The plan of `tools/gpu_checks.sh OUT first|second` (GPU_CHECKS_DRY=1 prints each part, runs none): the
    order the issue asks for, every limit cut to the 285 s budget, few small files under OUT."""
    import re
    out, parts = _gpu_checks_plan(tmp_path, "first")
    commands = [re.sub(r"^\+ \[limit \d+s, at \d+s\] ", "", p) for p in parts]
    order = ["stylegan-anime doctor", "python tools/gpu_smoke.py build", "tests/test_ops_cuda.py -k gpu_only",
             "python tools/gpu_smoke.py smoke", "python tools/gpu_smoke.py parity",
             'tests/test_ops_cuda.py -k not gpu_only']
    found = [next(i for i, c in enumerate(commands) if want in c) for want in order]
    assert found == sorted(found), commands
    limits = [int(x) for x in re.findall(r"^\+ \[limit (\d+)s", out, re.M)]
    assert limits and max(limits) <= 285
    second, parts2 = _gpu_checks_plan(tmp_path, "second", "/ref")
    commands2 = [re.sub(r"^\+ \[limit \d+s, at \d+s\] ", "", p) for p in parts2]
    assert [("--amp bf16" in c, "--reference-only" in c) for c in commands2] == [(False, False), (True, False),
                                                                                 (False, True)]
    assert "--reference /ref" in commands2[2] and f"--reference-log {tmp_path / 'out'}/reference.log" in commands2[2]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["first.log", "second.log"]  # <= 8 files come back from a lent machine
    _, skipped = _gpu_checks_plan(tmp_path, "first", budget=3)
    assert skipped and all(p.startswith("- [no time left") for p in skipped)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the CPU dry run of tools/gpu_smoke.py")
def test_gpu_smoke_parts_run_or_skip_on_a_cpu(capsys):
    """gpu_checks' Python parts without a GPU: build and parity skip, the smoke run trains a tiny network for a
    step with the first-step report and checks every regulariser ran."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("gpu_smoke", Path(__file__).resolve().parents[1] / "tools" /
                                                  "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    assert smoke.main(["build"]) == 0 and smoke.main(["parity"]) == 0
    out = capsys.readouterr().out
    assert "build: skipped: no CUDA GPU" in out and "parity: skipped" in out
    assert smoke.main(["smoke"]) == 0
    out = capsys.readouterr().out
    assert "first step: ops: bias_act ref" in out and "first step: gradients: G finite, Greg finite" in out
    assert "smoke: iteration 0: G " in out and out.rstrip().endswith("smoke: ok")
