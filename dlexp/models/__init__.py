"""Flax NNX models.

The contract dlexp relies on, so that `model._target_=my_pkg.MyNet` works:
- the constructor takes keyword arguments from the config plus, where its signature
  names them, `in_shape` (one example's shape), `num_outputs` and `rngs` (nnx.Rngs);
- `__call__(x)` maps a batch to outputs [batch, num_outputs]; if it also takes
  `rngs`, dlexp passes `nnx.Rngs(dropout=key)` with a fresh key each step;
- `model.train()` / `model.eval()` switch dropout and batch norm (standard NNX);
- a model that needs its own training task names it in a class attribute
  `task` ("gan", "autoencoder", "seq2seq"); see dlexp/tasks/__init__.py.
"""

from dlexp.models.autoencoder import Autoencoder
from dlexp.models.cnn import CNN
from dlexp.models.gan import GAN
from dlexp.models.mlp import MLP
from dlexp.models.resnet import ResNet
from dlexp.models.rnn import RNN
from dlexp.models.seq2seq import Seq2Seq
from dlexp.models.transformer import Transformer

__all__ = ["Autoencoder", "CNN", "GAN", "MLP", "ResNet", "RNN", "Seq2Seq", "Transformer"]
