"""Install stylegan-anime.

The repository keeps `baselines/` and `cuda_ops/` at the top level (the design card's layout), but they
are installed *inside* the `stylegan_anime` namespace (`stylegan_anime.baselines`,
`stylegan_anime.cuda_ops`) so that no installed name collides with another PyPI distribution
(OpenAI's `baselines`, for one).
"""
from setuptools import setup

setup(
    name="stylegan-anime",
    version="0.1.0",
    description="StyleGAN2-first anime-face GAN trainer with DCGAN/WGAN/WGAN-GP baselines on one trainer",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "stylegan_anime",
        "stylegan_anime.data",
        "stylegan_anime.training",
        "stylegan_anime.metrics",
        "stylegan_anime.stylegan2",
        "stylegan_anime.cli",
        "stylegan_anime.editing",
        "stylegan_anime.reports",
        "stylegan_anime.benchmarks",
        "stylegan_anime.benchmarks.ops",
        "stylegan_anime.explore",
        "stylegan_anime.baselines",
        "stylegan_anime.cuda_ops",
    ],
    package_dir={
        "stylegan_anime": "stylegan_anime",
        "stylegan_anime.baselines": "baselines",
        "stylegan_anime.cuda_ops": "cuda_ops",
    },
    package_data={"stylegan_anime.cuda_ops": ["*.h", "*.cpp", "*.cu"], "stylegan_anime.explore": ["static/*"]},
    install_requires=[
        "torch>=2.4",
        "numpy",
        "pillow",
        "click>=8",
        "tensorboard",
        "einops",
        "ninja",
        "tqdm",
        "scipy",
        "imageio-ffmpeg",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest>=7", "animeface>=2.0"],
        "afd": ["animeface>=2.0"],
        "faces": ["animeface>=2.0"],  # prepare-data --crop-faces
    },
    entry_points={"console_scripts": ["stylegan-anime=stylegan_anime.cli:main"]},
)
