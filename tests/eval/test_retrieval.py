"""Top-k retrieval against a brute-force reference (float64, stable argsort), every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sstl.eval import knn_int8
from sstl.eval.knn import search_torch
from sstl.eval.retrieval import (
    center_normalize,
    l2_normalize,
    nearest,
    topk_accuracy,
    video_mean,
)

BACKENDS = ("int8", "faiss", "torch")


def ranking(query, gallery):
    """``[Q, G]`` gallery indices per query: cosine similarity descending (float64), equal
    similarities in gallery order (a stable argsort)."""
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    return np.argsort(-(q @ g.T), axis=1, kind="stable")


def brute_force(query, qlab, gallery, glab, ks):
    """The documented rule, by hand: hit at k if the query's class is among the labels of its k
    first ranked gallery items."""
    order, qlab, glab = ranking(query, gallery), np.asarray(qlab), np.asarray(glab)
    return {
        k: 100.0 * np.mean([qlab[i] in glab[order[i, :k]] for i in range(len(qlab))]) for k in ks
    }


def dyadic(rows):
    """Unit vectors with entries in {0, +-1/2, +-1}: every dot product is exact in float32, so
    both backends compute bit-identical similarities whatever their summation order."""
    x = np.asarray(rows, dtype=np.float32)
    assert np.all(np.einsum("ij,ij->i", x, x) == 1.0)
    return x


@pytest.fixture
def random_set():
    rng = np.random.default_rng(0)
    query = rng.standard_normal((40, 16)).astype(np.float32) * 3.0  # not unit: normalised inside
    gallery = rng.standard_normal((120, 16)).astype(np.float32)
    return query, rng.integers(0, 5, 40), gallery, rng.integers(0, 5, 120)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_brute_force_on_random_features(random_set, backend):
    ks = (1, 5, 10, 20, 50, 120, 500)  # 50 > any class (~24 items), 500 > the gallery
    got = topk_accuracy(*random_set, ks=ks, backend=backend)
    assert got == pytest.approx(brute_force(*random_set, ks))
    assert got[1] < got[5] < got[10] < got[120] == got[500] == 100.0
    query, _, gallery, _ = random_set
    sims, idx = nearest(l2_normalize(query), l2_normalize(gallery), 30, backend)
    assert np.array_equal(idx, ranking(query, gallery)[:, :30])
    assert np.all(np.diff(sims, axis=1) <= 0)  # best first


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_ties_are_broken_by_gallery_index(backend):
    a, b, c = [1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 0]
    gallery = dyadic([a, b, a, b, a, c])
    glab = np.array([2, 0, 1, 1, 0, 3])
    # query a ranks the a copies 0, 2, 4 (sim 1), then b copies 1, 3 (1/2), then c (0)
    # query b ranks the b copies 1, 3 (sim 1), then 0, 2, 4, 5 (all 1/2)
    query = dyadic([a, a, a, b, b, b, c])
    qlab = np.array([2, 1, 0, 1, 2, 3, 0])
    for k, expected in ((1, [[0], [1]]), (2, [[0, 2], [1, 3]]), (4, [[0, 2, 4, 1], [1, 3, 0, 2]])):
        _, idx = nearest(query, gallery, k, backend)  # k = 1, 2: a tie AT the k-th place
        assert idx[[0, 3]].tolist() == expected
    ks = (1, 2, 3, 4, 6, 9)
    got = topk_accuracy(query, qlab, gallery, glab, ks=ks, backend=backend)
    assert got == pytest.approx(brute_force(query, qlab, gallery, glab, ks))
    # c ranks 5, 1, 3, 0, 2, 4. Rank of the first same-class item per query: 0 1 2 1 2 5 1
    hits = {1: 1, 2: 4, 3: 6, 4: 6, 6: 7, 9: 7}
    assert got == pytest.approx({k: 100.0 * n / 7 for k, n in hits.items()})


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_tied_duplicates_keep_the_lowest_indices(backend):
    # 1000 copies of one vector: the backends on their own keep an arbitrary subset of them (torch
    # returns copies near index 600 here); the rule keeps the first ones, at every chunk size.
    rng = np.random.default_rng(7)
    copies = dyadic([[0.5, 0.5, 0.5, 0.5]] * 1000)
    others = dyadic([[-1, 0, 0, 0]] * 20)
    gallery = np.concatenate([others[:10], copies, others[10:]])
    glab = rng.integers(0, 6, len(gallery))
    query = dyadic([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, -0.5, 0.5]] * 10)
    qlab = rng.integers(0, 6, len(query))
    ks = (1, 5, 50)
    got = topk_accuracy(query, qlab, gallery, glab, ks=ks, backend=backend)
    assert got == pytest.approx(brute_force(query, qlab, gallery, glab, ks))
    _, idx = nearest(query, gallery, 50, backend)
    assert np.all(idx == np.arange(10, 60))  # the first 50 copies, in order, for every query
    _, small = search_torch(query, gallery, 50, chunk_bytes=4 * len(gallery) * 8)  # 8-row chunks
    assert np.array_equal(small, idx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_collapsed_features_are_not_rewarded(backend):
    # Regression: a collapsed model (every clip feature the same) scored ~100% top-1 under the
    # former tie-inclusive rule. Every gallery item ties; the ranking is the gallery order, so
    # top-k is the share of queries whose class is among the classes of the k first items.
    rng = np.random.default_rng(8)
    gallery = dyadic([[0.5, -0.5, 0.5, 0.5]] * 500)
    query = gallery[:200]
    glab, qlab = rng.integers(0, 10, 500), rng.integers(0, 10, 200)
    got = topk_accuracy(query, qlab, gallery, glab, ks=(1, 5), backend=backend)
    assert got[1] == pytest.approx(100.0 * np.mean(qlab == glab[0]))
    assert got[5] == pytest.approx(100.0 * np.mean(np.isin(qlab, glab[:5])))
    assert got[1] < 20.0  # 10 classes: about 10%, not 100%


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearly_collapsed_features_score_chance(backend):
    # The demo's failure: features identical up to ~1e-7, so the similarities differ only in
    # float32 rounding. Labels are random, so no ranking can beat chance (10%) beyond noise.
    rng = np.random.default_rng(9)
    v = l2_normalize(rng.standard_normal((1, 64)))
    gallery = v + 1e-7 * rng.standard_normal((2000, 64)).astype(np.float32)
    query = v + 1e-7 * rng.standard_normal((400, 64)).astype(np.float32)
    glab, qlab = rng.integers(0, 10, 2000), rng.integers(0, 10, 400)
    got = topk_accuracy(query, qlab, gallery, glab, ks=(1, 5), backend=backend)
    noise = 100.0 * np.sqrt(0.1 * 0.9 / 400)  # binomial std of a 10% rate over 400 queries
    assert got[1] <= 10.0 + 4 * noise
    assert got[5] < 90.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_larger_than_a_class_and_than_the_gallery(backend):
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((7, 6)).astype(np.float32)
    glab = np.array([0, 0, 1, 1, 1, 2, 2])  # every class has <= 3 items
    query = rng.standard_normal((9, 6)).astype(np.float32)
    qlab = rng.integers(0, 4, 9)  # class 3 is absent from the gallery
    ks = (1, 3, 4, 7, 50)
    got = topk_accuracy(query, qlab, gallery, glab, ks=ks, backend=backend)
    assert got == pytest.approx(brute_force(query, qlab, gallery, glab, ks))
    present = 100.0 * np.mean(qlab != 3)
    assert got[7] == pytest.approx(present)  # whole gallery: every present class is a hit
    assert got[50] == got[7]


def test_int8_shortlist_equals_the_exact_ranking_across_blocks():
    # gallery sizes around the 64-item blocks (padding), k + 64 above and below the gallery size,
    # one query chunk boundary, and dims that are not a multiple of 4 (1 included)
    rng = np.random.default_rng(5)
    cases = ((63, 5, 24), (64, 50, 24), (65, 1, 1), (130, 50, 7), (1000, 20, 24), (3000, 10, 33))
    for n_gal, k, dim in cases:
        q = l2_normalize(rng.standard_normal((37, dim)).astype(np.float32))
        g = l2_normalize(rng.standard_normal((n_gal, dim)).astype(np.float32))
        st, i_t = nearest(q, g, k, "torch")
        sb, i_b = knn_int8.search_int8(q, g, min(k, n_gal), rows=16)
        np.testing.assert_array_equal(i_b, i_t, err_msg=f"G={n_gal} k={k} D={dim}")
        np.testing.assert_allclose(sb, st, atol=1e-6)


def _dense_neighbourhood(rng, n_queries=8, dim=64, dense=400, spacing=1e-5):
    """Queries whose ``dense`` best gallery items lie ``spacing`` apart in similarity, far closer
    than the int8 error (~1e-3 at 64-d), above 2000 random items."""
    query = l2_normalize(rng.standard_normal((n_queries, dim)).astype(np.float32))
    gallery = [l2_normalize(rng.standard_normal((2000, dim)).astype(np.float32))]
    for q in query.astype(np.float64):
        u = rng.standard_normal((dense, dim))
        u -= np.outer(u @ q, q)  # orthogonal to the query
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        sim = 0.5 + spacing * rng.permutation(dense)[:, None]
        gallery.append((sim * q + np.sqrt(1 - sim**2) * u).astype(np.float32))
    return query, np.concatenate(gallery)


def test_int8_check_sends_dense_neighbourhoods_to_the_exact_search(monkeypatch):
    rng = np.random.default_rng(11)
    query, gallery = _dense_neighbourhood(rng)
    exact = nearest(query, gallery, 50, "torch")
    stats = {}
    got = knn_int8.search_int8(query, gallery, 50, stats=stats)
    assert stats["exact"] == len(query)  # every query failed the check ...
    np.testing.assert_array_equal(got[1], exact[1])  # ... so the ranking is the exact one
    # the check is what makes it exact: the shortlist alone misses true top-50 items here
    monkeypatch.setattr(knn_int8, "MARGIN", 0.0)
    monkeypatch.setattr(knn_int8, "_FLOOR", -1.0)
    loose = knn_int8.search_int8(query, gallery, 50, stats=stats)
    assert stats["exact"] < len(query)
    assert not np.array_equal(loose[1], exact[1])


def test_int8_check_passes_separated_neighbours():
    # random unit features: the shortlist path answers every query itself
    rng = np.random.default_rng(12)
    query = l2_normalize(rng.standard_normal((100, 64)).astype(np.float32))
    gallery = l2_normalize(rng.standard_normal((5000, 64)).astype(np.float32))
    stats = {}
    _, got = knn_int8.search_int8(query, gallery, 20, rows=32, stats=stats)
    assert stats["exact"] == 0
    _, exact = nearest(query, gallery, 20, "torch")
    assert_same_up_to_near_ties(got, exact, query, gallery)


def test_int8_is_exact_with_spiky_rows_in_the_gallery():
    # 5% of the gallery is nearly one-hot: their blocks get ~5x coarser int8 codes (larger
    # errors), and the check must bound those blocks by their own spread
    rng = np.random.default_rng(13)
    query = l2_normalize(rng.standard_normal((64, 128)).astype(np.float32))
    gallery = rng.standard_normal((4000, 128)).astype(np.float32)
    spiky = rng.choice(4000, 200, replace=False)
    gallery[spiky, rng.integers(0, 128, 200)] += 40.0
    gallery = l2_normalize(gallery)
    sims, got = knn_int8.search_int8(query, gallery, 50, rows=16)
    ref, exact = nearest(query, gallery, 50, "torch")
    assert_same_up_to_near_ties(got, exact, query, gallery)
    np.testing.assert_allclose(sims, ref, atol=1e-6)


def assert_same_up_to_near_ties(got, exact, query, gallery, most=4):
    """The same ranking, except where two items are within float32 rounding of each other (the
    int8 re-rank's dot products and torch's matmul sum in different orders)."""
    for r, pos in zip(*np.nonzero(got != exact), strict=True):
        sims = gallery[[got[r, pos], exact[r, pos]]].astype(np.float64) @ query[r]
        assert abs(sims[0] - sims[1]) < 1e-6, (r, pos, sims)
    assert np.count_nonzero(got != exact) <= most


def test_backends_agree_on_a_larger_set_and_accept_tensors():
    rng = np.random.default_rng(3)
    q, g = rng.standard_normal((300, 32)), rng.standard_normal((2000, 32))
    ql, gl = rng.integers(0, 20, 300), rng.integers(0, 20, 2000)
    a = topk_accuracy(q, ql, g, gl, backend="faiss")
    b = topk_accuracy(torch.from_numpy(q), torch.from_numpy(ql), g, gl, backend="torch")
    c = topk_accuracy(q, ql, torch.from_numpy(g), gl, backend="int8")
    assert a == pytest.approx(b)
    assert c == pytest.approx(a)
    assert a == pytest.approx(brute_force(q, ql, g, gl, (1, 5, 10, 20, 50)))
    sf, i_f = nearest(l2_normalize(q), l2_normalize(g), 50, "faiss")
    st, i_t = nearest(l2_normalize(q), l2_normalize(g), 50, "torch")
    assert sf.shape == i_f.shape == (300, 50)
    assert np.allclose(sf, st, atol=1e-5)
    # the rankings agree except where two items are within float32 rounding of each other
    rows, cols = np.nonzero(i_f != i_t)
    assert len(rows) <= 0.01 * i_f.size
    assert np.allclose(sf[rows, cols], st[rows, cols], atol=1e-5)


def test_video_mean_protocol():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((12, 10, 8)).astype(np.float32)  # 12 videos x 10 clips
    vm = video_mean(feats)
    assert vm.shape == (12, 8)
    for n in range(12):
        assert np.allclose(vm[n], sum(feats[n, c] for c in range(10)) / 10, atol=1e-6)
    labels = np.arange(12) % 3
    got = topk_accuracy(vm[:4], labels[:4], vm[4:], labels[4:], ks=(1, 3), backend="torch")
    assert got == pytest.approx(brute_force(vm[:4], labels[:4], vm[4:], labels[4:], (1, 3)))


def test_center_normalize_protocol():
    rng = np.random.default_rng(5)
    offset = np.full(8, 4.0, np.float32)  # a shared offset makes raw cosine similarities useless
    gallery = rng.standard_normal((50, 8)).astype(np.float32) + offset
    query = rng.standard_normal((20, 8)).astype(np.float32) + offset
    q, g = center_normalize(query, gallery)
    mean = gallery.astype(np.float64).mean(0)
    for i in range(20):
        ref = (query[i] - mean) / np.linalg.norm(query[i] - mean)
        assert np.allclose(q[i], ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-5)
    raw = l2_normalize(gallery)
    assert (raw @ raw.T).min() > 0.3 and (g @ g.T).min() < -0.3  # centring removed the offset
    assert not np.allclose(query, q)  # inputs untouched, new arrays returned
    ql, gl = rng.integers(0, 4, 20), rng.integers(0, 4, 50)
    ref = brute_force(
        [x - mean for x in query.astype(np.float64)],
        ql,
        [x - mean for x in gallery.astype(np.float64)],
        gl,
        (1, 5),
    )
    assert topk_accuracy(q, ql, g, gl, ks=(1, 5)) == pytest.approx(ref)


def test_l2_normalize_keeps_unit_inputs_in_place():
    x = l2_normalize(np.random.default_rng(6).standard_normal((5, 4)))
    assert l2_normalize(x) is x  # no copy of a gallery that is already normalised
    z = l2_normalize(np.zeros((2, 4)))
    assert np.all(z == 0)


def test_errors_name_the_bad_value():
    g = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="query dim 5"):
        topk_accuracy(np.ones((2, 5)), [0, 1], g, [0, 1, 2])
    with pytest.raises(ValueError, match="query_labels"):
        topk_accuracy(np.ones((2, 4)), [0], g, [0, 1, 2])
    with pytest.raises(ValueError, match="ks"):
        topk_accuracy(np.ones((2, 4)), [0, 1], g, [0, 1, 2], ks=(0,))
    with pytest.raises(ValueError, match="backend"):
        topk_accuracy(np.ones((2, 4)), [0, 1], g, [0, 1, 2], backend="annoy")
    with pytest.raises(ValueError, match="gallery features contain NaN"):
        topk_accuracy(np.ones((2, 4)), [0, 1], np.full((3, 4), np.nan), [0, 1, 2])


# --- the protocol switches and `sstl retrieve` end to end --------------------------------------


def test_retrieval_sets_clip_and_video_mean_protocols():
    from sstl.config import RetrievalConfig
    from sstl.eval.retrieve import retrieval_sets

    gen = torch.Generator().manual_seed(0)
    test, train = torch.randn(2, 3, 4, generator=gen), torch.randn(5, 3, 4, generator=gen)
    tl, gl = torch.tensor([1, 0]), torch.tensor([0, 1, 1, 2, 0])
    q, ql, g, gll = retrieval_sets(test, tl, train, gl, RetrievalConfig(clips=3))
    assert q.shape == (6, 4) and g.shape == (15, 4)
    assert ql.tolist() == [1, 1, 1, 0, 0, 0] and gll.tolist()[:6] == [0, 0, 0, 1, 1, 1]
    assert np.allclose(q[4], l2_normalize(test[1, 1:2].numpy())[0], atol=1e-6)  # video 1 clip 1
    q, ql, g, _ = retrieval_sets(test, tl, train, gl, RetrievalConfig(protocol="video_mean"))
    assert q.shape == (2, 4) and ql.tolist() == [1, 0]
    assert np.allclose(q[0], l2_normalize(test[0].mean(0, keepdim=True).numpy())[0], atol=1e-6)
    q, _, g, _ = retrieval_sets(test, tl, train, gl, RetrievalConfig(center=True))
    ref_q, ref_g = center_normalize(test.reshape(-1, 4), train.reshape(-1, 4))
    assert np.allclose(q, ref_q) and np.allclose(g, ref_g)


def _retrieve(h, data, weights, retrieval, out):
    cfg = {
        "retrieval": {
            "clips": 3,
            "clip_len": h.clip_len,
            "crop_size": h.crop,
            "batch_size": 4,
            "workers": 0,
            "device": "cpu",
            **retrieval,
        },
        "model": h.tiny_model,
        "seed": 0,
    }
    return h.run_sstl(
        "retrieve",
        "--cfg",
        h.json(cfg),
        "--manifest",
        str(data.manifest),
        "--store",
        str(data.store),
        "--weights",
        str(weights),
        "--out",
        str(out / "metrics.json"),
        "--features-out",
        str(out / "feats.npz"),
    )


def test_retrieve_cli_scratch_clip_protocol(tiny_data, h, tmp_path):
    proc = _retrieve(h, tiny_data, "scratch", {"ks": [1, 5, 50]}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["ks"] == [1, 5, 50] and {"top1", "top5", "top50"} <= m.keys()
    assert m["num_queries"] == 3 * tiny_data.test_videos
    assert m["num_gallery"] == 3 * tiny_data.train_videos
    assert m["protocol"] == {
        "layer": "projection",
        "clips": 3,
        "clip_len": h.clip_len,
        "protocol": "clip",
        "center": False,
        "backend": "int8",
        "crop_size": h.crop,
    }
    assert m["weights"]["path"] == "scratch" and "sha" in m["git"]
    assert m["top50"] == 100.0  # k beyond the 48 gallery clips: every class is found
    f = np.load(tmp_path / "feats.npz")
    assert f["test"].shape == (tiny_data.test_videos, 3, 8) and f["train"].shape[0] == 48 // 3
    ref = topk_accuracy(
        f["test"].reshape(-1, 8),
        np.repeat(f["test_labels"], 3),
        f["train"].reshape(-1, 8),
        np.repeat(f["train_labels"], 3),
        ks=(1, 5),
    )
    assert ref[1] == pytest.approx(m["top1"]) and ref[5] == pytest.approx(m["top5"])


def test_retrieve_cli_weights_backbone_video_mean_center(
    tiny_data, pretrained_weights, h, tmp_path
):
    switches = {
        "layer": "backbone",
        "protocol": "video_mean",
        "center": True,
        "backend": "torch",
        "ks": [1, 5],
    }
    proc = _retrieve(h, tiny_data, pretrained_weights, switches, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["num_queries"] == tiny_data.test_videos and m["num_gallery"] == tiny_data.train_videos
    assert m["protocol"]["layer"] == "backbone" and m["protocol"]["center"] is True
    assert len(m["weights"]["sha256"]) == 64
    f = np.load(tmp_path / "feats.npz")
    assert f["test"].shape == (tiny_data.test_videos, 3, 32)  # pooled r3d_tiny width 4: 32-d
    q, g = center_normalize(video_mean(f["test"]), video_mean(f["train"]))
    ref = brute_force(q, f["test_labels"], g, f["train_labels"], (1, 5))
    assert m["top1"] == pytest.approx(ref[1]) and m["top5"] == pytest.approx(ref[5])


def test_retrieve_cli_rejects_unknown_settings(tiny_data, capsys, tmp_path):
    from sstl.cli import main

    for bad, name in (('{"retrieval": {"layr": "x"}}', "layr"), ('{"sed": 1}', "sed")):
        code = main(
            [
                "retrieve",
                "--cfg",
                bad,
                "--manifest",
                str(tiny_data.manifest),
                "--store",
                str(tiny_data.store),
                "--weights",
                "scratch",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        assert code == 2 and name in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
