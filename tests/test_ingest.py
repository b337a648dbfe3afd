"""File -> DuckDB ingest: row checks and quarantine, whole-file errors, idempotency, atomicity."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import duckdb
import pytest

from recsys_assets.warehouse import ingest, reader, tables
from recsys_assets.warehouse.ingest import (
    IngestError,
    find_source,
    ingest_orders,
    ingest_products,
    ingest_restaurants,
)

R_HEADER = "restaurant_id,name,menu,signup_date"
P_HEADER = "product_id,name,category,unit_price"
O_HEADER = "order_id,restaurant_id,product_id,quantity,ordered_at"

GOOD_RESTAURANTS = [
    "r1,교촌치킨,후라이드|양념,2024-01-02",
    "r2,김밥천국,김밥|라면,2024-01-03",
]
GOOD_PRODUCTS = ["p1,닭 10호,meat,12000", "p2,밀가루,grain,0"]


@pytest.fixture
def con(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield c
    c.close()


def write(
    path: Path, lines: list[str], *, newline: str = "\n", bom: bool = False, encoding: str = "utf-8"
) -> Path:
    text = newline.join(lines) + newline
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path


def rejects(con, table: str) -> list[tuple[int, str]]:
    return con.execute(
        "SELECT row_number, reason FROM rejected_rows WHERE table_name = ? ORDER BY row_number",
        [table],
    ).fetchall()


def ids(con, table: str, col: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT {col} FROM {table} ORDER BY {col}").fetchall()]


def load_dims(con, tmp_path: Path) -> None:
    ingest_restaurants(con, write(tmp_path / "restaurants.csv", [R_HEADER, *GOOD_RESTAURANTS]))
    ingest_products(con, write(tmp_path / "products.csv", [P_HEADER, *GOOD_PRODUCTS]))


# ------------------------------------------------------------------------------------- find_source


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_find_source_accepts_each_format(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"orders{suffix}").write_bytes(b"x")
    (tmp_path / "products.csv").write_bytes(b"x")  # other sources do not interfere
    assert find_source(tmp_path, "orders") == tmp_path / f"orders{suffix}"


def test_find_source_missing_names_folder(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=str(tmp_path)):
        find_source(tmp_path, "products")


def test_find_source_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "products.csv").write_bytes(b"x")
    (tmp_path / "products.parquet").write_bytes(b"x")
    with pytest.raises(IngestError, match=r"products\.csv.*products\.parquet"):
        find_source(tmp_path, "products")


# ------------------------------------------------------------------------------ bad rows, per kind

RESTAURANT_BAD = [
    (",이름,메뉴,2024-01-01", "missing_id"),
    ("r1,중복집,메뉴,2024-01-01", "duplicate_id"),
    ("r\x009,이름,메뉴,2024-01-01", "bad_id"),  # NUL byte
    ("r1\x00,이름,메뉴,2024-01-01", "bad_id"),  # would be a second, invisible "r1"
    ("r\u200b9,이름,메뉴,2024-01-01", "bad_id"),  # zero-width space
    ("r9,  ,메뉴,2024-01-01", "missing_name"),
    ("r9,이름,메뉴,2024-13-45", "bad_date"),
    ("r9,이름,메뉴,0202-01-01", "bad_date"),
    ("r9,이름,메뉴,", "bad_date"),
    ("r9,이름,메뉴,infinity", "bad_date"),  # DuckDB reads it; year() of it is NULL
    ("r9,이름,메뉴,-infinity", "bad_date"),
]


@pytest.mark.parametrize(("bad", "reason"), RESTAURANT_BAD)
def test_restaurant_bad_row_is_quarantined(con, tmp_path: Path, bad: str, reason: str) -> None:
    f = write(
        tmp_path / "restaurants.csv", [R_HEADER, GOOD_RESTAURANTS[0], bad, GOOD_RESTAURANTS[1]]
    )
    res = ingest_restaurants(con, f)
    assert rejects(con, "restaurants") == [(2, reason)]
    assert ids(con, "restaurants", "restaurant_id") == ["r1", "r2"]
    # The duplicate keeps the first occurrence, not the later one.
    first = con.execute("SELECT name FROM restaurants WHERE restaurant_id='r1'").fetchone()[0]
    assert first == "교촌치킨"
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (3, 2, 1)
    assert res.rejected_by_reason == {reason: 1}
    source, raw = con.execute("SELECT source_file, raw_row FROM rejected_rows").fetchone()
    assert source == str(f)
    assert json.loads(raw)["menu"] == "메뉴"


def test_restaurant_size_column_optional_and_validated(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER + ",size,region,description",
            "r1,a,m,2024-01-01,Small,서울,좋은 집",
            "r2,b,m,2024-01-01,huge,,",
            "r3,c,m,2024-01-01,,,",
        ],
    )
    ingest_restaurants(con, f)
    assert rejects(con, "restaurants") == [(2, "bad_size")]
    assert con.execute(
        "SELECT restaurant_id, size, region, description FROM restaurants ORDER BY 1"
    ).fetchall() == [("r1", "small", "서울", "좋은 집"), ("r3", None, None, None)]


@pytest.mark.parametrize("column", ["name", "menu", "description"])
def test_restaurant_oversized_text(con, tmp_path: Path, column: str) -> None:
    values = {"name": "이름", "menu": "메뉴", "description": "설명"}
    values[column] = "가" * 11  # 11 characters (33 bytes): the limit is on characters
    ok = {"name": "가" * 10, "menu": "나" * 10, "description": "다" * 10}
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER + ",description",
            f"r1,{ok['name']},{ok['menu']},2024-01-01,{ok['description']}",
            f"r2,{values['name']},{values['menu']},2024-01-01,{values['description']}",
        ],
    )
    ingest_restaurants(con, f, max_text_chars=10)
    assert rejects(con, "restaurants") == [(2, "oversized_text")]
    assert ids(con, "restaurants", "restaurant_id") == ["r1"]


PRODUCT_BAD = [
    (",x,cat,1", "missing_id"),
    ("p1,again,cat,1", "duplicate_id"),
    ("p\x1b9,x,cat,1", "bad_id"),  # ESC
    ("p" + "9" * 201 + ",x,cat,1", "bad_id"),  # longer than MAX_ID_CHARS
    ("p9,,cat,1", "missing_name"),
    ("p9,x,,1", "missing_category"),
    ("p9,x,cat,abc", "bad_number"),
    ("p9,x,cat,nan", "bad_number"),
    ("p9,x,cat,", "bad_number"),
    ("p9,x,cat,-0.5", "negative_price"),
    ("p9," + "x" * 21 + ",cat,1", "oversized_text"),
]


@pytest.mark.parametrize(("bad", "reason"), PRODUCT_BAD)
def test_product_bad_row_is_quarantined(con, tmp_path: Path, bad: str, reason: str) -> None:
    f = write(tmp_path / "products.csv", [P_HEADER, GOOD_PRODUCTS[0], GOOD_PRODUCTS[1], bad])
    res = ingest_products(con, f, max_text_chars=20)
    assert rejects(con, "products") == [(3, reason)]
    assert con.execute("SELECT product_id, unit_price FROM products ORDER BY 1").fetchall() == [
        ("p1", 12000.0),
        ("p2", 0.0),
    ]  # zero price is allowed
    assert res.rejected_by_reason == {reason: 1}


ORDER_BAD = [
    ("o9,r1,,1,2024-02-01 10:00:00", "missing_id"),
    (",r1,p1,1,2024-02-01 10:00:00", "missing_id"),
    ("o1,r1,p1,5,2024-02-01 11:00:00", "duplicate_id"),
    ("o9\x00,r1,p1,1,2024-02-01 10:00:00", "bad_id"),
    ("o9,r1\x00,p1,1,2024-02-01 10:00:00", "bad_id"),  # was unknown_restaurant
    ("o9,r1,p1\u2028,1,2024-02-01 10:00:00", "bad_id"),
    ("o9,r1,p1,many,2024-02-01 10:00:00", "bad_number"),
    ("o9,r1,p1,1e308,2024-02-01 10:00:00", "bad_number"),
    ("o9,r1,p1,inf,2024-02-01 10:00:00", "bad_number"),
    ("o9,r1,p1,1000000.5,2024-02-01 10:00:00", "bad_number"),  # above the default max quantity
    ("o9,r1,p1,0,2024-02-01 10:00:00", "non_positive_quantity"),
    ("o9,r1,p1,-2,2024-02-01 10:00:00", "non_positive_quantity"),
    ("o9,r1,p1,1,yesterday", "bad_timestamp"),
    ("o9,r1,p1,1,1900-01-01 00:00:00", "bad_timestamp"),
    ("o9,r1,p1,1,infinity", "bad_timestamp"),  # was stored as 9999-12-31
    ("o9,r1,p1,1,-infinity", "bad_timestamp"),
    ("o9,r404,p1,1,2024-02-01 10:00:00", "unknown_restaurant"),
    ("o9,r1,p404,1,2024-02-01 10:00:00", "unknown_product"),
]


@pytest.mark.parametrize(("bad", "reason"), ORDER_BAD)
def test_order_bad_row_is_quarantined(con, tmp_path: Path, bad: str, reason: str) -> None:
    load_dims(con, tmp_path)
    f = write(
        tmp_path / "orders.csv",
        [
            O_HEADER,
            "o1,r1,p1,2,2024-02-01 10:00:00",
            "o1,r1,p2,1.5,2024-02-01T10:00:00",  # same order, another line: fine
            bad,
            "o2,r2,p1,1,2023-06-01 09:00:00",  # before r2's signup: kept, not rejected
        ],
    )
    res = ingest_orders(con, f)
    assert rejects(con, "orders") == [(3, reason)]
    loaded = con.execute("SELECT order_id, product_id, quantity FROM orders ORDER BY 1, 2")
    assert loaded.fetchall() == [("o1", "p1", 2.0), ("o1", "p2", 1.5), ("o2", "p1", 1.0)]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (4, 3, 1)


def test_absurd_quantities_never_reach_the_stats(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    f = write(
        tmp_path / "orders.csv",
        [
            O_HEADER,
            "o1,r1,p1,1e308,2024-02-01 10:00:00",
            "o2,r2,p1,1e308,2024-02-01 10:00:00",
            "o3,r1,p1,40,2024-02-01 10:00:00",
            "o4,r2,p1,50,2024-02-01 10:00:00",
            "o5,r1,p2,51,2024-02-01 10:00:00",
        ],
    )
    res = ingest_orders(con, f, max_quantity=50)  # the bound is a setting (RECSYS_MAX_QUANTITY)
    assert res.rejected_by_reason == {"bad_number": 3}
    assert rejects(con, "orders") == [(1, "bad_number"), (2, "bad_number"), (5, "bad_number")]
    con.execute(
        "CREATE TABLE restaurant_industry AS "
        "SELECT restaurant_id, 'chicken' AS industry FROM restaurants"
    )
    tables.build_industry_product_stats(con)
    assert con.execute("SELECT product_id, quantity FROM industry_product_stats").fetchall() == [
        ("p1", 90.0)
    ]


def test_timestamp_offsets_are_honoured_and_stored_as_korea_time(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    f = write(
        tmp_path / "orders.csv",
        [
            O_HEADER,
            "o1,r1,p1,1,2024-05-01 23:30+09:00",
            "o2,r1,p1,1,2024-05-01 23:30Z",
            "o3,r1,p1,1,2024-05-01 23:30-05:00",
            "o4,r1,p1,1,2024-05-01 23:30",  # no offset: Korea time already, kept as written
            "o5,r1,p1,1,2024-05-01T23:30:00.5+05:30",
            "o6,r1,p1,1,2024-05-01 23:30 XYZ",  # an unknown zone is not silently dropped
        ],
    )
    con.execute("SET TimeZone = 'America/New_York'")
    res = ingest_orders(con, f)
    assert ingest.STORED_UTC_OFFSET == "+09:00"
    assert con.execute("SELECT order_id, ordered_at FROM orders ORDER BY 1").fetchall() == [
        ("o1", datetime.datetime(2024, 5, 1, 23, 30)),
        ("o2", datetime.datetime(2024, 5, 2, 8, 30)),
        ("o3", datetime.datetime(2024, 5, 2, 13, 30)),
        ("o4", datetime.datetime(2024, 5, 1, 23, 30)),
        ("o5", datetime.datetime(2024, 5, 2, 3, 0, 0, 500000)),
    ]
    assert res.rejected_by_reason == {"bad_timestamp": 1}
    # The session's own time zone is left as it was.
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/New_York"


def test_signup_date_with_an_offset_is_the_korean_calendar_day(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER,
            "r1,a,m,2024-01-01T23:30:00-05:00",
            "r2,b,m,2024-01-01 23:30",
            "r3,c,m,2024-01-01",
        ],
    )
    ingest_restaurants(con, f)
    assert con.execute(
        "SELECT restaurant_id, signup_date FROM restaurants ORDER BY 1"
    ).fetchall() == [
        ("r1", datetime.date(2024, 1, 2)),
        ("r2", datetime.date(2024, 1, 1)),
        ("r3", datetime.date(2024, 1, 1)),
    ]


def test_orders_need_dimension_tables(con, tmp_path: Path) -> None:
    f = write(tmp_path / "orders.csv", [O_HEADER, "o1,r1,p1,1,2024-02-01 10:00:00"])
    with pytest.raises(IngestError, match="restaurants"):
        ingest_orders(con, f)


def test_row_number_counts_records_not_lines(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER + ",description",
            'r1,a,m,2024-01-01,"여러 줄\n설명\n입니다"',
            "r1,b,m,2024-01-01,",
        ],
    )
    ingest_restaurants(con, f)
    assert rejects(con, "restaurants") == [(2, "duplicate_id")]
    assert (
        con.execute("SELECT description FROM restaurants").fetchone()[0] == "여러 줄\n설명\n입니다"
    )


# --------------------------------------------------------------------------- formats and encodings


def test_a_3_mb_menu_is_one_oversized_row_not_a_broken_file(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER,
            GOOD_RESTAURANTS[0],
            f"r3,큰집,{'메뉴' * 1_500_000},2024-01-02",
            GOOD_RESTAURANTS[1],
        ],
    )
    assert f.stat().st_size > 9_000_000  # 3 M characters, 9 MB of UTF-8: over DuckDB's default
    res = ingest_restaurants(con, f)
    assert (res.rows_read, res.rows_loaded) == (3, 2)
    assert rejects(con, "restaurants") == [(2, "oversized_text")]


def test_a_line_over_the_reader_limit_names_the_cause_first(
    con, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1 << 20)
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER,
            GOOD_RESTAURANTS[0],
            f"r3,큰집,{'m' * 2_000_000},2024-01-02",
            GOOD_RESTAURANTS[1],
        ],
    )
    with pytest.raises(IngestError) as err:
        ingest_restaurants(con, f)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{f}: line 3 is longer than the 1 MB limit (2,000,0")
    assert "unclosed quote" in first and len(str(err.value)) < 500


def test_bom_crlf_whitespace_and_header_case(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            " Restaurant_ID , NAME ,Menu,signup_date,unused",
            "  r1  ,  교촌치킨 ,  후라이드|양념  , 2024-01-02 ,zzz",
            "r2,bhc,,2024-01-03 10:30:00,",
        ],
        newline="\r\n",
        bom=True,
    )
    res = ingest_restaurants(con, f)
    assert res.rows_rejected == 0
    rows = con.execute(
        "SELECT restaurant_id, name, menu, signup_date::VARCHAR FROM restaurants ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("r1", "교촌치킨", "후라이드|양념", "2024-01-02"),
        ("r2", "bhc", "", "2024-01-03"),
    ]


def test_trim_fast_path_equals_trim_with_the_character_set(con) -> None:
    """The ingest's trim only runs on values that start or end with a trimmed character; on every
    value it must give what the plain `trim(value, chars)` gives (the oracle)."""
    import random

    chars = ingest._TRIM_CHARS
    alphabet = [*chars, "a", "가", "\u0301", "\u200b", "\f", "\v", "🍗", "\u200d", "\x00", ","]
    rnd = random.Random(15)
    values = ["", None, chars, *chars, "x" + chars + "y", "\u3000\u0301abc", "abc\u3000\u0301"]
    values += ["".join(rnd.choices(alphabet, k=rnd.randint(1, 6))) for _ in range(5000)]
    con.execute("CREATE TEMP TABLE v (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
    fast, oracle = ingest._trimmed("x"), f"trim(x, '{chars}')"
    differ = con.execute(
        f"SELECT i, x FROM v WHERE ({fast}) IS DISTINCT FROM ({oracle}) ORDER BY i"
    ).fetchall()
    assert differ == []
    # the test covers both outcomes: values the fast path trims and values it leaves alone
    trimmed = con.execute(f"SELECT count(*) FROM v WHERE ({oracle}) <> x").fetchone()
    assert trimmed is not None and 1000 < trimmed[0] < len(values) - 1000


def test_quoted_commas_pipes_korean_and_emoji(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [
            R_HEADER,
            'r1,"치킨, 맥주 🍗🍺","양념치킨|후라이드, 반반|""특제"" 소스",2024-01-02',
            "r2,떡볶이🌶️,,2024-01-02",
        ],
    )
    ingest_restaurants(con, f)
    assert con.execute("SELECT name, menu FROM restaurants ORDER BY restaurant_id").fetchall() == [
        ("치킨, 맥주 🍗🍺", '양념치킨|후라이드, 반반|"특제" 소스'),
        ("떡볶이🌶️", ""),
    ]


def test_missing_column_names_file_and_column(con, tmp_path: Path) -> None:
    f = write(tmp_path / "products.csv", ["product_id,name,price", "p1,x,1"])
    with pytest.raises(IngestError) as err:
        ingest_products(con, f)
    msg = str(err.value)
    assert "products.csv" in msg and "category" in msg and "unit_price" in msg


def test_wrong_field_count_is_quarantined_with_its_record_number(con, tmp_path: Path) -> None:
    lines = [P_HEADER, 'p0,"여러 줄\n이름",c,1']  # one record over two lines
    lines += [f"p{i},x,c,1" for i in range(1, 30_000)]
    lines += ["p_long,x,c,1,extra", "p_short,x,c", "p1,dup,c,1", "p_last,이름,c,7"]
    f = write(tmp_path / "products.csv", lines)
    res = ingest_products(con, f)
    assert rejects(con, "products") == [
        (30_001, "bad_field_count"),
        (30_002, "bad_field_count"),
        (30_003, "duplicate_id"),
    ]
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (30_004, 30_001, 3)
    assert res.rejected_by_reason == {"bad_field_count": 2, "duplicate_id": 1}
    # The rows after the bad ones are neither shifted nor renumbered.
    assert con.execute(
        "SELECT name, category, unit_price FROM products WHERE product_id = 'p_last'"
    ).fetchone() == ("이름", "c", 7.0)
    raw = json.loads(
        con.execute("SELECT raw_row FROM rejected_rows WHERE row_number = 30001").fetchone()[0]
    )
    assert raw["csv_line"] == "p_long,x,c,1,extra" and "Found: 5" in raw["error"]


@pytest.mark.parametrize("header_comma", ["", ","])
def test_trailing_comma_on_every_row_does_not_shift_columns(
    con, tmp_path: Path, header_comma: str
) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [R_HEADER + header_comma, *(row + "," for row in GOOD_RESTAURANTS)],
    )
    res = ingest_restaurants(con, f)
    assert (res.rows_loaded, res.rows_rejected) == (2, 0)
    assert con.execute(
        "SELECT restaurant_id, name, menu FROM restaurants ORDER BY 1"
    ).fetchall() == [("r1", "교촌치킨", "후라이드|양념"), ("r2", "김밥천국", "김밥|라면")]


def test_unclosed_quote_fails_the_file_naming_the_line(con, tmp_path: Path) -> None:
    f = write(tmp_path / "products.csv", [P_HEADER, "p1,x,c,1", 'p2,"x,c,1', "p3,x,c,1"])
    with pytest.raises(IngestError) as err:
        ingest_products(con, f)
    first_line = str(err.value).splitlines()[0]
    assert "products.csv: malformed CSV: unclosed or stray quote" in first_line
    assert "line 3" in first_line


def test_cp949_file_is_an_encoding_error(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [R_HEADER, "r1,교촌치킨,후라이드|양념,2024-01-02"],
        encoding="cp949",
    )
    with pytest.raises(IngestError) as err:
        ingest_restaurants(con, f)
    msg = str(err.value)
    assert "restaurants.csv" in msg and "encoding" in msg and "UTF-8" in msg
    assert "CP949" in msg


def test_cp949_bytes_that_happen_to_be_valid_utf8_are_refused(con, tmp_path: Path) -> None:
    data = f"{R_HEADER}\nr1,치킨,치킨|치킨,2024-01-02\nr2,짜짝짠,짜짝짠,2024-01-03".encode("cp949")
    assert data.decode("utf-8").count("¥¦§") == 2  # the hard case: it *is* valid UTF-8 (mojibake)
    f = tmp_path / "restaurants.csv"
    f.write_bytes(data)
    with pytest.raises(IngestError) as err:
        ingest_restaurants(con, f)
    first = str(err.value).splitlines()[0]
    assert first.startswith(f"{f}: wrong encoding")
    assert "looks like CP949/EUC-KR; convert it, e.g. iconv -f cp949 -t utf-8" in first
    assert "'치킨' in CP949" in first  # shows what the bytes really say
    assert (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'restaurants'"
        ).fetchone()[0]
        == 0
    )


def test_accented_latin_text_is_not_taken_for_mojibake(con, tmp_path: Path) -> None:
    f = write(
        tmp_path / "restaurants.csv",
        [R_HEADER, "r1,Café Müller,crème brûlée|Füße,2024-01-02", "r2,Ñandú,jalapeño,2024-01-02"],
    )
    assert ingest_restaurants(con, f).rows_loaded == 2


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")])
def test_empty_file(con, tmp_path: Path, content: bytes) -> None:
    f = tmp_path / ("products.csv.gz" if content else "products.csv")
    f.write_bytes(content)
    with pytest.raises(IngestError, match="empty"):
        ingest_products(con, f)


def test_header_only_file_is_refused_unless_allowed(con, tmp_path: Path) -> None:
    f = write(tmp_path / "products.csv", [P_HEADER])
    with pytest.raises(ingest.ShrinkRefused, match=r"products.csv: refused: no row to load"):
        ingest_products(con, f)
    res = ingest_products(con, f, allow_shrink=True)
    assert (res.rows_read, res.rows_loaded) == (0, 0)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 0


def test_gzip_csv(con, tmp_path: Path) -> None:
    f = tmp_path / "products.csv.gz"
    text = "\n".join([P_HEADER, *GOOD_PRODUCTS, "p3,x,y,-1"]) + "\n"
    f.write_bytes(gzip.compress(text.encode()))
    res = ingest_products(con, f)
    assert ids(con, "products", "product_id") == ["p1", "p2"]
    assert rejects(con, "products") == [(3, "negative_price")]
    assert res.source_file == str(f)


def test_parquet_input_with_typed_columns(con, tmp_path: Path) -> None:
    f = tmp_path / "restaurants.parquet"
    duckdb.sql(
        "SELECT * FROM (VALUES ('r1', '교촌치킨', '후라이드|양념', DATE '2024-01-02', 1),"
        " ('r1', 'dup', '', DATE '2024-01-03', 2),"
        " ('r2', ' 맘스터치 ', NULL, DATE '2024-01-04', 3))"
        " t(restaurant_id, Name, menu, signup_date, extra)"
    ).write_parquet(str(f))
    res = ingest_restaurants(con, f)
    assert (res.rows_loaded, res.rows_rejected) == (2, 1)
    assert rejects(con, "restaurants") == [(2, "duplicate_id")]
    assert con.execute(
        "SELECT restaurant_id, name, menu, signup_date FROM restaurants ORDER BY 1"
    ).fetchall() == [
        ("r1", "교촌치킨", "후라이드|양념", datetime.date(2024, 1, 2)),
        ("r2", "맘스터치", "", datetime.date(2024, 1, 4)),
    ]
    raw = json.loads(con.execute("SELECT raw_row FROM rejected_rows").fetchone()[0])
    assert raw["Name"] == "dup" and raw["extra"] == 2


def test_parquet_timestamptz_is_converted_to_korea_time(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    f = tmp_path / "orders.parquet"
    duckdb.sql(
        "SELECT * FROM (VALUES ('o1', 'r1', 'p1', 1.0, TIMESTAMPTZ '2024-05-01 23:30:00+00'))"
        " t(order_id, restaurant_id, product_id, quantity, ordered_at)"
    ).write_parquet(str(f))
    ingest_orders(con, f)
    assert con.execute("SELECT ordered_at FROM orders").fetchone()[0] == datetime.datetime(
        2024, 5, 2, 8, 30
    )


def test_parquet_timestamps_load_as_their_text_would(tmp_path: Path) -> None:
    """A typed Parquet TIMESTAMP is taken as is, not parsed from text: every value (edge cases
    included) must load, or be rejected for the same reason, as the same value written as text."""
    stamps = [
        "2024-05-01 10:00:00",
        "2026-03-01 12:34:56.789012",
        "1970-01-01 00:00:00",
        "1969-12-31 23:59:59.999999",
        "2100-12-31 23:59:59.999999",
        "2101-01-01 00:00:00",
        "0001-01-01 00:00:00",
        "0044-03-15 (BC) 00:00:00",
        "12000-01-01 00:00:00",
        "290309-12-22 (BC) 00:00:00",
        "294247-01-10 04:00:54.775806",
        "infinity",
        None,
    ]
    rows = ", ".join(
        f"('o{i}', 'r1', 'p1', 1, {'NULL' if t is None else repr(t)})" for i, t in enumerate(stamps)
    )
    values = f"(VALUES {rows}) t(order_id, restaurant_id, product_id, quantity, ordered_at)"
    loaded = {}
    for kind, cast in (("typed", "CAST(ordered_at AS TIMESTAMP)"), ("text", "ordered_at")):
        folder = tmp_path / kind
        folder.mkdir()
        con = duckdb.connect(str(folder / "warehouse.duckdb"))
        load_dims(con, folder)
        f = folder / "orders.parquet"
        duckdb.sql(f"SELECT * REPLACE ({cast} AS ordered_at) FROM {values}").write_parquet(str(f))
        assert duckdb.sql(f"DESCRIBE SELECT * FROM '{f}'").fetchall()[4][1] == (
            "TIMESTAMP" if kind == "typed" else "VARCHAR"
        )
        ingest_orders(con, f, allow_shrink=True)
        loaded[kind] = (
            con.execute("SELECT order_id, ordered_at FROM orders ORDER BY order_id").fetchall(),
            rejects(con, "orders"),
        )
        con.close()
    assert loaded["typed"] == loaded["text"]
    assert len(loaded["text"][0]) >= 4 and len(loaded["text"][1]) >= 5  # both outcomes covered


def test_unreadable_parquet(con, tmp_path: Path) -> None:
    f = tmp_path / "products.parquet"
    f.write_bytes(b"this is not parquet at all")
    with pytest.raises(IngestError, match=r"products\.parquet.*Parquet"):
        ingest_products(con, f)


def test_target_schemas(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    ingest_orders(con, write(tmp_path / "orders.csv", [O_HEADER, "o1,r1,p1,1,2024-02-01 10:00:00"]))
    types = {
        (t, c): d
        for t, c, d in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE table_name IN ('restaurants', 'products', 'orders', 'rejected_rows')"
        ).fetchall()
    }
    assert types[("restaurants", "signup_date")] == "DATE"
    assert types[("restaurants", "size")] == "VARCHAR"
    assert types[("products", "unit_price")] == "DOUBLE"
    assert types[("orders", "quantity")] == "DOUBLE"
    assert types[("orders", "ordered_at")] == "TIMESTAMP"
    assert types[("rejected_rows", "row_number")] == "BIGINT"
    assert types[("rejected_rows", "rejected_at")] == "TIMESTAMP"
    # No scratch tables are left behind.
    assert (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__ingest%'"
        ).fetchone()[0]
        == 0
    )


# -------------------------------------------------------------------------- idempotency, atomicity


def test_reingest_is_idempotent(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    f = write(
        tmp_path / "orders.csv",
        [
            O_HEADER,
            "o1,r1,p1,2,2024-02-01 10:00:00",
            "o1,r1,p1,2,2024-02-01 10:00:00",
            "o2,r404,p1,1,2024-02-01 10:00:00",
        ],
    )
    first = ingest_orders(con, f)
    second = ingest_orders(con, f)
    assert first.rows_loaded == second.rows_loaded == 1
    assert (
        first.rejected_by_reason
        == second.rejected_by_reason
        == {"duplicate_id": 1, "unknown_restaurant": 1}
    )
    assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 1
    assert rejects(con, "orders") == [(2, "duplicate_id"), (3, "unknown_restaurant")]


def test_reingest_only_replaces_its_own_rejects(con, tmp_path: Path) -> None:
    ingest_products(con, write(tmp_path / "products.csv", [P_HEADER, "p0,x,c,1", "p1,x,c,-1"]))
    ingest_restaurants(
        con, write(tmp_path / "restaurants.csv", [R_HEADER, "r0,x,m,2024-01-01", ",x,m,2024-01-01"])
    )
    ingest_restaurants(con, write(tmp_path / "restaurants.csv", [R_HEADER, "r1,x,m,2024-01-01"]))
    assert rejects(con, "restaurants") == []
    assert rejects(con, "products") == [(2, "negative_price")]


def products_file(tmp_path: Path, n: int, extra: tuple[str, ...] = ()) -> Path:
    return write(tmp_path / "products.csv", [P_HEADER, *(f"p{i},x,c,1" for i in range(n)), *extra])


def test_sharp_shrink_is_refused_before_anything_is_replaced(con, tmp_path: Path) -> None:
    ingest_products(con, products_file(tmp_path, 10, ("bad,x,c,-1",)))
    before = con.execute("SELECT * FROM products ORDER BY ALL").fetchall()
    with pytest.raises(ingest.ShrinkRefused) as err:
        ingest_products(con, products_file(tmp_path, 4, ("p9,x,c,-1", "p9,x,c,1,extra")))
    msg = str(err.value)
    assert msg.splitlines()[0].startswith(
        f"{tmp_path / 'products.csv'}: refused: 4 rows to load would replace the 10 rows of "
        "products (60% fewer; RECSYS_MAX_SHRINK allows 50%). 6 rows read, 2 rejected "
        "(bad_field_count 1, negative_price 1)"
    )
    assert "RECSYS_ALLOW_SHRINK=1" in msg
    assert (err.value.previous_rows, err.value.new_rows) == (10, 4)
    assert con.execute("SELECT * FROM products ORDER BY ALL").fetchall() == before
    assert rejects(con, "products") == [(11, "negative_price")]  # the old rejects, untouched
    # Exactly the limit (half as many) is still accepted; a tighter limit refuses it.
    with pytest.raises(ingest.ShrinkRefused, match="5 rows to load would replace the 10"):
        ingest_products(con, products_file(tmp_path, 5), max_shrink=0.4)
    assert ingest_products(con, products_file(tmp_path, 5)).rows_loaded == 5
    # The explicit override loads anything.
    assert ingest_products(con, products_file(tmp_path, 1), allow_shrink=True).rows_loaded == 1


def test_orders_all_rejected_are_refused_with_the_reasons(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    ingest_orders(con, write(tmp_path / "orders.csv", [O_HEADER, "o1,r1,p1,1,2024-02-01 10:00"]))
    f = write(
        tmp_path / "orders.csv",
        [O_HEADER, "o1,r404,p1,1,2024-02-01 10:00", "o2,r404,p1,1,2024-02-01 10:00"],
    )
    with pytest.raises(ingest.ShrinkRefused) as err:
        ingest_orders(con, f)
    assert (
        "refused: no row to load would replace the 1 row of orders. 2 rows read, "
        "2 rejected (unknown_restaurant 2)"
    ) in str(err.value)
    assert con.execute("SELECT order_id FROM orders").fetchall() == [("o1",)]


def test_failure_midway_keeps_previous_table_and_rejects(con, tmp_path: Path, monkeypatch) -> None:
    f = write(tmp_path / "restaurants.csv", [R_HEADER, *GOOD_RESTAURANTS, "r1,dup,m,2024-01-01"])
    ingest_restaurants(con, f)
    before = con.execute("SELECT * FROM restaurants ORDER BY 1").fetchall()
    before_rejects = rejects(con, "restaurants")

    g = write(tmp_path / "restaurants2.csv", [R_HEADER, "r7,new,m,2024-01-01", ",x,m,2024-01-01"])

    def boom(*args, **kwargs):  # fails after the old rejects were deleted and new ones inserted
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest, "_replace_target", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_restaurants(con, g)
    assert con.execute("SELECT * FROM restaurants ORDER BY 1").fetchall() == before
    assert rejects(con, "restaurants") == before_rejects == [(3, "duplicate_id")]
    monkeypatch.undo()
    # The connection is still usable and a good re-run goes through.
    assert ingest_restaurants(con, g).rows_loaded == 1


def test_bad_bytes_deep_in_file_keep_previous_table(con, tmp_path: Path) -> None:
    load_dims(con, tmp_path)
    good = write(tmp_path / "orders.csv", [O_HEADER, "o1,r1,p1,1,2024-02-01 10:00:00"])
    ingest_orders(con, good)
    lines = [O_HEADER] + [f"o{i},r1,p1,1,2024-02-01 10:00:00" for i in range(40_000)]
    data = ("\n".join(lines) + "\n").encode() + "o_x,r1,p1,1,2024-02-01 교촌\n".encode("cp949")
    bad = tmp_path / "orders_bad.csv"
    bad.write_bytes(data)
    with pytest.raises(IngestError, match="encoding"):
        ingest_orders(con, bad)
    assert con.execute("SELECT order_id FROM orders").fetchall() == [("o1",)]


# ------------------------------------------------------------- the orders checks against the oracle
def _window_orders_sql(base: str, max_qty: float, ts: str, qty: str) -> str:
    """ingest._orders_sql before the hash lookup of repeated keys (the oracle): a window numbers
    every (order, product) and the quantity is always parsed from text."""
    del qty
    return f"""
        WITH t AS ({base}),
        typed AS (
            SELECT *,
                row_number() OVER (PARTITION BY order_id, product_id ORDER BY __row_number)
                    AS __dup_rank,
                TRY_CAST(quantity AS DOUBLE) AS __qty,
                {ts} AS __ts
            FROM t
        )
        SELECT __row_number, __rid,
            typed.order_id, typed.restaurant_id, typed.product_id,
            __qty AS quantity, __ts AS ordered_at,
            CASE
                WHEN typed.order_id IS NULL OR typed.restaurant_id IS NULL
                     OR typed.product_id IS NULL THEN 'missing_id'
                WHEN {_regex_per_id("typed.order_id", "typed.restaurant_id", "typed.product_id")}
                     THEN 'bad_id'
                WHEN __dup_rank > 1 THEN 'duplicate_id'
                WHEN __qty IS NULL OR NOT isfinite(__qty) OR __qty > {max_qty!r} THEN 'bad_number'
                WHEN __qty <= 0 THEN 'non_positive_quantity'
                WHEN __ts IS NULL OR NOT {ingest._plausible("__ts")} THEN 'bad_timestamp'
                WHEN kr.restaurant_id IS NULL THEN 'unknown_restaurant'
                WHEN kp.product_id IS NULL THEN 'unknown_product'
            END AS __reason
        FROM typed
        LEFT JOIN (SELECT DISTINCT restaurant_id FROM restaurants) kr
            ON kr.restaurant_id = typed.restaurant_id
        LEFT JOIN (SELECT DISTINCT product_id FROM products) kp
            ON kp.product_id = typed.product_id
        """


def _regex_per_id(*exprs: str) -> str:
    """ingest._bad_id before it joined the ids (the oracle): one regex per id."""
    return (
        "("
        + " OR ".join(
            f"regexp_matches({e}, '{ingest._ID_FORBIDDEN}') OR length({e}) > {ingest.MAX_ID_CHARS}"
            for e in exprs
        )
        + ")"
    )


HOSTILE_ORDERS = [
    "o1,r1,p1,2,2024-02-01 10:00:00",
    "o1,r1,p1,3,2024-02-01 10:00:00",  # repeat
    " o1 ,r1,p1\u3000,4,2024-02-01 10:00:00",  # the same key once trimmed
    "o2,r1,p1,x,2024-02-01 10:00:00",  # bad number first, then repeated
    "o2,r1,p1,1,2024-02-01 10:00:00",
    ",r1,p1,1,2024-02-01 10:00:00",  # missing ids, twice
    ",r1,p1,1,2024-02-01 10:00:00",
    "o3,,p1,1,2024-02-01 10:00:00",
    "o4,r1,p\u200b1,1,2024-02-01 10:00:00",  # zero-width space in the product id
    "o5\x01,r1,p1,1,2024-02-01 10:00:00",  # control character in the order id
    "o6,r\u20281,p1,1,2024-02-01 10:00:00",  # line separator in the restaurant id
    f"{'o' * 201},r1,p1,1,2024-02-01 10:00:00",
    f"o7,r1,{'p' * 201},1,2024-02-01 10:00:00",
    "o8,r9,p1,1,2024-02-01 10:00:00",  # unknown restaurant, then its repeat
    "o8,r9,p1,1,2024-02-01 10:00:00",
    "o9,r1,p9,0,2024-02-01 10:00:00",
    "o9,r1,p2,-1,2024-02-01 10:00:00",
    "o10,r2,p2,1.5,1969-12-31 23:00:00",
    "o10,r2,p2,1.5,infinity",
    "o11,r2,p2,1e400,2024-02-01 10:00:00",
    "o12,r2,p1,7,2024-03-01 10:00:00+00:00",
    "o12,r2,p2,8,2024-03-01 10:00:00",
    "o1,r1,p1,9,2024-02-01 10:00:00",  # a third occurrence
]


def _orders_result(con) -> tuple[list, list]:
    loaded = con.execute("SELECT * FROM orders ORDER BY rowid").fetchall()
    rejected = con.execute(
        "SELECT table_name, row_number, reason, raw_row FROM rejected_rows ORDER BY rowid"
    ).fetchall()
    return loaded, rejected


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_orders_checks_match_the_window_oracle(con, tmp_path: Path, monkeypatch, fmt: str) -> None:
    """The repeated keys looked up by hash, the ids' regex joined and an integer Parquet quantity
    cast directly load the same rows and quarantine the same rows, for the same reasons."""
    load_dims(con, tmp_path)
    f = write(tmp_path / "orders.csv", [O_HEADER, *HOSTILE_ORDERS])
    if fmt == "parquet":  # integer quantities (NULL where not one), typed timestamps
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [line.split(",") for line in HOSTILE_ORDERS]
        cols = {name: [r[i] for r in rows] for i, name in enumerate(O_HEADER.split(","))}
        cols["quantity"] = [int(q) if q.lstrip("-").isdigit() else None for q in cols["quantity"]]
        cols["ordered_at"] = [
            datetime.datetime.fromisoformat(t) if t[:1] == "2" and "+" not in t else None
            for t in cols["ordered_at"]
        ]
        f = tmp_path / "orders.parquet"
        pq.write_table(pa.table(cols), f)
    ingest_orders(con, f)
    new = _orders_result(con)
    monkeypatch.setattr(ingest, "_orders_sql", _window_orders_sql)
    monkeypatch.setattr(ingest, "_INTEGER_TYPES", ())
    ingest_orders(con, f, allow_shrink=True)
    old = _orders_result(con)
    assert new == old
    assert {r[2] for r in new[1]} >= {"duplicate_id", "bad_id", "missing_id", "unknown_restaurant"}
