"""Saving and loading a model's parameters (minidl.serialization): the round trip, without pickle, into the
arrays the optimizer holds. Files that are damaged, of the wrong kind or of the wrong model: one clear error
that names the file, and the model (and optimizer) untouched. Saving cleans up after saves that were killed
while writing."""

import os
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minidl.layers import Conv2D, Dense, Flatten, ReLU, Sequential
from minidl.optim import Adam
from minidl.serialization import FileFormatError, assign_params, check_params, load_arrays, save_arrays


def model(seed):
    """Six dense layers: twelve parameters."""
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(6):
        layers += [Dense(4, 4, rng=rng), ReLU()]
    return Sequential(*layers)


def conv_model(seed, hidden=4):
    """A convolution, a ReLU and a dense layer."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2D(1, 2, rng=rng), ReLU(), Flatten(), Dense(2 * 5 * 5, hidden, rng=rng))


@pytest.fixture
def saved(tmp_path):
    """A good file of model(0) and the bytes it holds."""
    path = tmp_path / "weights.npz"
    model(0).save(path)
    return path, path.read_bytes()


def assert_refused_untouched(path, message):
    target = model(1)
    before = {key: value.copy() for key, value in target.params.items()}
    with pytest.raises(FileFormatError, match="^" + re.escape(str(path)) + ": " + message):
        target.load(path)
    for key, value in before.items():
        np.testing.assert_array_equal(target.params[key], value, err_msg=key)


def flip_bit(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0x04
    return bytes(damaged)


def test_a_bit_flip_inside_any_member_is_a_checksum_error(saved):
    path, data = saved
    source = model(0)
    for name, param in source.params.items():
        start = data.find(param.tobytes())  # the member's array data, stored uncompressed
        assert start > 0, name
        path.write_bytes(flip_bit(data, start + param.nbytes // 2))
        assert_refused_untouched(path, "the file is damaged: a checksum does not match .*restore a good copy")


@pytest.mark.parametrize("fraction", [0.001, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_a_truncated_file_is_refused(saved, fraction):
    path, data = saved
    path.write_bytes(data[: int(len(data) * fraction)])
    assert_refused_untouched(path, "(the file is truncated or damaged|not an .npz file)")


def test_missing_an_empty_file_a_folder_and_garbage(saved, tmp_path):
    path, _ = saved
    assert_refused_untouched(tmp_path / "absent.npz", "no such file; check the path")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert_refused_untouched(empty, "the file is empty")
    assert_refused_untouched(tmp_path, "cannot be read")
    path.write_bytes(b"these bytes are no archive at all" * 10)
    assert_refused_untouched(path, r"not an .npz file \(it does not start as a zip archive\)")


def test_a_single_npy_array_is_refused(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.ones(3))
    assert_refused_untouched(path, "this is a single .npy array, not an .npz archive")


def test_object_arrays_that_need_pickle_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"dense_1.W": np.array([{"a": 1}], dtype=object)})
    assert_refused_untouched(path, "holds object arrays, which only pickle can read")


def test_an_archive_of_other_files_is_refused(tmp_path):
    path = tmp_path / "notes.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not an array")
    assert_refused_untouched(path, "holds 'readme.txt', which is not a NumPy array")


def test_errors_are_value_errors_and_good_files_still_load(saved):
    path, _ = saved
    assert issubclass(FileFormatError, ValueError)
    arrays = load_arrays(path)
    assert sorted(arrays) == sorted(model(0).params)
    text = np.array('{"epoch": 3}')  # strings load as they are (the trainer keeps its metadata so)
    save_arrays(path, {"meta": text})
    assert load_arrays(path)["meta"] == text


@pytest.mark.parametrize(
    "bad, found",
    [
        (np.array(["a", "b"]), "<U1"),
        (np.arange(16).reshape(4, 4), "int64"),
        (np.ones((4, 4), bool), "bool"),
        (np.ones((4, 4), np.complex128), "complex128"),
        ([[1.0] * 4] * 4, "list"),
    ],
)
def test_a_wrong_dtype_anywhere_changes_nothing(tmp_path, bad, found):
    """The 7th of 12 parameters is wrong: the first 6 must not have been overwritten."""
    arrays = dict(model(0).params)
    key = list(arrays)[6]
    arrays[key] = bad
    target = model(1)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(
        ValueError,
        match=rf"^here: parameter dtypes do not match the model .*{key}: model float32, "
        rf"file {found}",
    ):
        assign_params(target.params, arrays, source="here")
    for k, v in before.items():
        np.testing.assert_array_equal(target.params[k], v, err_msg=k)


def test_every_mismatch_is_listed_at_once():
    params = {"a": np.zeros(3, np.float32), "b": np.zeros((2, 2), np.float32), "c": np.zeros(1, np.float32)}
    loaded = {"a": np.zeros(4), "b": np.zeros((2, 2), np.int32), "d": np.zeros(1)}
    with pytest.raises(ValueError) as caught:
        check_params(params, loaded, source="file.npz")
    text = str(caught.value)
    assert text.startswith("file.npz: parameter names do not match the model: missing ['c'], unexpected ['d'].")
    assert "b: model float32, file int32" in text and r"a: model (3,), file (4,)" in text


def test_other_floating_dtypes_are_cast_in_place(tmp_path):
    source, target = model(0).astype(np.float64), model(1)
    held = target.params["dense_1.W"]
    source.save(tmp_path / "double.npz")
    target.load(tmp_path / "double.npz")
    assert target.params["dense_1.W"] is held and held.dtype == np.float32
    np.testing.assert_array_equal(held, source.params["dense_1.W"].astype(np.float32))


@pytest.mark.parametrize(
    "key, bad",
    [
        ("v/dense_2.W", np.full((4, 4), "x")),
        ("m/dense_6.b", np.zeros(4, np.int64)),
        ("step", np.array(3.5)),
        ("v/dense_1.b", [0.0] * 4),
    ],
)
def test_a_wrong_optimizer_state_dtype_changes_nothing(key, bad):
    network = model(0)
    optimizer = Adam(network.parameters())
    for _, _, grad in network.parameters():
        grad[...] = 1.0
    optimizer.step()
    before = optimizer.state_dict()
    state = dict(before)
    state[key] = bad
    with pytest.raises(ValueError, match=rf"Adam state '{re.escape(key)}': expected an array of"):
        optimizer.load_state_dict(state)
    for name, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# -- temporaries of interrupted saves -------------------------------------------------------------


def test_a_stale_temporary_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "weights.npz"
    stale = tmp_path / "weights.npz.k3x_9q2a.tmp"
    stale.write_bytes(b"PK\x03\x04 half of a file")
    others = [tmp_path / name for name in ("other.npz.k3x_9q2a.tmp", "weights.npz.backup", "weights.npz.a.b.tmp")]
    for other in others:
        other.write_bytes(b"keep")
    save_arrays(path, {"x": np.ones(3)})
    assert not stale.exists()
    assert all(other.exists() for other in others)
    np.testing.assert_array_equal(load_arrays(path)["x"], np.ones(3))


WRITER = """
import sys, time
import numpy as np
from minidl.serialization import save_arrays

