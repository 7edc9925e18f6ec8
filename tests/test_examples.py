"""Dataset examples: the mergeable top-k, correctness against brute force, crops, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli as run
from PIL import Image

from convlens.units import resolve_units
from convlens.viz.examples import TopK, examples, mine


def assert_same(a: TopK, b: TopK) -> None:
    for name in ("values", "indices", "rows", "cols"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# --- TopK: mergeable, deterministic ties ------------------------------------------------------
@pytest.mark.parametrize("largest", [True, False])
def test_topk_halves_merged_equal_whole_exactly_with_ties(largest: bool):
    gen = torch.Generator().manual_seed(0)
    units, n, k = 7, 300, 9
    values = torch.randint(0, 4, (units, n), generator=gen).float()  # heavy ties
    values[2] = 1.0  # one unit where every image ties
    values[3, 17] = float("nan")  # NaN never wins
    rows = torch.randint(0, 5, (units, n), generator=gen)
    cols = torch.randint(0, 5, (units, n), generator=gen)
    perm = torch.randperm(n, generator=gen)  # images arrive in a shuffled order

    whole = TopK.empty(units, k, largest=largest)
    for s in range(0, n, 64):
        b = perm[s : s + 64]
        whole.update(values[:, b], b, rows[:, b], cols[:, b])
    halves = []
    for part in (perm[:130], perm[130:]):  # uneven halves, different batch sizes
        t = TopK.empty(units, k, largest=largest)
        for s in range(0, len(part), 37):
            b = part[s : s + 37]
            t.update(values[:, b], b, rows[:, b], cols[:, b])
        halves.append(t)
    assert_same(halves[0].merge(halves[1]), whole)
    assert_same(halves[1].merge(halves[0]), whole)

    # The reference order: value (best first), then image index ascending.
    for u in range(units):
        v = values[u].numpy().copy()
        v[np.isnan(v)] = -np.inf if largest else np.inf
        order = np.lexsort((np.arange(n), -v if largest else v))[:k]
        assert whole.indices[u].tolist() == order.tolist()
        assert whole.rows[u].tolist() == rows[u, order].tolist()
    assert whole.indices[2].tolist() == list(range(k))  # all tie: lowest indices win


def test_topk_keeps_fewer_than_k_and_refuses_mismatched_merge():
    t = TopK.empty(2, 5).update(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([4, 9]))
    assert t.count == 2
    assert t.indices.tolist() == [[9, 4], [4, 9]]
    assert t.rows.tolist() == [[-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match="differ"):
        t.merge(TopK.empty(2, 5, largest=False))


# --- mining on a real model --------------------------------------------------------------------
def test_mining_two_shards_merged_equals_one_pass(kaggle4_lens, mnist_small):
    lens, x = kaggle4_lens, mnist_small.x_val[:240]
    units = "conv2d_1:*,conv2d_3:0-7,conv2d_4:3@2,5,dense_1:0-9,class:*"
    whole = mine(lens, units, x, k=9, batch_size=40)
    a = mine(lens, units, x[:120], k=9, batch_size=40)
    b = mine(lens, units, x[120:], k=9, batch_size=40, index_offset=120)
    assert_same(a.merge(b), whole)


def brute_force(lens, x, layer, batch, pre=False):
    """Activations of ``layer`` batch by batch (as numpy), the obvious way."""
    with torch.no_grad():
        parts = [lens.forward(x[s : s + batch], [layer], pre_activation=pre)[layer]
                 for s in range(0, len(x), batch)]  # fmt: skip
    return torch.cat(parts).numpy()


def ranked(scores: np.ndarray, k: int, largest: bool = True) -> np.ndarray:
    """Image indices of the k best scores, ties to the lower index."""
    return np.lexsort((np.arange(len(scores)), -scores if largest else scores))[:k]


def test_matches_brute_force_numpy(kaggle4_lens, mnist_small):
    lens, x, k = kaggle4_lens, mnist_small.x_val[:200], 5
    res = examples(lens, "conv2d_2:*,conv2d_3:5@3,4,dense_1:0-7", x, k=k, batch_size=64,
                   progress=False)  # fmt: skip
    acts = brute_force(lens, x, "conv2d_2", 64)  # (N, 32, 28, 28)
    flat = acts.reshape(len(x), 32, -1)
    for c in range(32):
        ex = res[f"conv2d_2:{c}"]
        best = ranked(flat[:, c].max(1), k)
        assert ex.indices.tolist() == best.tolist()
        np.testing.assert_array_equal(ex.values.numpy(), flat[best, c].max(1))
        where = flat[best, c].argmax(1)
        assert ex.locations.tolist() == np.stack([where // 28, where % 28], 1).tolist()
    a3 = brute_force(lens, x, "conv2d_3", 64)[:, 5, 3, 4]
    ex = res["conv2d_3:5@3,4"]
    assert ex.indices.tolist() == ranked(a3, k).tolist()
    assert ex.locations.tolist() == [[3, 4]] * k
    d1 = brute_force(lens, x, "dense_1", 64)
    for c in range(8):
        ex = res[f"dense_1:{c}"]
        assert ex.indices.tolist() == ranked(d1[:, c], k).tolist()
        assert ex.locations is None
        assert torch.equal(ex.crops, ex.images)  # a dense unit sees the whole image
    json.dumps(res.to_dict())


def test_bottom_k_uses_pre_activations(kaggle4_lens, mnist_small):
    lens, x, k = kaggle4_lens, mnist_small.x_val[:200], 4
    res = examples(lens, "conv2d_2:0-7,class:3", x, k=k, bottom=True, batch_size=64,
                   progress=False)  # fmt: skip
    pre = brute_force(lens, x, "conv2d_2", 64, pre=True).reshape(len(x), 32, -1)
    for c in range(8):
        ex = res[f"conv2d_2:{c}"]
        assert "pre-activation" in ex.score
        assert (ex.values < 0).all()  # a ReLU output could never be negative
        best = ranked(pre[:, c].min(1), k, largest=False)
        assert ex.indices.tolist() == best.tolist()
        np.testing.assert_array_equal(ex.values.numpy(), pre[best, c].min(1))
    logits = brute_force(lens, x, lens.logits_layer, 64, pre=True)[:, 3]
    assert res["class:3"].indices.tolist() == ranked(logits, k, largest=False).tolist()
    assert res.bottom and res.to_dict()["bottom"] is True


def test_crops_have_rf_size_and_match_the_image(kaggle4_lens, mnist_small):
    lens, x = kaggle4_lens, mnist_small.x_val[:100]
    res = examples(lens, "conv2d_1:0-3,conv2d_4:0-3,conv2d_3:1@0,0,conv2d_4:2@13,13", x, k=6,
                   progress=False)  # fmt: skip
    for ex in res:
        rf = lens.layer(ex.unit.layer).rf
        assert tuple(ex.crops.shape) == (6, 1, *rf.size)
        assert tuple(ex.crop_mask.shape) == (6, *rf.size)
        for j, (i, jj) in enumerate(ex.locations.tolist()):
            top, left, bottom, right = rf.window(i, jj)
            ct, cl, cb, cr = rf.clipped_window(i, jj, 28, 28)
            assert ex.windows[j].tolist() == [top, left, bottom, right]
            inside = ex.crops[j, :, ct - top : cb - top, cl - left : cr - left]
            assert torch.equal(inside, ex.images[j, :, ct:cb, cl:cr])
            assert torch.equal(ex.images[j], x[ex.indices[j]])
            assert int(ex.crop_mask[j].sum()) == (cb - ct) * (cr - cl)
            assert (ex.crops[j][:, ~ex.crop_mask[j]] == 0.0).all()  # background (mean 0)
    corner = res["conv2d_3:1@0,0"]
    assert not corner.crop_mask.all()  # the field of the corner neuron leaves the image
    assert corner.crop_mask[:, -1, -1].all() and not corner.crop_mask[:, 0, 0].any()


def test_split_all_indexes_train_then_val_and_bad_input(kaggle4_lens, mnist_small):
    from convlens.errors import DataError, UnitError

    res = examples(kaggle4_lens, "conv2d_1:0", mnist_small, k=3, split="all", progress=False)
    assert res.num_images == len(mnist_small.x_train) + len(mnist_small.x_val)
    assert res.train_size == len(mnist_small.x_train)
    ex = res[0]
    all_y = torch.cat([mnist_small.y_train, mnist_small.y_val])
    assert ex.labels.tolist() == all_y[ex.indices].tolist()
    with pytest.raises(DataError, match="do not fit"):
        examples(kaggle4_lens, "conv2d_1:0", torch.zeros(4, 3, 28, 28), progress=False)
    with pytest.raises(UnitError, match="conv2d_9"):
        examples(kaggle4_lens, "conv2d_9:0", mnist_small, progress=False)
    units = resolve_units(kaggle4_lens, "conv2d_1:0-1")
    assert examples(kaggle4_lens, units, mnist_small.x_val[:20], k=2, progress=False).units == units


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_writes_unit_pictures_layer_grid_and_json(kaggle4_ckpt: Path, tmp_path, capsys):
    out = tmp_path / "ex"
    argv = ["examples", str(kaggle4_ckpt), "--units", "conv2d_2:0-2,conv2d_3:4@7,7", "--k", "4",
            "--out", str(out)]  # fmt: skip
    code, stdout, _ = run(argv, capsys)
    assert code == 0, stdout
    data = json.loads((out / "examples.json").read_text())
    assert data["split"] == "val" and data["num_images"] == 500 and data["k"] == 4
    assert [u["unit"] for u in data["units"]] == [
        "conv2d_2:0", "conv2d_2:1", "conv2d_2:2", "conv2d_3:4@7,7"]  # fmt: skip
    first = data["units"][0]
    assert len(first["values"]) == len(first["indices"]) == len(first["locations"]) == 4
    assert first["values"] == sorted(first["values"], reverse=True)
    for name in ("conv2d_2/conv2d_2_0.png", "conv2d_3/conv2d_3_4_at_7_7.png",
                 "grid_conv2d_2.png", "grid_conv2d_3.png"):  # fmt: skip
        with Image.open(out / name) as im:
            assert im.width > 200 and im.height > 100


def test_cli_unknown_layer_is_one_line_exit_2(kaggle4_ckpt: Path, tmp_path, capsys):
    argv = ["examples", str(kaggle4_ckpt), "--units", "conv2d_7:*", "--out", str(tmp_path / "x")]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "conv2d_7" in err and "conv2d_1" in err
    assert not (tmp_path / "x").exists()
