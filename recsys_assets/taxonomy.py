"""The industry taxonomy: the one place the prompt, the labelers, the checks and the docs read.

Codes are stable identifiers stored in tables and the ledger; never rename one without a migration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Industry:
    code: str
    name_ko: str
    name_en: str
    examples: tuple[str, ...]


INDUSTRIES: tuple[Industry, ...] = (
    Industry("chicken", "치킨", "Fried chicken", ("후라이드", "양념", "통닭", "순살", "닭강정")),
    Industry(
        "korean",
        "한식",
        "Korean",
        ("백반", "찌개", "국밥", "설렁탕", "죽", "도시락", "냉면", "칼국수", "백숙", "삼계탕",
         "부대찌개", "감자탕", "비빔밥"),
    ),
    Industry("bunsik", "분식", "Korean snack food", ("떡볶이", "김밥", "라면", "순대", "튀김", "쫄면")),
    Industry(
        "chinese",
        "중식",
        "Chinese",
        ("짜장면", "짬뽕", "탕수육", "마라탕", "양꼬치", "딤섬", "중국/대만 요리"),
    ),
    Industry(
        "japanese",
        "일식",
        "Japanese",
        ("초밥", "라멘", "우동", "소바", "돈까스", "일본식 카레", "돈부리"),
    ),
    Industry(
        "seafood",
        "회·해산물",
        "Raw fish and seafood",
        ("횟집", "조개구이", "해물찜", "아구찜", "대게", "물회", "장어"),
    ),
    Industry("meat_bbq", "고기·구이", "Meat and barbecue", ("삼겹살", "갈비", "곱창", "한우", "특수부위")),
    Industry("jokbal_bossam", "족발·보쌈", "Jokbal and bossam", ("족발", "보쌈")),
    Industry("pizza", "피자", "Pizza", ("피자",)),
    Industry(
        "burger",
        "버거·패스트푸드",
        "Burgers and fast food",
        ("햄버거", "샌드위치", "핫도그", "너겟"),
    ),
    Industry(
        "western",
        "양식",
        "Western",
        ("파스타", "스테이크", "리조또", "브런치", "패밀리 레스토랑"),
    ),
    Industry(
        "asian",
        "아시안",
        "Asian (Vietnamese, Thai, Indian, ...)",
        ("쌀국수", "팟타이", "커리"),
    ),
    Industry(
        "cafe_dessert",
        "카페·디저트",
        "Cafe and dessert",
        ("커피", "차", "빙수", "아이스크림", "케이크", "마카롱", "생과일주스", "화채"),
    ),
    Industry("bakery", "베이커리", "Bakery", ("빵집", "베이글", "제과점")),
    Industry(
        "pub",
        "주점",
        "Pub and bar",
        ("호프", "이자카야", "포차", "전/막걸리", "꼬치", "와인바", "칵테일바"),
    ),
    Industry("salad", "샐러드·건강식", "Salad and healthy food", ("샐러드", "포케", "그릭요거트")),
    Industry("other", "기타", "Other", ("no usable information, or not a food business",)),
)

INDUSTRY_CODES: tuple[str, ...] = tuple(i.code for i in INDUSTRIES)
BY_CODE: dict[str, Industry] = {i.code: i for i in INDUSTRIES}
OTHER = "other"

RULES: tuple[str, ...] = (
    "What the restaurant mainly sells decides the industry.",
    "The menu outweighs the name; a name alone is a weak hint.",
    f"Answer '{OTHER}' when there is no usable information or it is not a food business.",
)


def is_valid(code: object) -> bool:
    return isinstance(code, str) and code in BY_CODE


def describe() -> str:
    """One line per industry, used by the LLM prompt and the docs."""
    return "\n".join(
        f"- {i.code}: {i.name_ko} / {i.name_en} ({', '.join(i.examples)})" for i in INDUSTRIES
    )
