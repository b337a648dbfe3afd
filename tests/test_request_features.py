"""The pyfunc's per-request features (ranking/request_features.py) against the batch code path.

A RankerServer answered each request with `token_features.candidate_features` over the request
registered as rk_queries / rk_menu_tokens (about a dozen SQL statements); it now runs that SQL once
per server (`SnapshotIndex`) and one statement per request. The previous path is kept here as the
oracle (`_oracle_features`, `_oracle_recommend`: the code the server ran before): for the same
requests the feature rows must be the same (identical ids and integers, floats within 1e-9
relative), and so the ranked lists and scores. Requests cover every industry given, labeled or
mislabeled, menus of known, unknown, containing and Latin tokens, an empty or missing menu,
regions and sizes, one request or many at once, and a model logged before the basket-share tables
and the containment match (`_OLD_MODEL_PARAMS`, empty stub tables).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from recsys_assets.ranking import dataset as ds
from recsys_assets.ranking import pyfunc_model
from recsys_assets.ranking.pyfunc_model import META_FILE, RankerServer, export_serving_artifacts
from recsys_assets.ranking.token_features import candidate_features
from recsys_assets.ranking.train import train_ranker
from tests.test_candidate_features_oracle import NEAR_ZERO
from tests.test_ranking_dataset import SYN_INDUSTRIES, make_synthetic_warehouse
from tests.test_snapshot_tables import assert_same_frame

MENUS = [
    "치즈볼|양념치킨",
    "후라이드|감자튀김|치즈볼|파스타",
    "특김치찌개|김치찌개정식|된장찌개",  # known tokens inside longer words
    "알수없는메뉴|또다른메뉴",  # no known token
    "",
    None,
    "Pepperoni Pizza 12,000원|CHEESE BALL",  # Latin, a price, upper case
    "pepperonipizza|cheeseballs|라떼",  # Latin tokens inside words
    "아메리카노 라떼|케이크 빙수|비빔밥",  # multi-word items: the words count too
    "치즈볼|치즈볼|치즈볼세트",  # a repeated item
]


def _requests(seed: int, n: int) -> pd.DataFrame:
    """`n` requests: every menu of MENUS and every industry given (or missing, unknown, padded)
    in turn (each menu with several of them), random regions, sizes, confidences and ks."""
    rng = np.random.default_rng(seed)
    industries = [*SYN_INDUSTRIES, None, "", "no_such_industry", " pizza "]
    rows = []
    for i in range(n):
        rows.append(
            {
                "restaurant_id": f"X{i}",
                "industry": industries[(i + seed) % len(industries)],
                "name": ["바삭 치킨", "Pizza House", "", "한식당 김치"][rng.integers(4)],
                "menu": MENUS[i % len(MENUS)],
                "region": ["서울", "부산", "Atlantis", None][rng.integers(4)],
                "size": ["small", "LARGE ", None, "huge"][rng.integers(4)],
                "label_confidence": [None, 0.7][rng.integers(2)],
                "k": int(rng.integers(1, 30)),
            }
        )
    return pd.DataFrame(rows)


def _oracle_features(server: RankerServer, requests: pd.DataFrame):
    """The feature rows as the server computed them before: the batch path over the requests."""
    q, words, ks = server._queries(requests)
    tokens = pd.DataFrame(
        [(qid, w) for qid, menu in zip(q["restaurant_id"], words, strict=True) for w in menu],
        columns=["restaurant_id", "token"],
    ).astype(object)
    cur = server._con.cursor()
    try:
        cur.register("rk_queries", q)
        cur.register("rk_menu_tokens", tokens)
        with candidate_features(cur, server.params) as features:
            feats = cur.execute(
                f"SELECT * FROM ({features}) ORDER BY restaurant_id, product_id"
            ).df()
    finally:
        cur.close()
    return feats, q, ks


def _oracle_recommend(server: RankerServer, requests: pd.DataFrame, oracle=None) -> pd.DataFrame:
    """RankerServer.recommend as it was (pandas sorts and groups over the oracle's features)."""
    feats, q, ks = oracle or _oracle_features(server, requests)
    feats = feats.copy()
    if feats.empty:
        return pd.DataFrame(columns=list(pyfunc_model.OUTPUT_COLUMNS))
    x = feats[server.features].astype("float64").to_numpy()
    feats["score"] = server.booster.predict(x)
    feats = feats.sort_values(
        ["restaurant_id", "score", "product_id"], ascending=[True, False, True], kind="mergesort"
    )
    feats["rank"] = feats.groupby("restaurant_id", sort=False).cumcount() + 1
    qi = {qid: i for i, qid in enumerate(q["restaurant_id"])}
    feats["request_index"] = feats["restaurant_id"].map(qi)
    keep = feats["rank"].to_numpy() <= np.asarray(ks)[feats["request_index"].to_numpy()]
    feats = feats[keep]
    ids = requests["restaurant_id"].tolist()
    rids = np.array([pyfunc_model._clean_str(i) or "" for i in ids], dtype=object)
    idx = feats["request_index"].to_numpy()
    out = pd.DataFrame(
        {
            "request_index": idx.astype("int64"),
            "restaurant_id": rids[idx].tolist(),
            "industry": q["industry"].to_numpy()[idx],
            "label_confidence": q["label_confidence"].to_numpy(dtype="float64")[idx],
            "rank": feats["rank"].to_numpy(dtype="int64"),
            "product_id": feats["product_id"].astype(str).to_numpy(),
            "name": feats["product_id"].map(server.product_names).fillna("").tolist(),
            "score": feats["score"].to_numpy(dtype="float64"),
        }
    )
    return out.sort_values(["request_index", "rank"], kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """The artefacts of a ranker trained on the synthetic warehouse with some Latin menus, some
    token shares deleted (pairs one table lacks): as logged ("new"), as a model logged before the
    share tables and the containment match ("old"), and with no known token at all ("bare")."""
    root = tmp_path_factory.mktemp("rk-request")
    con = make_synthetic_warehouse(root / "w.duckdb", n_restaurants=300, seed=21)
    con.execute(
        "UPDATE restaurants SET menu = menu || '|Pepperoni Pizza|Cheese Ball' "
        "WHERE restaurant_id IN (SELECT restaurant_id FROM restaurant_industry "
        "WHERE industry = 'pizza') AND hash(restaurant_id) % 2 = 0"
    )
    dset = ds.build_ranking_dataset(con)
    con.execute("DELETE FROM rk_snap_token_share WHERE hash(token, product_id) % 5 = 0")
    trained = train_ranker(con, dset, {"num_boost_round": 30})
    export_serving_artifacts(con, trained, dset, root / "new")
    con.close()
    old = root / "old"
    shutil.copytree(root / "new", old)
    for table in pyfunc_model.ADDED_TABLES:
        (old / pyfunc_model.TABLE_FILES[table]).unlink()
    meta = json.loads((old / META_FILE).read_text(encoding="utf-8"))
    for param in pyfunc_model._OLD_MODEL_PARAMS:
        del meta["candidate_params"][param]
    (old / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    bare = root / "bare"  # a snapshot that knows no menu token
    shutil.copytree(root / "new", bare)
    for table in ("rk_snap_token", "rk_snap_token_prod", "rk_snap_token_share"):
        path = bare / pyfunc_model.TABLE_FILES[table]
        pd.read_parquet(path).head(0).to_parquet(path, index=False)
    return {"new": root / "new", "old": old, "bare": bare}


@pytest.mark.parametrize("model", ["new", "old", "bare"])
def test_each_request_gets_the_features_and_list_of_the_batch_path(serving, model):
    server = RankerServer(serving[model])
    if model == "new":
        assert server.index.inside  # the containment match is on, and Latin tokens are known
        assert {"pepperoni", "cheese ball"} <= set(server.index.tid)
    requests = _requests(seed=1, n=40)
    for i in range(len(requests)):
        one = requests.iloc[[i]].reset_index(drop=True)
        oracle = _oracle_features(server, one)
        assert_same_frame(server.features_for(one)[0], oracle[0], NEAR_ZERO)
        pd.testing.assert_frame_equal(
            server.recommend(one), _oracle_recommend(server, one, oracle), check_exact=True
        )


@pytest.mark.parametrize("model", ["new", "old", "bare"])
def test_many_requests_at_once_equal_the_batch_path(serving, model):
    server = RankerServer(serving[model])
    requests = _requests(seed=2, n=120)
    got, want = server.features_for(requests)[0], _oracle_features(server, requests)[0]
    assert len(got) > 1000 and got["n_known_tokens"].gt(1).any() == (model != "bare")
    assert got["token_share_log_lift_sum"].ne(0).any() == (model == "new")  # old: no shares
    assert_same_frame(got, want, NEAR_ZERO)
    pd.testing.assert_frame_equal(
        server.recommend(requests), _oracle_recommend(server, requests), check_exact=True
    )


def test_concurrent_requests_do_not_mix(serving):
    server = RankerServer(serving["new"])
    requests = [_requests(seed=s, n=1 + s % 3) for s in range(3, 27)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(server.recommend, requests))
    for req, got in zip(requests, answers, strict=True):
        pd.testing.assert_frame_equal(got, _oracle_recommend(server, req), check_exact=True)


def test_an_empty_request_frame_gets_no_rows(serving):
    server = RankerServer(serving["new"])
    empty = _requests(seed=0, n=0)
    assert list(server.recommend(empty).columns) == list(pyfunc_model.OUTPUT_COLUMNS)
    assert server.recommend(empty).empty
    assert_same_frame(server.features_for(empty)[0], _oracle_features(server, empty)[0])
