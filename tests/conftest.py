"""Fixtures for running the main job as a new user would: an empty cache, no network, data present or not."""

import numpy as np
import pytest

from experiments import datasets


@pytest.fixture
def new_user(tmp_path, monkeypatch):
    """A fresh machine: the working directory is tmp_path, the cache is empty, MINIDL_DATA is unset and
    nothing can be downloaded. Returns a function ``data(mnist=..., frey=...)`` that makes each dataset
    found (small random arrays in its place, so that no test needs the real files) or unavailable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIDL_DATA", raising=False)

    def no_network(*args, **kwargs):
        raise datasets.DatasetError("no network (test)")

    monkeypatch.setattr(datasets, "download", no_network)
    rng = np.random.default_rng(0)
    mnist = (rng.random((300, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 300).astype(np.uint8),
             rng.random((150, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 150).astype(np.uint8))
    faces = rng.random((120, 1, 28, 20), dtype=np.float32)

    def data(mnist_found: bool = True, frey_found: bool = True) -> None:
        def loader(found, value, name):
            def load(data_dir=None, *args, **kwargs):
                if data_dir is not None or not found:  # through the real search for a named folder
                    return real[name](data_dir, *args, **kwargs)
                return value
            return load
        monkeypatch.setattr(datasets, "load_mnist", loader(mnist_found, mnist, "mnist"))
        monkeypatch.setattr(datasets, "load_frey_faces", loader(frey_found, faces, "frey"))

    real = {"mnist": datasets.load_mnist, "frey": datasets.load_frey_faces}
    data(False, False)
    return data
