"""How good a generative model's samples are, and how much of its input a VAE uses.

`judge.py` trains (or reuses) a small classifier on the run's labelled data; `frechet.py`
turns its penultimate features of real and generated samples into a Fréchet distance
(FID-style), its confidence and its class coverage. The GAN and autoencoder tasks add
these to their val / test metrics (`attach.py`).
"""
