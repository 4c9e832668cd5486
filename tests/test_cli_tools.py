"""The tool subcommands as a user runs them: video, figures, tag grids, conditional generate, compare, tgz."""
from __future__ import annotations

import tarfile

import pytest
from PIL import Image

from stylegan_anime.cli import main

SG2 = ["--model", "stylegan2", "--channel-base", "256", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16",
       "--num-fp16-res", "0"]
COMMON = ["--batch", "8", "--kimg", "0.008", "--no-progress", "--device", "cpu", "--metrics", "none"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tools_runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("STYLEGAN_ANIME_CACHE", str(base / "cache"))
    for extra in (SG2, ["--model", "cgan", "--dim", "4"]):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", "demo:16", "--outdir", str(base / "runs")] + extra + COMMON)
        assert e.value.code == 0
    yield base / "runs" / "00000-stylegan2-demo-64", base / "runs" / "00001-cgan-demo-64"
    mp.undo()


def test_video_and_figures(runs, tmp_path, capsys):
    sg2, cgan = runs
    gif = tmp_path / "v.gif"
    code, _, err = run(["video", "--checkpoint", str(sg2), "--seeds", "0,1", "--fps", "8", "--seconds", "0.5",
                        "--output", str(gif), "--device", "cpu"], capsys)
    assert code == 0, err
    assert Image.open(gif).size == (256, 256)  # each face upscaled to 256 px by default (--face-px)
    code, _, err = run(["style-mixing", "--checkpoint", str(sg2), "--rows", "1,2", "--cols", "3,4,5", "--output",
                        str(tmp_path / "m.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    w, h = Image.open(tmp_path / "m.png").size  # labelled: 256 px faces plus the label bands
    assert w > 4 * 256 and h > 3 * 256
    code, _, err = run(["truncation", "--checkpoint", str(sg2), "--seeds", "0-2", "--psis", "1,0", "--output",
                        str(tmp_path / "t.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    w, h = Image.open(tmp_path / "t.png").size
    assert w > 2 * 256 and h > 3 * 256
    code, _, err = run(["style-mixing", "--checkpoint", str(cgan), "--rows", "1", "--cols", "2", "--output",
                        str(tmp_path / "x.png"), "--device", "cpu"], capsys)
    assert code == 2 and err.startswith("error: ") and "StyleGAN2" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["video", "--checkpoint", str(sg2), "--seeds", "0,1", "--output", str(tmp_path / "v.avi"),
                        "--device", "cpu"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_tags_and_conditional_generate(runs, tmp_path, capsys):
    sg2, cgan = runs
    code, _, err = run(["tags-grid", "--checkpoint", str(cgan), "--hair", "blonde,pink", "--eye", "red,blue,green",
                        "--output", str(tmp_path / "g.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size[0] >= 3 * 64
    code, _, err = run(["generate", "--checkpoint", str(cgan), "--tags", "pink hair, black eyes", "--seeds", "0-3",
                        "--grid", str(tmp_path / "pink.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    code, _, err = run(["generate", "--checkpoint", str(cgan), "--tags", "plaid hair", "--grid", str(tmp_path / "p.png"),
                        "--device", "cpu"], capsys)
    assert code == 2 and "plaid" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["generate", "--checkpoint", str(sg2), "--tags", "pink hair", "--grid", str(tmp_path / "q.png"),
                        "--device", "cpu"], capsys)
    assert code == 2 and "tag-conditional" in err


def test_submission_tgz_and_compare(runs, tmp_path, capsys):
    sg2, cgan = runs
    tgz = tmp_path / "submission.tgz"
    code, _, err = run(["generate", "--checkpoint", str(sg2), "--count", "3", "--outdir", str(tmp_path / "sub"),
                        "--tgz", str(tgz), "--device", "cpu"], capsys)
    assert code == 0, err
    assert sorted(tarfile.open(tgz).getnames()) == ["1.jpg", "2.jpg", "3.jpg"]
    code, _, err = run(["generate", "--checkpoint", str(sg2), "--grid", str(tmp_path / "a.png"), "--tgz", str(tgz)],
                       capsys)
    assert code == 2 and "--count" in err
    code, out, err = run(["compare", str(sg2.parent), "--plot", str(tmp_path / "cmp.png")], capsys)
    assert code == 0, err
    assert "00000-stylegan2-demo-64" in out and "00001-cgan-demo-64" in out and (tmp_path / "cmp.png").exists()


# ----------------------------------------------------------------------------------------------------------
# generate: bounded seed ranges and counts, and outputs that never overwrite a file.

def _no_drawing(monkeypatch):
    """Fail the test at once if a command starts drawing images (old code would run for hours)."""
    def refuse(self, *a, **k):
        raise AssertionError("images were drawn for a request that should have been refused")
    monkeypatch.setattr("stylegan_anime.generate.Sampler.images", refuse)


def _one_error(code, err) -> str:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--seeds", "0-100000", "--grid", "{tmp}/g.png"], ["--seeds", "100,000"]),
    (["--seeds", "4294967296", "--grid", "{tmp}/g.png"], ["--seeds", "4294967295"]),
    (["--seeds", "0-3", "--cols", "0", "--grid", "{tmp}/g.png"], ["--cols"]),
    (["--seeds", "0-3", "--cols", "1000000000", "--grid", "{tmp}/g.png"], ["--cols"]),
    (["--seeds", "0-40000", "--grid", "{tmp}/g.png"], ["too large"]),  # 40,001 x 64 px: 164 M pixels
    (["--count", "100001", "--outdir", "{tmp}/out"], ["--count", "100,000"]),
    (["--count", "0", "--outdir", "{tmp}/out"], ["--count"]),
    (["--count", "-3", "--outdir", "{tmp}/out"], ["--count"]),
    (["--count", "2", "--seed", "-1", "--outdir", "{tmp}/out"], ["--seed"]),
    (["--count", "2", "--seed", "4294967295", "--outdir", "{tmp}/out"], ["--seed"]),
    (["--count", "2", "--batch", "100000", "--outdir", "{tmp}/out"], ["--batch"]),
    (["--count", "2", "--outdir", "{tmp}/out", "--tgz", "{tmp}/x.zip"], ["--tgz"]),
])
def test_generate_bounds_seeds_counts_and_sizes(args, words, tiny_runs, tmp_path, capsys, monkeypatch):
    import time
    _no_drawing(monkeypatch)
    argv = ["generate", "--checkpoint", str(tiny_runs["sg2"]), "--device", "cpu"] + [a.format(tmp=tmp_path) for a in args]
    start = time.perf_counter()
    line = _one_error(*run(argv, capsys)[::2])
    assert time.perf_counter() - start < 10
    for word in words:
        assert word in line, line
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "out").exists()


def test_generate_never_overwrites_a_file(tiny_runs, tmp_path, capsys):
    sg2 = str(tiny_runs["sg2"])
    base = ["generate", "--checkpoint", sg2, "--device", "cpu"]
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my own picture")
    line = _one_error(*run(base + ["--seeds", "0-3", "--grid", str(mine)], capsys)[::2])
    assert "already exists" in line and mine.read_bytes() == b"my own picture"

    target = tmp_path / "elsewhere.png"  # a symlink at the destination is neither followed nor replaced
    (tmp_path / "link.png").symlink_to(target)
    _one_error(*run(base + ["--seeds", "0-3", "--grid", str(tmp_path / "link.png")], capsys)[::2])
    assert not target.exists() and (tmp_path / "link.png").is_symlink()

    out = tmp_path / "out"
    out.mkdir()
    (out / "2.jpg").write_bytes(b"keep")
    line = _one_error(*run(base + ["--count", "3", "--outdir", str(out)], capsys)[::2])
    assert "2.jpg" in line and (out / "2.jpg").read_bytes() == b"keep" and not (out / "1.jpg").exists()

    tgz = tmp_path / "sub.tgz"
    tgz.write_bytes(b"old archive")
    line = _one_error(*run(base + ["--count", "2", "--outdir", str(tmp_path / "new"), "--tgz", str(tgz)], capsys)[::2])
    assert "sub.tgz" in line and tgz.read_bytes() == b"old archive" and not (tmp_path / "new").exists()

    code, _, err = run(base + ["--count", "2", "--outdir", str(tmp_path / "new"), "--tgz", str(tmp_path / "s.tgz"),
                               "--seeds", "0-1", "--grid", str(tmp_path / "g.png")], capsys)
    assert code == 0, err
    assert sorted(tarfile.open(tmp_path / "s.tgz").getnames()) == ["1.jpg", "2.jpg"]
    assert Image.open(tmp_path / "g.png").size == (128, 64)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left
