"""stylegan-anime: a StyleGAN2-first GAN trainer for anime faces, with classic baselines on one trainer."""

__version__ = "0.1.0"
