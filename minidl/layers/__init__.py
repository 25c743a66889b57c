"""Layers: each a class with ``forward`` and ``backward`` side by side (see :mod:`minidl.layers.base`)."""

from minidl.layers.activations import Identity, ReLU, Sigmoid, Tanh, sigmoid
from minidl.layers.base import Layer
from minidl.layers.conv import Conv2D, Conv2DTranspose
from minidl.layers.dense import Dense
from minidl.layers.pool import MaxPool2D
from minidl.layers.sequential import Sequential
from minidl.layers.shape import Flatten, Reshape, ZeroPad2D

__all__ = [
    "Layer",
    "Dense",
    "Conv2D",
    "Conv2DTranspose",
    "MaxPool2D",
    "ZeroPad2D",
    "Flatten",
    "Reshape",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Identity",
    "Sequential",
    "sigmoid",
]
