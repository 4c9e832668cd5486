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
    assert Image.open(gif).size == (64, 64)
    code, _, err = run(["style-mixing", "--checkpoint", str(sg2), "--rows", "1,2", "--cols", "3,4,5", "--output",
                        str(tmp_path / "m.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "m.png").size == (4 * 64, 3 * 64)
    code, _, err = run(["truncation", "--checkpoint", str(sg2), "--seeds", "0-2", "--psis", "1,0", "--output",
                        str(tmp_path / "t.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "t.png").size == (2 * 64, 3 * 64)
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
