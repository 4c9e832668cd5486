"""The speed benchmark: timings are produced and sane, the table prints, the reference runner's plumbing."""
from __future__ import annotations

import pytest

from stylegan_anime.bench import (BenchResult, bench_data, bench_model, format_table, parse_reference_log,
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

    from stylegan_anime.bench import profile_model
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
