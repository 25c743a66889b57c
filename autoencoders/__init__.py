"""The study's autoencoders built on minidl: architectures, models and a resumable trainer.

The public API::

    from autoencoders import (Autoencoder, SparseAutoencoder, ContractiveAutoencoder,
                              VariationalAutoencoder, Trainer, TrainingConfig)

Each class's docstring has a runnable example (the test suite runs them).
"""

from autoencoders.architectures import conv_decoder, conv_encoder, vae_decoder, vae_encoder
from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder, VariationalAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig, TrainingDiverged

__all__ = [
    "Autoencoder",
    "SparseAutoencoder",
    "ContractiveAutoencoder",
    "VariationalAutoencoder",
    "Trainer",
    "TrainingConfig",
    "TrainingDiverged",
    "conv_encoder",
    "conv_decoder",
    "vae_encoder",
    "vae_decoder",
]