def stalled_savez(handle, **arrays):  # write part of the archive, then hang until killed
    handle.write(b"PK\\x03\\x04" + bytes(1 << 20))
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)

np.savez = stalled_savez
save_arrays(sys.argv[1], {"x": np.zeros(3)})
"""


def start_writer(path):
    """A process stalled in the middle of save_arrays(path, ...), once it has written a partial file."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    return writer


def temporaries(path):
    return sorted(path.parent.glob(path.name + ".*.tmp"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_save_killed_mid_write_keeps_the_old_file_and_its_temporary_goes_next_time(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_arrays(path, {"x": np.full(3, 1.0)})
    writer = start_writer(path)
    try:
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert len(temporaries(path)) == 1 and temporaries(path)[0].stat().st_size > 1 << 20
    np.testing.assert_array_equal(load_arrays(path)["x"], np.full(3, 1.0))
    save_arrays(path, {"x": np.full(3, 2.0)})
    assert temporaries(path) == []
    np.testing.assert_array_equal(load_arrays(path)["x"], np.full(3, 2.0))


@pytest.mark.skipif(os.name != "posix", reason="advisory locks (fcntl) are POSIX")
def test_the_temporary_of_a_save_still_running_is_left_alone(tmp_path):
    path = tmp_path / "checkpoint.npz"
    writer = start_writer(path)
    try:
        running = temporaries(path)
        save_arrays(path, {"x": np.ones(3)})
        assert temporaries(path) == running
    finally:
        writer.kill()
        writer.wait(timeout=30)
    save_arrays(path, {"x": np.ones(3)})
    assert temporaries(path) == []


def test_save_load_round_trip(tmp_path):
    source, target = conv_model(0), conv_model(1)
    source.save(tmp_path / "weights.npz")
    target.load(tmp_path / "weights.npz")
    for (name, a, _), (_, b, _) in zip(source.parameters(), target.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    x = np.random.default_rng(2).random((3, 1, 5, 5), dtype=np.float32)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_load_keeps_the_arrays_the_optimizer_holds(tmp_path):
    source, target = conv_model(0), conv_model(1)
    held = target.params["dense_1.W"]
    source.save(tmp_path / "w.npz")
    target.load(tmp_path / "w.npz")
    assert target.params["dense_1.W"] is held
    assert target.layers[3].params["W"] is held


def test_mismatched_shapes_are_rejected_and_nothing_changes(tmp_path):
    conv_model(0, hidden=5).save(tmp_path / "other.npz")
    target = conv_model(1)
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(ValueError, match=r"dense_1.W: model \(50, 4\), file \(50, 5\)"):
        target.load(tmp_path / "other.npz")
    for key, value in before.items():
        np.testing.assert_array_equal(target.params[key], value)


def test_mismatched_names_are_rejected(tmp_path):
    Sequential(Dense(3, 3)).save(tmp_path / "dense.npz")
    with pytest.raises(ValueError, match="missing.*conv2d_1.W"):
        conv_model(0).load(tmp_path / "dense.npz")


def test_files_needing_pickle_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"conv2d_1.W": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickle"):
        conv_model(0).load(path)


def test_save_and_load_round_trip_and_name_the_file_on_a_mismatch(tmp_path):
    source, target = Sequential(Dense(2, 3, rng=0)), Sequential(Dense(2, 3, rng=1))
    source.save(tmp_path / "weights.npz")
    target.load(tmp_path / "weights.npz")
    np.testing.assert_array_equal(target.params["dense_1.W"], source.params["dense_1.W"])
    other = Sequential(Dense(2, 4, rng=2))
    before = other.params["dense_1.W"].copy()
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "weights.npz"))):
        other.load(tmp_path / "weights.npz")
    np.testing.assert_array_equal(other.params["dense_1.W"], before)
