"""Realistic synthetic data for a Korean food-supply marketplace.

Restaurants, a product catalog and orders. Why synthetic: the pipeline must be runnable and
measurable without customer data. The generator has a known causal model (industry staples +
ingredients of the restaurant's own menu items + kitchen basics, scaled by size, with seasonality
and noise), so a ranking model that reads menus can beat plain industry popularity, and
`oracle_scores` gives the true expected demand as an evaluation upper bound.

The true industry and the causal model are written only to ``<out_dir>/ground_truth/``; the
pipeline's inputs (restaurants, products, orders) never contain them.

Large scale (200k restaurants, ~10M order lines) is vectorized with numpy and the orders are
written in chunks, so memory stays bounded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_assets.taxonomy import BY_CODE, INDUSTRY_CODES

SCALES: dict[str, tuple[int, int]] = {
    "small": (2_000, 100_000),
    "medium": (20_000, 1_000_000),
    "large": (200_000, 10_000_000),
}
REFERENCE_END = date(2026, 10, 31)
# Sign-ups span ~18 months and stop 30 days before REFERENCE_END, so every restaurant (including the
# most recent cold-start cohort) has a complete first-30-day order window.
HISTORY_DAYS = 548
WINDOW_DAYS = 30
FORMATS = ("parquet", "csv")
SIZES = ("small", "medium", "large")

_SIZE_SHARE = np.array([0.55, 0.35, 0.10])
_SIZE_FREQ = np.array([1.0, 1.6, 2.4])  # relative orders per week
_SIZE_LINES = np.array([2.6, 3.4, 4.5])  # mean lines per order (before merging duplicates)
_SIZE_QTY = np.array([1.0, 1.7, 3.0])  # quantity multiplier
_NOISE_SHARE = 0.12  # share of order lines that are the restaurant's idiosyncratic "other" products
_NOISE_SET = 6  # idiosyncratic products per restaurant
_CHUNK_RESTAURANTS = 4096
_CHURN_MEAN_DAYS = 200.0  # mean extra lifetime after the first 60 days
_MERGE_LOSS = 1.08  # lines lost when duplicate products in one order are merged
# delay (days after sign-up) of the onboarding order: truncated geometric over 0..6
_FIRST_ORDER_DELAY = np.array([0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.015625])
_WRITE_CHUNK_LINES = 1_000_000

# month (1..12) -> demand multiplier
_SEASON = {
    "summer": (0.3, 0.3, 0.5, 0.8, 1.3, 2.2, 3.0, 3.0, 1.6, 0.8, 0.4, 0.3),
    "winter": (2.5, 2.3, 1.4, 0.8, 0.5, 0.3, 0.2, 0.2, 0.4, 0.9, 1.6, 2.4),
}

# -------------------------------------------------------------------------------------------------
# Product catalog: "name | unit price KRW | typical quantity per order line | season"
# -------------------------------------------------------------------------------------------------
_CATALOG = """
[육류]
생닭 10호 (1kg) | 5200 | 20
생닭 절단육 (1kg) | 6800 | 10
닭다리살 정육 2kg | 17800 | 4
닭가슴살 2kg | 14500 | 3
닭날개 1kg | 9900 | 4
닭봉 1kg | 9500 | 4
닭근위 (똥집) 1kg | 8500 | 3
닭발 1kg | 7800 | 3
순살치킨용 닭정육 2kg | 18900 | 5
오리 통 (2kg) | 19800 | 3
훈제오리 슬라이스 1kg | 15800 | 2
돼지 삼겹살 1kg | 21500 | 6
돼지 목살 1kg | 19800 | 5
돼지 항정살 1kg | 29800 | 2
돼지 앞다리살 1kg | 11500 | 5
돼지 뒷다리살 다짐육 1kg | 8900 | 3
돼지 등심 돈까스용 1kg | 13900 | 4
돼지갈비 양념 2kg | 29800 | 3
돼지 족 (생족) 1kg | 7900 | 8
돼지 사태 1kg | 12800 | 3
돼지 등뼈 5kg | 19800 | 2
한우 등심 1kg | 98000 | 2
소 불고기용 1kg | 24800 | 3
소 차돌박이 1kg | 32000 | 3
소갈비 LA 2kg | 58000 | 2
소 양지 국거리 1kg | 26500 | 3
소 사골 2kg | 12000 | 2
소 곱창 1kg | 21000 | 4
소 대창 1kg | 23000 | 3
돼지 막창 1kg | 18500 | 3
양꼬치용 양고기 1kg | 28900 | 3
소고기 다짐육 1kg | 19800 | 3
우삼겹 1kg | 19800 | 3
스테이크용 부채살 1kg | 42000 | 2
베이컨 슬라이스 1kg | 15800 | 2
햄버거 패티 (소고기 100g×10) | 14800 | 4
치킨 패티 (10개) | 12900 | 3

[수산]
광어 필렛 1kg | 32000 | 2
연어 필렛 1kg | 38000 | 2
참치 뱃살 (냉동) 1kg | 45000 | 1
방어 필렛 1kg | 34000 | 1 | winter
활전복 1kg | 52000 | 1
생굴 1kg | 14800 | 2 | winter
오징어 (손질) 1kg | 16800 | 3
쭈꾸미 1kg | 19800 | 2
낙지 1kg | 32000 | 2
냉동 새우 (대) 1kg | 19800 | 3
칵테일새우 900g | 15800 | 2
바지락 1kg | 8900 | 3
홍합 1kg | 6800 | 3
가리비 2kg | 18800 | 2
아구 (손질) 1kg | 16500 | 3
꽃게 1kg | 29000 | 2
대게 1kg | 55000 | 1 | winter
장어 (손질) 1kg | 48000 | 2 | summer
고등어 필렛 1kg | 11800 | 2
명란젓 500g | 16500 | 1
날치알 500g | 8900 | 1
해파리 (염장) 1kg | 9800 | 1
멸치 (국물용) 1.5kg | 18900 | 1
건새우 500g | 12500 | 1
골뱅이 통조림 400g | 5900 | 2

[채소·과일]
양파 15kg | 21000 | 2
대파 1kg | 3900 | 4
쪽파 1kg | 6500 | 2
마늘 (깐마늘) 1kg | 9800 | 3
다진마늘 1kg | 8500 | 2
생강 1kg | 9900 | 1
양배추 1통 | 3500 | 4
배추 1망 (3포기) | 9900 | 3 | winter
무 1개 | 2200 | 5 | winter
감자 10kg | 19800 | 2
고구마 5kg | 16500 | 1 | winter
당근 1kg | 3200 | 3
애호박 1개 | 1800 | 4
청양고추 1kg | 9800 | 2
풋고추 1kg | 8500 | 1
홍고추 1kg | 10500 | 1
상추 2kg | 12800 | 2 | summer
깻잎 1kg | 13500 | 2
콩나물 4kg | 6800 | 2
숙주 4kg | 7500 | 2
양상추 1통 | 3300 | 4
토마토 5kg | 19800 | 1 | summer
방울토마토 1kg | 7800 | 2
오이 10개 | 6900 | 2 | summer
파프리카 5kg | 24500 | 1
브로콜리 1kg | 6800 | 2
새송이버섯 2kg | 8900 | 2
표고버섯 1kg | 15800 | 1
팽이버섯 (150g×10) | 5500 | 2
청경채 1kg | 6900 | 2
부추 1kg | 5900 | 2
미나리 1kg | 7800 | 1
수삼 (삼계탕용) 1kg | 32000 | 1 | summer
로메인 1kg | 9800 | 2
어린잎채소 1kg | 12500 | 2
케일 1kg | 8800 | 1
고수 500g | 6500 | 1
아보카도 (냉동) 1kg | 12900 | 1
레몬 1kg | 8500 | 2
라임 1kg | 11800 | 1
딸기 2kg | 26000 | 1 | winter
냉동 망고 1kg | 9800 | 2 | summer
바나나 1송이 | 4900 | 2
수박 1통 | 22000 | 1 | summer
청포도 1kg | 14800 | 1 | summer
건목이버섯 500g | 12800 | 1

[쌀·곡물]
쌀 20kg | 62000 | 2
찹쌀 4kg | 18500 | 1
현미 4kg | 15800 | 1
혼합잡곡 4kg | 19800 | 1
귀리 2kg | 11800 | 1
퀴노아 1kg | 12500 | 1
그래놀라 1kg | 13800 | 1
팥 (빙수용 통단팥) 3kg | 16800 | 2 | summer
즉석밥 (210g×24) | 26900 | 1
콩가루 1kg | 8900 | 1 | summer

[면·떡]
중화면 (생면) 5kg | 13500 | 4
짬뽕면 5kg | 14500 | 2
칼국수면 (생면) 2kg | 6900 | 3
냉면 사리 2kg | 8900 | 3 | summer
메밀면 2kg | 9800 | 2 | summer
우동면 (냉동 230g×5) | 4800 | 6
라멘면 (생면 150g×10) | 9800 | 3
소바면 1kg | 7900 | 2 | summer
라면 사리 (40개) | 23900 | 2
쫄면사리 2kg | 7900 | 3
당면 1kg | 6800 | 2
떡볶이떡 (밀떡) 3kg | 8900 | 4
떡볶이떡 (쌀떡) 3kg | 10900 | 3
떡국떡 3kg | 12900 | 2 | winter
빙수떡 (인절미) 1kg | 9800 | 2 | summer
스파게티면 3kg | 9800 | 3
펜네 3kg | 10800 | 1
쌀국수면 (건면) 3kg | 14800 | 3
팟타이면 (쌀면 5mm) 3kg | 15800 | 2
라이스페이퍼 500g | 5900 | 2
콩국수면 2kg | 7800 | 2 | summer
소면 3kg | 7500 | 2
수제비 반죽 2kg | 6900 | 1 | winter
만두피 1kg | 4900 | 1
마라탕용 넓은당면 1kg | 7200 | 2
분모자 1kg | 8900 | 1

[가공식품]
단무지 (반달) 3kg | 6900 | 3
단무지 (김밥용 통) 3kg | 7800 | 2
김밥김 (100매) | 13800 | 2
조미김 (식당용 5g×72) | 15800 | 1
맛살 1kg | 7800 | 2
김밥햄 1kg | 9800 | 2
슬라이스 햄 1kg | 11800 | 2
페퍼로니 슬라이스 1kg | 19800 | 2
우엉조림 1kg | 8900 | 2
치킨무 3kg | 6900 | 6
쌈무 3kg | 8900 | 2
무말랭이 무침 1kg | 9800 | 2
순대 (업소용) 2kg | 10800 | 3
소시지 (비엔나) 1kg | 9900 | 2
소시지 (프랑크) 1kg | 11800 | 2
핫도그 소시지 1kg | 11500 | 2
스팸 (업소용) 1.8kg | 21800 | 1
어묵 사각 1kg | 5900 | 4 | winter
꼬치어묵 1kg | 8900 | 3 | winter
두부 (찌개용) 3kg | 7500 | 3
순두부 (400g×10) | 9800 | 2
계란 (특란 30구) | 7900 | 5
메추리알 (깐것) 1kg | 6900 | 2
배추김치 10kg | 32000 | 2
깍두기 5kg | 15800 | 1
열무김치 5kg | 16800 | 1 | summer
오이피클 3kg | 8900 | 2
할라피뇨 슬라이스 3kg | 13500 | 1
블랙올리브 슬라이스 3kg | 15800 | 1
옥수수콘 (통조림) 3kg | 7800 | 2
파인애플 (통조림) 3kg | 9800 | 1
후르츠칵테일 3kg | 9800 | 1 | summer
참치캔 (업소용) 1.88kg | 23500 | 1
코코넛밀크 (400ml×24) | 38000 | 1
유부 (초밥용) 1kg | 11800 | 2
짜사이 1kg | 6900 | 2
죽순 (통조림) 2.8kg | 9800 | 1
도토리묵 1kg | 7800 | 1
나쵸칩 1kg | 8900 | 1
팝콘 (업소용) 1kg | 6900 | 1
볶음땅콩 1kg | 9800 | 1
쥐포 1kg | 18900 | 1
먹태 1kg | 22000 | 1

[냉동식품]
치즈볼 (냉동) 1kg | 13800 | 2
감자튀김 (냉동) 2kg | 8900 | 4
웨지감자 (냉동) 2kg | 9900 | 2
치킨너겟 (냉동) 1kg | 8800 | 2
찐만두 (냉동) 1.4kg | 9900 | 2
군만두 (냉동) 1.4kg | 9500 | 2
물만두 (냉동) 1.4kg | 8900 | 1 | winter
모듬튀김 (냉동) 1kg | 11800 | 2
김말이 (냉동) 1kg | 7900 | 3
고로케 (냉동) 1kg | 9800 | 1
생선까스 (냉동) 1kg | 12800 | 2
떡갈비 (냉동) 1kg | 14800 | 1
족발 (반조리) 1kg | 16800 | 2
냉동 볶음밥 (300g×10) | 18900 | 1
아이스크림 (바닐라 업소용) 4L | 18900 | 2 | summer

[소스·양념]
진간장 13L | 38000 | 1
국간장 1.8L | 6900 | 1
고추장 14kg | 42000 | 1
된장 14kg | 35800 | 1
쌈장 14kg | 39800 | 1
초고추장 2kg | 8900 | 2
고춧가루 1kg | 18900 | 2
참기름 1.8L | 29800 | 1
들기름 1.8L | 32800 | 1
설탕 15kg | 26500 | 1
천일염 20kg | 18900 | 1
물엿 5kg | 8900 | 1
올리고당 5kg | 10900 | 1
맛술 (미림) 1.8L | 5900 | 1
양조식초 18L | 15800 | 1
후추 (분쇄) 500g | 12800 | 1
소고기 다시다 1kg | 13800 | 1
치킨스톡 1kg | 15800 | 1
굴소스 2.2kg | 15800 | 1
두반장 1kg | 8900 | 1
춘장 (업소용) 10kg | 29800 | 1
고추기름 1.8L | 12800 | 1
마라탕 소스 (업소용) 1kg | 15800 | 2
화자오 (산초) 500g | 14800 | 1
쯔란 (커민) 가루 500g | 9800 | 1
양념치킨 소스 10kg | 32000 | 2
간장치킨 소스 2kg | 12800 | 2
허니버터 시즈닝 1kg | 16800 | 1
스노윙 치즈 시즈닝 1kg | 18800 | 1
떡볶이 소스 (분말) 1kg | 9800 | 3
쫄면 소스 2kg | 9800 | 2
케첩 3.3kg | 8900 | 2
마요네즈 3.2kg | 10800 | 2
머스타드 3kg | 12800 | 1
허니머스타드 소스 2kg | 11800 | 1
돈까스 소스 2kg | 8800 | 2
데리야끼 소스 2kg | 11800 | 1
우동 쯔유 1.8L | 9800 | 2
돈코츠 라멘 육수 (농축) 2kg | 19800 | 2
초밥 배합초 1.8L | 8900 | 2
생와사비 750g | 14800 | 1
토마토 파스타 소스 3kg | 13800 | 2
크림 파스타 소스 2kg | 14800 | 1
로제 소스 2kg | 15800 | 1
바질 페스토 1kg | 22000 | 1
데미글라스 소스 2kg | 13800 | 1
피자 소스 3kg | 12800 | 3
바베큐 소스 2kg | 11800 | 1
칠리소스 2kg | 9800 | 1
스리라차 소스 793g | 6900 | 1
피쉬소스 (느억맘) 700ml | 6500 | 1
쌀국수 육수 (농축) 2kg | 18800 | 2
팟타이 소스 1kg | 12800 | 1
똠얌 페이스트 1kg | 14800 | 1
커리 페이스트 (인도식) 1kg | 16800 | 1
일본식 카레 분말 1kg | 11800 | 2
발사믹 드레싱 2L | 13800 | 1
오리엔탈 드레싱 2L | 11800 | 1
시저 드레싱 2L | 14800 | 1
냉면 육수 (동치미) 340g×30 | 24000 | 2 | summer
냉면 비빔장 2kg | 11800 | 1 | summer
새우젓 1kg | 8900 | 1
까나리액젓 3kg | 8900 | 1
족발 육수 소스 2kg | 13800 | 1
갈비 양념 소스 2kg | 11800 | 2
불고기 양념 2kg | 10800 | 2
곱창 양념 2kg | 12800 | 1
계피가루 500g | 8800 | 1

[유지·분말]
식용유 (대두유) 18L | 58000 | 1
카놀라유 18L | 64000 | 1
튀김유 (팜유) 18L | 52000 | 1
올리브유 (엑스트라버진) 3L | 38000 | 1
튀김가루 10kg | 22800 | 1
부침가루 10kg | 21800 | 1
치킨 파우더 (염지 포함) 5kg | 26000 | 2
염지제 (치킨용) 1kg | 9800 | 1
빵가루 (습식) 2kg | 6900 | 2
감자전분 3kg | 11800 | 1
밀가루 (중력분) 20kg | 23800 | 1

[유제품]
우유 1L×12 | 31200 | 2
카페용 멸균우유 1L×12 | 29800 | 3
생크림 (동물성) 1L | 8900 | 3
휘핑크림 (식물성) 1L | 5200 | 2
피자치즈 (모짜렐라 슈레드) 2.5kg | 32000 | 2
모짜렐라 치즈 (블록) 1kg | 14800 | 1
체다 슬라이스 치즈 (100매) | 19800 | 1
크림치즈 1kg | 15800 | 1
파마산 치즈 가루 1kg | 22800 | 1
리코타 치즈 1kg | 18500 | 1
부라타 치즈 (125g×4) | 22000 | 1
무염버터 450g | 9800 | 2
그릭요거트 (무가당) 1kg | 11800 | 2
플레인 요구르트 2.5kg | 9800 | 1
연유 1kg | 8900 | 2 | summer
무가당 두유 950ml×12 | 21800 | 1
오트밀크 1L×12 | 38400 | 1
소프트아이스크림 파우더 1kg | 12800 | 2 | summer

[음료·주류]
소주 360ml×20병 | 27000 | 4
맥주 500ml×20병 | 42000 | 3
생맥주 케그 20L | 68000 | 2
막걸리 750ml×20 | 32000 | 2
청주 1.8L | 9800 | 1 | winter
하우스 와인 레드 750ml | 12800 | 3
하우스 와인 화이트 750ml | 12800 | 2
하이볼용 위스키 1.75L | 42000 | 1
사케 1.8L | 28000 | 1
고량주 500ml×6 | 36000 | 1
토닉워터 300ml×24 | 14800 | 1
탄산수 500ml×20 | 12800 | 1
콜라 1.25L×12 | 21600 | 2
사이다 1.25L×12 | 20400 | 2
콜라 캔 355ml×24 | 19800 | 2
제로콜라 캔 355ml×24 | 20800 | 1
생수 500ml×20 | 6900 | 3 | summer
오렌지주스 1.5L×6 | 16800 | 1
레몬청 2kg | 16800 | 1 | summer
자몽청 2kg | 18800 | 1 | summer
식용얼음 3kg | 2900 | 6 | summer
빙수용 우유얼음 3kg | 9800 | 4 | summer

[커피·차]
원두 에스프레소 블렌드 1kg | 28000 | 3
원두 싱글오리진 1kg | 38000 | 1
디카페인 원두 1kg | 36000 | 1
콜드브루 원액 1L | 22000 | 1 | summer
바닐라 시럽 1L | 12800 | 1
헤이즐넛 시럽 1L | 12800 | 1
카라멜 시럽 1L | 12800 | 1
카라멜 소스 2kg | 14800 | 1
초코 소스 2kg | 13800 | 1
초코 파우더 1kg | 14800 | 1
말차 파우더 500g | 19800 | 1
아이스티 파우더 1kg | 9800 | 2 | summer
얼그레이 티백 100T | 18800 | 1
유자청 2kg | 14800 | 2 | winter
대추차 베이스 1kg | 19800 | 1 | winter
고구마 라떼 파우더 1kg | 13800 | 1 | winter
곡물라떼 파우더 1kg | 11800 | 1
딸기 라떼 베이스 1kg | 16800 | 1

[베이커리재료]
강력분 20kg | 26800 | 1
박력분 15kg | 22800 | 1
생이스트 500g | 4800 | 1
냉동 생지 크루아상 60개 | 42000 | 1
냉동 생지 베이글 40개 | 32000 | 1
크로플 생지 (냉동) 50개 | 32000 | 1
식빵 (샌드위치용) 1봉 | 3800 | 6
버거번 (참깨) 30개 | 14800 | 3
브리오슈 번 30개 | 18800 | 1
핫도그빵 30개 | 12800 | 2
모닝빵 30개 | 8900 | 1
피자 도우 (냉동 12인치) 10장 | 18800 | 3
피자 도우볼 (냉동 250g×20) | 24800 | 2
또띠아 10인치 12장 | 6800 | 2
바게트 (냉동) 10개 | 15800 | 1
치아바타 (냉동) 10개 | 14800 | 1
케이크 시트 (냉동) 3개 | 11800 | 1
마카롱 꼬끄 (냉동 50쌍) | 24800 | 1
와플 믹스 2kg | 9800 | 1
붕어빵 믹스 5kg | 18800 | 1 | winter
호떡 믹스 2kg | 7800 | 1 | winter
팥앙금 5kg | 19800 | 1
커스터드 크림 믹스 1kg | 9800 | 1
슈가파우더 1kg | 4800 | 1
아몬드 슬라이스 1kg | 19800 | 1
초코칩 1kg | 11800 | 1
호두 1kg | 19800 | 1
딸기잼 3kg | 12800 | 1

[포장·위생용품]
포장용기 원형 500ml 100개 | 8900 | 3
포장용기 원형 1000ml 100개 | 12800 | 3
포장용기 사각 2000ml 50개 | 14800 | 2
치킨 포장박스 100개 | 18800 | 3
피자 박스 (12인치) 50개 | 14800 | 3
도시락 용기 (3칸) 200개 | 24800 | 1
샐러드 용기 (PET) 200개 | 23800 | 1
케이크 상자 (1호) 50개 | 18800 | 1
빵 봉투 (OPP) 1000매 | 9800 | 1
김밥 은박지 1000매 | 8900 | 2
소스컵 (2oz) 1000개 | 16800 | 1
종이컵 (6.5oz) 1000개 | 19800 | 1
아이스컵 (PET 16oz) 1000개 | 42000 | 2 | summer
아이스컵 뚜껑 1000개 | 21000 | 2 | summer
핫컵 (12oz) 1000개 | 38000 | 1 | winter
컵홀더 1000개 | 18800 | 1 | winter
종이빨대 2000개 | 16800 | 1
컵 캐리어 (2구) 200개 | 16800 | 1
배달용 비닐봉투 1000매 | 18900 | 2
실링 필름 1롤 | 26000 | 1
위생장갑 (일회용 비닐) 1000매 | 6900 | 3
니트릴 장갑 100매 | 8900 | 2
위생모 (부직포) 100개 | 6800 | 1
업소용 랩 30cm×500m | 14800 | 1
업소용 호일 30cm | 15800 | 1
키친타월 6롤 | 8900 | 2
개별포장 물티슈 400매 | 9800 | 2
나무젓가락 (개별포장) 1000개 | 14800 | 1
일회용 숟가락 1000개 | 13800 | 1
냅킨 5000매 | 14800 | 1
지퍼백 (대) 100매 | 6800 | 1

[주방소모품]
주방세제 18.75L | 28800 | 1
업소용 락스 4L | 5900 | 1
고무장갑 10켤레 | 9800 | 1
수세미 20개 | 6800 | 1
식기세척기 세제 18kg | 42000 | 1
참숯 10kg | 28000 | 2
일회용 불판 호일 100매 | 12800 | 1
부탄가스 28개 | 26800 | 1 | winter
고체연료 100개 | 18800 | 1
"""

# -------------------------------------------------------------------------------------------------
# Menu items per industry:
#   "canonical/alternative names... @English name ; popularity ; product*weight, ..."
# Product references are exact names or unique name prefixes from the catalog.
# -------------------------------------------------------------------------------------------------
_MENU = """
[chicken]
후라이드치킨/프라이드치킨/후라이드 @Fried Chicken ; 10 ; 생닭 10호*2, 튀김가루*1, 치킨 파우더*1
양념치킨 @Yangnyeom Chicken ; 9 ; 생닭 10호*1.5, 양념치킨 소스*2
간장치킨 @Soy Garlic Chicken ; 5 ; 간장치킨 소스*2, 생닭 10호*1, 다진마늘*0.5
순살치킨 @Boneless Chicken ; 6 ; 순살치킨용 닭정육*2.5
반반치킨 ; 5 ; 양념치킨 소스*1, 생닭 10호*1
파닭 ; 3 ; 대파*2, 생닭 10호*1
마늘치킨 ; 2 ; 다진마늘*1.5, 마늘 (깐마늘)*1
치즈볼 @Cheese Balls ; 4 ; 치즈볼 (냉동)*2, 모짜렐라 치즈*1.5
뿌링클치즈치킨/스노윙치킨 ; 2 ; 스노윙 치즈 시즈닝*2, 파마산 치즈*0.5
허니버터치킨 ; 2 ; 허니버터 시즈닝*2
닭강정 ; 3 ; 물엿*1.5, 감자전분*1, 닭다리살 정육*1.5
치킨너겟 @Chicken Nuggets ; 2 ; 치킨너겟*2
감자튀김 @French Fries ; 4 ; 감자튀김 (냉동)*2
똥집튀김/닭똥집튀김 ; 2 ; 닭근위*2
윙봉 @Wings ; 2 ; 닭날개*1, 닭봉*1
옛날통닭/통닭 ; 3 ; 생닭 절단육*2, 부침가루*0.5
생맥주 @Draft Beer ; 3 ; 생맥주 케그*2

[korean]
김치찌개 ; 8 ; 배추김치*1, 돼지 앞다리살*1.5, 두부 (찌개용)*1
된장찌개 ; 8 ; 된장*1, 두부 (찌개용)*1, 애호박*1, 바지락*0.5
제육볶음 ; 7 ; 돼지 앞다리살*2, 고추장*1
순두부찌개 ; 4 ; 순두부*2, 바지락*0.5
부대찌개 ; 3 ; 스팸*1.5, 소시지 (프랑크)*1, 라면 사리*1
순대국밥/돼지국밥/국밥 ; 4 ; 돼지 사태*1.5, 순대*1, 소 사골*1
설렁탕 ; 3 ; 소 사골*2.5, 소 양지*1, 소면*0.5
갈비탕 ; 2 ; 소갈비 LA*1.5, 당면*0.5
비빔밥 ; 5 ; 콩나물*1, 고추장*1, 애호박*0.5
불고기 정식/불고기정식 ; 4 ; 소 불고기용*2, 불고기 양념*1
물냉면/냉면 ; 3 ; 냉면 사리*2, 냉면 육수*2
비빔냉면 ; 2 ; 냉면 사리*1.5, 냉면 비빔장*1.5
칼국수 ; 3 ; 칼국수면*2, 바지락*1
수제비 ; 1 ; 수제비 반죽*2
삼계탕 ; 2 ; 생닭 10호*2, 찹쌀*1.5, 수삼*1
한방오리백숙/오리백숙 ; 2 ; 오리 통*2, 찹쌀*1, 수삼*0.5
감자탕 ; 2 ; 돼지 등뼈*2.5, 감자 10kg*1, 깻잎*0.5
콩국수 ; 2 ; 콩국수면*2, 무가당 두유*1
도시락 ; 2 ; 도시락 용기*2, 떡갈비*1
전복죽 ; 1 ; 활전복*1.5, 찹쌀*0.5
떡만둣국/떡국 ; 2 ; 떡국떡*2, 물만두*1
육개장 ; 2 ; 소 양지*1.5, 숙주*1, 고춧가루*0.5
고등어구이/생선구이 ; 2 ; 고등어 필렛*2
계란말이 ; 2 ; 계란*1.5
도토리묵무침 ; 1 ; 도토리묵*2

[bunsik]
떡볶이 @Tteokbokki ; 10 ; 떡볶이떡 (밀떡)*2, 떡볶이 소스*1.5, 어묵 사각*1
쌀떡볶이 ; 2 ; 떡볶이떡 (쌀떡)*2.5, 떡볶이 소스*0.5
김밥/야채김밥 @Gimbap ; 9 ; 김밥김*1.5, 단무지 (김밥용*1, 맛살*1, 김밥햄*1, 우엉조림*0.5, 김밥 은박지*1
참치김밥 ; 4 ; 참치캔*1.5, 마요네즈*0.5, 김밥김*0.5
치즈김밥 ; 2 ; 체다 슬라이스 치즈*1.5, 김밥김*0.5
라면 @Ramyeon ; 6 ; 라면 사리*2
순대 ; 5 ; 순대*2
모듬튀김/튀김 ; 6 ; 모듬튀김*1.5, 김말이*1.5
쫄면 ; 3 ; 쫄면사리*2, 쫄면 소스*1.5, 콩나물*0.3
어묵탕/오뎅 ; 4 ; 꼬치어묵*2
라볶이 ; 3 ; 라면 사리*1, 떡볶이떡 (밀떡)*1
치즈떡볶이 ; 2 ; 피자치즈*1.5
로제떡볶이 ; 2 ; 로제 소스*1.5, 생크림*0.5
우동 ; 2 ; 우동면*2, 우동 쯔유*1
주먹밥 ; 2 ; 조미김*1, 참기름*0.5
붕어빵 ; 1 ; 붕어빵 믹스*2, 팥앙금*1
호떡 ; 1 ; 호떡 믹스*2
컵밥 ; 1 ; 스팸*1, 계란*1

[chinese]
짜장면/자장면 @Jajangmyeon ; 10 ; 중화면*2, 춘장*2, 양파*1, 돼지 앞다리살*0.5
짬뽕 @Jjamppong ; 9 ; 짬뽕면*2, 오징어*1, 홍합*1, 고추기름*1
탕수육 @Sweet and Sour Pork ; 8 ; 돼지 등심*2, 감자전분*1.5, 건목이버섯*0.3
간짜장/간자장 ; 3 ; 춘장*1.5, 중화면*1
볶음밥 @Fried Rice ; 5 ; 계란*1, 칵테일새우*0.5, 냉동 볶음밥*0.5
군만두 @Dumplings ; 4 ; 군만두*2
깐풍기 ; 2 ; 닭다리살 정육*2, 감자전분*0.5
양장피 ; 1 ; 칵테일새우*1, 해파리*1
마라탕 @Malatang ; 4 ; 마라탕 소스*2, 분모자*1, 마라탕용 넓은당면*1, 청경채*1, 화자오*0.5
마라샹궈 ; 2 ; 마라탕 소스*1.5, 화자오*1, 냉동 새우*0.5
양꼬치 @Lamb Skewers ; 3 ; 양꼬치용 양고기*3, 쯔란*1
꿔바로우 ; 2 ; 돼지 등심*1.5, 감자전분*1.5
딤섬/샤오롱바오 @Dim Sum ; 2 ; 찐만두*2, 만두피*1
마파두부 ; 2 ; 두부 (찌개용)*1.5, 두반장*1.5
고추잡채 ; 1 ; 파프리카*1, 돼지 등심*0.5, 죽순*1
고량주 ; 2 ; 고량주*2

[japanese]
모듬초밥/초밥 @Sushi ; 7 ; 광어 필렛*1.5, 연어 필렛*1.5, 초밥 배합초*1, 생와사비*0.5
사케동/연어덮밥 @Salmon Bowl ; 4 ; 연어 필렛*2
돈까스/돈가스/돈카츠 @Pork Cutlet ; 8 ; 돼지 등심*2, 빵가루*1.5, 돈까스 소스*1.5, 양배추*1
치즈돈까스/치즈돈가스 ; 3 ; 모짜렐라 치즈*1.5, 돼지 등심*0.5
우동 @Udon ; 6 ; 우동면*2, 우동 쯔유*1
돈코츠라멘/라멘 @Ramen ; 4 ; 라멘면*2, 돈코츠 라멘 육수*2, 계란*0.5
냉소바/소바 ; 2 ; 소바면*2, 우동 쯔유*0.5
규동 ; 2 ; 소 불고기용*1.5, 양파*0.5
카레라이스/카레 @Japanese Curry ; 3 ; 일본식 카레 분말*2
가츠동/돈까스덮밥 ; 2 ; 돼지 등심*1, 계란*1
생선까스 ; 2 ; 생선까스*2
새우튀김/에비텐 ; 2 ; 냉동 새우*2, 튀김가루*1
참치뱃살 ; 1 ; 참치 뱃살*2
유부초밥 ; 2 ; 유부*2
알밥/날치알밥 ; 1 ; 날치알*2
명란크림우동 ; 1 ; 명란젓*2, 생크림*0.5
사케 ; 2 ; 사케*2

[seafood]
모듬회/광어회 @Sashimi Platter ; 8 ; 광어 필렛*2.5, 초고추장*1
연어회 ; 3 ; 연어 필렛*2
물회 ; 3 ; 광어 필렛*1, 초고추장*1, 식용얼음*1.5
조개구이 ; 3 ; 바지락*1, 홍합*1, 가리비*1.5, 부탄가스*0.5
해물찜 ; 3 ; 오징어*1, 냉동 새우*1, 꽃게*1, 콩나물*1.5
아구찜/아귀찜 ; 4 ; 아구*2.5, 콩나물*1.5, 미나리*1
대게찜/대게 @Snow Crab ; 2 ; 대게*2
장어구이 ; 2 ; 장어*2.5
해물탕 ; 2 ; 꽃게*1, 낙지*1, 바지락*1
낙지볶음 ; 2 ; 낙지*2
굴보쌈/생굴 ; 1 ; 생굴*2
매운탕 ; 2 ; 고춧가루*0.5, 무 1개*1, 미나리*0.5
전복구이 ; 1 ; 활전복*2
방어회 ; 1 ; 방어 필렛*2
쭈꾸미볶음/주꾸미볶음 ; 2 ; 쭈꾸미*2

[meat_bbq]
생삼겹살/삼겹살 @Pork Belly ; 10 ; 돼지 삼겹살*3
목살 ; 6 ; 돼지 목살*2.5
돼지갈비/양념갈비 ; 5 ; 돼지갈비 양념*2.5, 갈비 양념 소스*0.5
LA갈비/소갈비 ; 2 ; 소갈비 LA*2
한우등심/한우 ; 2 ; 한우 등심*2
차돌박이 ; 3 ; 소 차돌박이*2
우삼겹 ; 2 ; 우삼겹*2
소곱창/곱창구이 ; 3 ; 소 곱창*2.5, 곱창 양념*1
대창구이/대창 ; 2 ; 소 대창*2
막창구이/막창 ; 2 ; 돼지 막창*2
항정살/특수부위 ; 2 ; 돼지 항정살*2
물냉면/냉면 ; 3 ; 냉면 사리*1, 냉면 육수*1
된장찌개 ; 4 ; 된장*1, 두부 (찌개용)*0.5
계란찜 ; 3 ; 계란*1.5
소불고기/불고기 ; 2 ; 소 불고기용*2

[jokbal_bossam]
족발 @Jokbal ; 10 ; 돼지 족*3, 족발 육수 소스*1.5
보쌈 @Bossam ; 8 ; 돼지 삼겹살*1.5, 무말랭이 무침*1.5, 배추 1망*1
반반족발 ; 4 ; 돼지 족*1, 돼지 삼겹살*1
불족발/매운족발 ; 3 ; 고추장*0.5, 청양고추*1, 돼지 족*1
냉채족발 ; 2 ; 오이 10개*1, 해파리*1, 머스타드*0.3
막국수 ; 3 ; 메밀면*2, 냉면 비빔장*0.5
쟁반국수 ; 1 ; 소면*1.5, 양배추*0.5
마늘보쌈 ; 2 ; 다진마늘*2, 돼지 삼겹살*1
굴보쌈 ; 1 ; 생굴*2
주먹밥 ; 1 ; 조미김*1
족발도시락 ; 1 ; 족발 (반조리)*2, 도시락 용기*1

[pizza]
페퍼로니피자 @Pepperoni Pizza ; 8 ; 페퍼로니*2
불고기피자 @Bulgogi Pizza ; 5 ; 소 불고기용*1, 불고기 양념*0.5
포테이토피자 @Potato Pizza ; 5 ; 웨지감자*1.5, 마요네즈*0.5, 베이컨*0.5
콤비네이션피자/슈퍼슈프림 @Combination Pizza ; 6 ; 페퍼로니*0.5, 파프리카*0.5, 블랙올리브*1
치즈피자 @Cheese Pizza ; 5 ; 피자치즈*2
고구마피자 ; 3 ; 고구마 5kg*2, 크림치즈*0.5
하와이안피자 @Hawaiian Pizza ; 2 ; 파인애플*1.5, 베이컨*0.5
마르게리따/마르게리타 @Margherita ; 2 ; 토마토 5kg*1, 바질 페스토*0.5, 모짜렐라 치즈*1
치즈오븐스파게티 ; 3 ; 스파게티면*1.5, 토마토 파스타 소스*1
치즈스틱 @Cheese Sticks ; 3 ; 모짜렐라 치즈*1.5, 빵가루*0.5
버팔로윙 @Buffalo Wings ; 2 ; 닭날개*2, 바베큐 소스*0.5
시카고피자 @Chicago Pizza ; 1 ; 피자치즈*2, 피자 도우볼*1
콘샐러드 ; 1 ; 옥수수콘*1.5, 마요네즈*0.5

[burger]
치즈버거 @Cheeseburger ; 8 ; 햄버거 패티*2, 체다 슬라이스 치즈*1.5, 버거번*1
불고기버거 @Bulgogi Burger ; 4 ; 불고기 양념*1, 돼지 뒷다리살 다짐육*1.5
새우버거 @Shrimp Burger ; 3 ; 냉동 새우*1.5, 빵가루*0.5
치킨버거 @Chicken Burger ; 4 ; 치킨 패티*2
더블버거/수제버거 @Double Burger ; 4 ; 브리오슈 번*1.5, 햄버거 패티*2
베이컨버거 @Bacon Burger ; 2 ; 베이컨*2
감자튀김 @French Fries ; 7 ; 감자튀김 (냉동)*2
어니언링 @Onion Rings ; 2 ; 양파*1, 튀김가루*1
치킨너겟 @Chicken Nuggets ; 3 ; 치킨너겟*2
핫도그 @Hot Dog ; 3 ; 핫도그빵*2, 핫도그 소시지*2, 머스타드*0.5
클럽샌드위치/샌드위치 @Club Sandwich ; 3 ; 식빵*2, 슬라이스 햄*1, 베이컨*0.5
밀크쉐이크 @Milkshake ; 2 ; 아이스크림*2, 우유 1L*1

[western]
토마토파스타/토마토 스파게티 @Tomato Pasta ; 6 ; 토마토 파스타 소스*2, 스파게티면*1
까르보나라/크림파스타 @Carbonara ; 6 ; 크림 파스타 소스*1.5, 베이컨*1, 생크림*1
알리오올리오 @Aglio e Olio ; 4 ; 올리브유*1.5, 마늘 (깐마늘)*1.5
로제파스타 @Rose Pasta ; 3 ; 로제 소스*2
봉골레 @Vongole ; 2 ; 바지락*2, 하우스 와인 화이트*0.5
스테이크 @Steak ; 5 ; 스테이크용 부채살*2.5, 무염버터*0.5
리조또/리조토 @Risotto ; 4 ; 생크림*1, 새송이버섯*1, 파마산 치즈*0.5
함박스테이크 @Hamburg Steak ; 3 ; 소고기 다짐육*2, 데미글라스 소스*1
에그베네딕트/브런치 @Eggs Benedict ; 3 ; 계란*2, 베이컨*1, 무염버터*0.5
바질페스토파스타 @Pesto Pasta ; 2 ; 바질 페스토*2
부라타샐러드 @Burrata Salad ; 2 ; 부라타 치즈*2, 방울토마토*1
감바스 @Gambas ; 3 ; 냉동 새우*2, 올리브유*1, 바게트*1
오므라이스 ; 2 ; 계란*2, 케첩*1
시저샐러드 @Caesar Salad ; 2 ; 로메인*2, 시저 드레싱*1
하우스와인 @House Wine ; 3 ; 하우스 와인 레드*2, 하우스 와인 화이트*1

[asian]
쌀국수/소고기쌀국수 @Pho ; 10 ; 쌀국수면*2, 쌀국수 육수*2, 소 양지*1, 숙주*1
분짜 @Bun Cha ; 3 ; 돼지 목살*1.5, 피쉬소스*1
팟타이 @Pad Thai ; 6 ; 팟타이면*2, 팟타이 소스*2, 냉동 새우*0.5, 볶음땅콩*0.5
반미 @Banh Mi ; 3 ; 바게트*2, 고수*0.5
월남쌈 @Spring Rolls ; 3 ; 라이스페이퍼*2, 칵테일새우*0.5
똠얌꿍 @Tom Yum Goong ; 2 ; 똠얌 페이스트*1.5, 냉동 새우*1
그린커리 @Green Curry ; 2 ; 코코넛밀크*1.5, 커리 페이스트*1
버터치킨커리/인도커리 @Butter Chicken Curry ; 3 ; 커리 페이스트*2, 닭다리살 정육*1.5, 생크림*0.5
난/갈릭난 @Naan ; 3 ; 밀가루 (중력분)*1.5, 플레인 요구르트*1
탄두리치킨 @Tandoori Chicken ; 2 ; 닭다리살 정육*2, 플레인 요구르트*1
나시고랭 @Nasi Goreng ; 2 ; 계란*0.5, 스리라차*1
뿌팟퐁커리 ; 1 ; 꽃게*2, 코코넛밀크*1
짜조 ; 1 ; 라이스페이퍼*1, 돼지 뒷다리살 다짐육*1

[cafe_dessert]
아메리카노 @Americano ; 10 ; 원두 에스프레소*2, 식용얼음*0.5
카페라떼/카페라테/카페 라떼 @Cafe Latte ; 9 ; 카페용 멸균우유*2, 원두 에스프레소*1
바닐라라떼 @Vanilla Latte ; 5 ; 바닐라 시럽*1.5, 카페용 멸균우유*1
카라멜마끼아또/캬라멜마끼아또 @Caramel Macchiato ; 4 ; 카라멜 시럽*1, 카라멜 소스*1
콜드브루 @Cold Brew ; 3 ; 콜드브루 원액*2
디카페인 아메리카노 @Decaf Americano ; 2 ; 디카페인 원두*2
핸드드립 @Hand Drip ; 2 ; 원두 싱글오리진*2
말차라떼/녹차라떼 @Matcha Latte ; 3 ; 말차 파우더*1.5, 카페용 멸균우유*1
초코라떼/핫초코 @Hot Chocolate ; 3 ; 초코 파우더*2, 카페용 멸균우유*0.5
아이스티 @Iced Tea ; 3 ; 아이스티 파우더*2
얼그레이 @Earl Grey ; 2 ; 얼그레이 티백*2
유자차 ; 2 ; 유자청*2
대추차 ; 1 ; 대추차 베이스*2
레몬에이드 @Lemonade ; 3 ; 레몬청*2, 탄산수*1.5
자몽에이드 @Grapefruit Ade ; 3 ; 자몽청*2, 탄산수*1
고구마라떼 ; 2 ; 고구마 라떼 파우더*2
딸기라떼 @Strawberry Latte ; 2 ; 딸기 라떼 베이스*1.5, 딸기 2kg*0.5
팥빙수/빙수 @Bingsu ; 3 ; 팥 (빙수용*2, 연유*1.5, 빙수용 우유얼음*2, 빙수떡*1
망고빙수 @Mango Bingsu ; 2 ; 냉동 망고*2, 빙수용 우유얼음*1.5, 연유*1
인절미빙수 ; 1 ; 콩가루*1.5, 빙수떡*1.5, 빙수용 우유얼음*1
바나나주스/생과일주스 @Fresh Juice ; 3 ; 바나나*1.5, 청포도*0.5
수박주스 @Watermelon Juice ; 2 ; 수박*3
망고스무디 @Mango Smoothie ; 2 ; 냉동 망고*1, 플레인 요구르트*1
조각케이크/케이크 @Cake ; 4 ; 케이크 시트*1.5, 생크림*1.5, 딸기 2kg*0.5, 케이크 상자*1
티라미수 @Tiramisu ; 2 ; 크림치즈*1, 원두 에스프레소*0.3
마카롱 @Macaron ; 2 ; 마카롱 꼬끄*2
크로플 @Croffle ; 3 ; 크로플 생지*2, 슈가파우더*0.5
와플 @Waffle ; 2 ; 와플 믹스*2, 휘핑크림*1
소프트아이스크림 @Soft Serve ; 2 ; 소프트아이스크림 파우더*2
수박화채/화채 ; 1 ; 수박*1.5, 후르츠칵테일*1, 사이다*1
초코칩쿠키/쿠키 @Cookie ; 2 ; 초코칩*1, 무염버터*1, 박력분*1

[bakery]
식빵 @White Bread ; 6 ; 강력분*1.5, 생이스트*0.5
크루아상/크로아상/크로와상 @Croissant ; 5 ; 냉동 생지 크루아상*2, 무염버터*1
베이글 @Bagel ; 4 ; 냉동 생지 베이글*2, 크림치즈*1.5
소금빵 @Salt Bread ; 5 ; 무염버터*2, 강력분*0.5
단팥빵 ; 3 ; 팥앙금*2
크림빵 ; 2 ; 커스터드 크림 믹스*2
소보로빵 ; 2 ; 박력분*1, 볶음땅콩*0.5
바게트 @Baguette ; 2 ; 강력분*1
치아바타 @Ciabatta ; 1 ; 치아바타*1.5, 올리브유*0.5
생크림케이크/케이크 @Cake ; 4 ; 케이크 시트*1.5, 생크림*2, 딸기 2kg*1, 케이크 상자*1
마늘빵 @Garlic Bread ; 2 ; 다진마늘*1, 무염버터*1
에그타르트 @Egg Tart ; 2 ; 계란*1.5, 생크림*0.5
샌드위치 @Sandwich ; 3 ; 식빵*1, 슬라이스 햄*1, 양상추*1
초코칩쿠키/쿠키 @Cookie ; 2 ; 초코칩*1.5
호두파이 @Pecan Pie ; 1 ; 호두*2
시나몬롤 @Cinnamon Roll ; 2 ; 계피가루*1.5
딸기잼 토스트 ; 1 ; 딸기잼*1.5, 식빵*0.5

[pub]
골뱅이무침 ; 5 ; 골뱅이 통조림*2, 소면*1
모듬소시지 @Sausage Platter ; 4 ; 소시지 (프랑크)*2, 소시지 (비엔나)*1
감자튀김 @French Fries ; 4 ; 감자튀김 (냉동)*2
나쵸 @Nachos ; 2 ; 나쵸칩*2, 할라피뇨*0.5
먹태/마른안주 ; 3 ; 먹태*2, 쥐포*1
어묵탕/오뎅탕 ; 4 ; 꼬치어묵*2
해물파전/파전 ; 4 ; 부침가루*2, 쪽파*1.5, 오징어*0.5
김치전 ; 2 ; 부침가루*1, 배추김치*1
막걸리 @Makgeolli ; 4 ; 막걸리*3
닭꼬치/꼬치 @Yakitori ; 3 ; 닭다리살 정육*2, 데리야끼 소스*1
계란말이 ; 3 ; 계란*2
두부김치 ; 3 ; 두부 (찌개용)*1.5, 배추김치*1
하이볼 @Highball ; 3 ; 하이볼용 위스키*2, 토닉워터*1, 탄산수*1
사케 @Sake ; 2 ; 사케*2
하우스와인 @House Wine ; 2 ; 하우스 와인 레드*2
연어사시미 ; 2 ; 연어 필렛*1.5
오징어튀김 ; 2 ; 오징어*1.5, 튀김가루*1
홍합탕 ; 2 ; 홍합*2
짬뽕탕 ; 1 ; 홍합*1, 오징어*1, 고추기름*0.5
생맥주 @Draft Beer ; 5 ; 생맥주 케그*3

[salad]
닭가슴살샐러드 @Chicken Salad ; 8 ; 닭가슴살*2
연어샐러드 @Salmon Salad ; 3 ; 연어 필렛*1.5
연어포케/포케 @Poke Bowl ; 5 ; 연어 필렛*1, 현미*1, 아보카도*1, 퀴노아*0.5
시저샐러드 @Caesar Salad ; 3 ; 로메인*1.5, 시저 드레싱*1.5, 베이컨*0.3
리코타샐러드 @Ricotta Salad ; 2 ; 리코타 치즈*2
그릭요거트볼/그릭요거트 @Greek Yogurt Bowl ; 4 ; 그릭요거트*2.5, 그래놀라*1
치킨랩/랩 @Chicken Wrap ; 3 ; 또띠아*2, 닭가슴살*0.5
케일주스/해독주스 @Green Juice ; 2 ; 케일*2, 바나나*0.5
두부샐러드 ; 1 ; 두부 (찌개용)*1.5
훈제오리샐러드 ; 1 ; 훈제오리*2
퀴노아볼/곡물볼 @Grain Bowl ; 2 ; 퀴노아*1.5, 혼합잡곡*0.5
오트밀 @Oatmeal ; 1 ; 귀리*2, 오트밀크*1

[other]
음료/음료수 ; 5 ; 콜라 캔*1.5, 사이다*1, 생수*1
컵라면 ; 3 ; 라면 사리*1
과자/스낵 ; 3 ; 팝콘*1, 나쵸칩*0.5, 볶음땅콩*0.5
생활용품 ; 3 ; 개별포장 물티슈*1.5, 키친타월*1.5
캡슐커피 ; 2 ; 원두 에스프레소*0.5, 종이컵*1
케이터링 ; 1 ; 도시락 용기*1.5, 나무젓가락*1
아이스크림 ; 1 ; 아이스크림*1
"""

# Staple products of each industry (bought regardless of the exact menu).
_STAPLES = {
    "chicken": "생닭 10호*4, 튀김가루*2, 치킨 파우더*1.5, 식용유*2, 치킨무*3, 치킨 포장박스*2, 콜라 1.25L*1.5, "
    "염지제*0.5, 튀김유*1",
    "korean": "쌀 20kg*3, 배추김치*2, 고춧가루*1, 진간장*1, 된장*1, 두부 (찌개용)*1, 계란*1, 참기름*0.5, "
    "깍두기*1, 소고기 다시다*0.5, 멸치*0.5",
    "bunsik": "떡볶이떡 (밀떡)*3, 떡볶이 소스*2, 어묵 사각*2, 김밥김*1, 단무지 (김밥용*1, 순대*1, 쌀 20kg*1, "
    "계란*1, 일회용 숟가락*0.5",
    "chinese": "중화면*3, 춘장*2, 양파*2, 단무지 (반달)*2, 굴소스*1, 짜사이*0.5, 감자전분*1, 식용유*1",
    "japanese": "쌀 20kg*2, 우동 쯔유*1, 생와사비*1, 초밥 배합초*1, 단무지 (반달)*1, 진간장*0.5, 양배추*1",
    "seafood": "광어 필렛*2, 초고추장*1.5, 상추*1, 깻잎*1, 소주*2, 생와사비*0.5, 맥주*1",
    "meat_bbq": "참숯*2, 상추*2, 깻잎*1.5, 쌈장*1.5, 쌈무*1, 소주*2, 맥주*1, 마늘 (깐마늘)*1, 청양고추*0.5, "
    "일회용 불판 호일*0.5",
    "jokbal_bossam": "돼지 족*4, 상추*1.5, 쌈장*1, 새우젓*1, 배추 1망*1, 소주*1, 마늘 (깐마늘)*0.5, "
    "포장용기 사각*1",
    "pizza": "피자 도우 (냉동 12인치)*3, 피자치즈*3, 피자 소스*2, 피자 박스*2, 오이피클*1.5, 콜라 1.25L*1, "
    "파마산 치즈*0.5, 핫도그 소시지*0.3",
    "burger": "버거번*3, 햄버거 패티*2, 감자튀김 (냉동)*3, 체다 슬라이스 치즈*1.5, 양상추*1.5, 토마토 5kg*1, "
    "케첩*1, 오이피클*1, 콜라 캔*1.5",
    "western": "스파게티면*2, 올리브유*2, 마늘 (깐마늘)*1, 생크림*1.5, 파마산 치즈*1, 하우스 와인 레드*1, "
    "무염버터*1, 새송이버섯*0.5",
    "asian": "쌀국수면*3, 쌀국수 육수*2, 숙주*2, 고수*1, 라임*0.5, 피쉬소스*1, 스리라차*1, 양파*0.5",
    "cafe_dessert": "원두 에스프레소*4, 카페용 멸균우유*3, 아이스컵 (PET*2, 아이스컵 뚜껑*1.5, 핫컵*1, "
    "종이빨대*1, 식용얼음*2, 바닐라 시럽*0.5, 컵 캐리어*0.5, 컵홀더*0.5",
    "bakery": "강력분*3, 박력분*1.5, 무염버터*3, 설탕*1.5, 계란*2, 생이스트*1, 우유 1L*1, 빵 봉투*2, 생크림*1",
    "pub": "소주*3, 맥주*3, 생맥주 케그*2, 볶음땅콩*1, 팝콘*0.5, 식용얼음*1, 감자튀김 (냉동)*1",
    "salad": "로메인*3, 어린잎채소*2, 방울토마토*1.5, 샐러드 용기*2, 발사믹 드레싱*1, 오리엔탈 드레싱*1, "
    "닭가슴살*1.5, 아보카도*0.5",
    "other": "생수*1, 즉석밥*1, 종이컵*1, 콜라 캔*0.5",
}

# Bought by every business (packaging, hygiene) and by every kitchen (basics), scaled per industry.
_COMMON_SUPPLIES = (
    "포장용기 원형 500ml*1, 포장용기 원형 1000ml*0.8, 위생장갑*1, 키친타월*0.5, 배달용 비닐봉투*0.6, "
    "개별포장 물티슈*0.4, 주방세제*0.4, 업소용 락스*0.3, 고무장갑*0.2, 니트릴 장갑*0.3, 나무젓가락*0.3"
)
_KITCHEN_BASICS = (
    "식용유 (대두유)*0.8, 쌀 20kg*0.6, 양파*0.6, 대파*0.6, 다진마늘*0.4, 설탕*0.3, 천일염*0.3, 진간장*0.3, "
    "계란*0.4, 업소용 랩*0.2"
)
_BASICS_FACTOR = {"cafe_dessert": 0.1, "bakery": 0.3, "other": 0.2, "pub": 0.6, "salad": 0.5}

# Industry mix, roughly like Korean delivery/restaurant counts.
_INDUSTRY_SHARE = {
    "korean": 20, "chicken": 12, "cafe_dessert": 14, "bunsik": 8, "chinese": 7, "pub": 8,
    "meat_bbq": 7,
    "japanese": 5, "jokbal_bossam": 3, "pizza": 4, "burger": 3, "western": 3, "asian": 2.5,
    "bakery": 3, "seafood": 3, "salad": 1.5, "other": 0.7,
}

# Natural side dishes from neighbouring industries (not flagged as hard cases).
_CROSS_SELL = {
    "chicken": ("bunsik", "pub"), "korean": ("japanese", "bunsik"),
    "bunsik": ("japanese", "korean"),
    "chinese": ("korean",), "japanese": ("pub", "korean"), "seafood": ("pub", "korean"),
    "meat_bbq": ("korean",), "jokbal_bossam": ("korean",), "pizza": ("burger", "western"),
    "burger": ("pizza",), "western": ("pizza", "salad"), "asian": ("chinese",),
    "cafe_dessert": ("bakery",), "bakery": ("cafe_dessert",),
    "pub": ("chicken", "bunsik", "seafood"),
    "salad": ("cafe_dessert",), "other": ("cafe_dessert", "bunsik"),
}

_MENU_PRICE = {
    "chicken": (16000, 24000), "korean": (8000, 14000), "bunsik": (3000, 7000),
    "chinese": (7000, 25000),
    "japanese": (9000, 22000), "seafood": (25000, 70000), "meat_bbq": (13000, 35000),
    "jokbal_bossam": (28000, 45000), "pizza": (15000, 30000), "burger": (5000, 12000),
    "western": (14000, 32000), "asian": (9000, 16000), "cafe_dessert": (3000, 12000),
    "bakery": (2500, 7000), "pub": (9000, 25000), "salad": (8000, 14000), "other": (1000, 5000),
}

_EMOJI = {
    "chicken": "🍗", "korean": "🍚", "bunsik": "🌶️", "chinese": "🥟", "japanese": "🍣", "seafood": "🐟",
    "meat_bbq": "🥩", "jokbal_bossam": "🐷", "pizza": "🍕", "burger": "🍔", "western": "🍝",
    "asian": "🍜",
    "cafe_dessert": "☕", "bakery": "🥐", "pub": "🍺", "salad": "🥗", "other": "✨",
}

# Name parts: cores are combined with places/surnames/adjectives; "fun" are stand-alone shop names.
_NAME_CORES = {
    "chicken": ("치킨", "통닭", "치킨집", "닭강정", "후라이드"),
    "korean": ("식당", "밥집", "백반", "국밥", "한식당", "밥상", "설렁탕", "김치찌개"),
    "bunsik": ("분식", "떡볶이", "김밥", "즉석떡볶이"),
    "chinese": ("반점", "중화요리", "짬뽕", "마라탕", "양꼬치", "중국집"),
    "japanese": ("스시", "초밥", "라멘", "돈까스", "우동", "일식", "카츠"),
    "seafood": ("횟집", "수산", "회센터", "아구찜", "조개구이", "해물찜"),
    "meat_bbq": ("고기집", "삼겹살", "갈비", "곱창", "정육식당", "숯불구이"),
    "jokbal_bossam": ("족발", "보쌈", "족발보쌈"),
    "pizza": ("피자", "화덕피자", "피자하우스"),
    "burger": ("버거", "수제버거", "햄버거"),
    "western": ("파스타", "비스트로", "레스토랑", "스테이크하우스", "브런치"),
    "asian": ("쌀국수", "베트남쌀국수", "타이푸드", "인도커리"),
    "cafe_dessert": ("카페", "커피", "디저트카페", "빙수", "로스터리"),
    "bakery": ("베이커리", "제과", "빵집", "베이글"),
    "pub": ("호프", "포차", "이자카야", "주막", "술집", "와인바"),
    "salad": ("샐러드", "포케", "샐러드바"),
    "other": ("상회", "유통", "마트", "편의점", "PC방", "노래방"),
}
_NAME_FUN = {
    "chicken": ("치키치키뱅뱅", "꼬꼬닭", "바삭한 형제들", "치킨공방", "꼬끼오", "두마리치킨", "닭장군"),
    "korean": ("엄마손밥상", "시골밥상", "한상차림", "할매국밥", "소문난 집밥", "고향집", "한옥마루"),
    "bunsik": ("떡볶이공장", "국민분식", "학교앞 분식", "김밥일번지", "떡반집"),
    "chinese": ("만리장성", "홍루", "북경", "상해루", "황궁", "마라공방", "띵호와"),
    "japanese": ("스시정", "스시하루", "멘야", "카츠공방", "돈카츠 명가", "사쿠라", "우동 한그릇"),
    "seafood": ("바다횟집", "통영수산", "포구", "어부네", "해녀의 집", "목포 세발낙지"),
    "meat_bbq": ("돈마루", "고기굽는 남자", "육장", "삼겹본가", "황소곱창", "숯불명가", "화로구이"),
    "jokbal_bossam": ("족발야시장", "원조족발", "마늘보쌈", "족발명가", "장충 족발"),
    "pizza": ("나폴리 피자", "피자굽는 집", "뉴욕 피자", "도우공방", "화덕 이야기"),
    "burger": ("버거공방", "버거하우스", "더블버거", "샌드위치공방", "핫도그 상회"),
    "western": ("비스트로 온", "라 쿠치나", "파스타공방", "트라토리아 솔레", "올리브 키친"),
    "asian": ("포 하노이", "방콕 키친", "타이 오키드", "사이공 쌀국수", "탄두리 하우스"),
    "cafe_dessert": ("카페 온도", "달콤커피", "카페 봄", "오늘의 커피", "눈꽃빙수", "디저트공방", "마카롱 하우스"),
    "bakery": ("빵굽는 마을", "밀당 베이커리", "소금빵 공방", "아침빵", "르 뺑"),
    "pub": ("한잔의 추억", "역전포차", "달빛주막", "이자카야 하루", "청춘포차", "노가리 골목", "맥주창고"),
    "salad": ("그린샐러드", "포케 아일랜드", "샐러드 공방", "헬시키친", "요거트 랩"),
    "other": ("행복상회", "미래유통", "푸드마켓", "한결상사", "동네마트", "다온상사"),
}
_NAME_EN = {
    "chicken": ("Crispy Chicken Co.", "Chicken Republic", "Fried Bird", "K-Chicken Lab",
                "Golden Wings"),
    "korean": ("Seoul Kitchen", "Hansik House", "Bibim Table", "Mom's Table", "K-Food Dining"),
    "bunsik": ("Tteok Station", "Gimbap Club", "Snack Alley", "K-Street Food"),
    "chinese": ("Dragon Palace", "Golden Wok", "Mala House", "Lucky Dumpling"),
    "japanese": ("Sushi Zen", "Ramen House", "Katsu Lab", "Udon Story"),
    "seafood": ("Ocean Grill", "Blue Sea Fish Market", "Crab House", "Sea & Table"),
    "meat_bbq": ("K-BBQ House", "Grill Master", "Meat Lab", "Charcoal Table"),
    "jokbal_bossam": ("Jokbal Factory", "Bossam House", "Pork Feet Club"),
    "pizza": ("Pizza Republic", "Slice Lab", "Napoli Oven", "Brooklyn Pizza"),
    "burger": ("Burger Lab", "Smash House", "Patty & Bun Co.", "Burger Joint 88"),
    "western": ("Pasta House", "The Brunch Table", "Bistro Luce", "Steak & Co."),
    "asian": ("Pho Saigon", "Bangkok Kitchen", "Curry Masala", "Little Hanoi"),
    "cafe_dessert": ("Blue Bottle Coffee", "Morning Glory Cafe", "Sweet Spoon", "Coffee Lab",
                     "Bingsu Factory"),
    "bakery": ("Bread & Butter", "Le Petit Four", "Daily Bagel", "Bakehouse 27"),
    "pub": ("Hop Street Pub", "Wine Bar Luna", "Craft Beer Factory", "Soju Bar 1988"),
    "salad": ("Green Bowl", "Salad Lab", "Poke Island", "Fresh Greens"),
    "other": ("Daily Mart", "Happy Catering", "Game Zone PC", "Office Supply Co."),
}
_SURNAMES = ("김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오", "서", "신", "권", "황")
_FAMILY = ("네", "씨네", "가네", " 할매", " 이모네")
_ADJECTIVES = ("원조", "옛날", "소문난", "착한", "황금", "정직한", "우리동네", "맛있는", "행복한", "24시")
_DESCRIPTIONS = (
    "{place} {kind} 전문점", "신선한 재료로 매일 준비합니다", "배달 전문", "포장 시 1,000원 할인",
    "정성을 다하는 {kind}", "단체 주문 환영", "{place}에서 {years}년째 영업 중", "24시간 영업",
    "매장 식사 및 배달 가능", "주차 가능, 예약 문의 환영",
)
_REGIONS = (
    ("서울 강남구", 5), ("서울 서초구", 3), ("서울 송파구", 4), ("서울 마포구", 3.5), ("서울 관악구", 2.5),
    ("서울 영등포구", 2.5), ("서울 강서구", 2.5), ("서울 광진구", 2), ("서울 성동구", 2), ("서울 용산구", 1.5),
    ("서울 종로구", 1.5), ("서울 중구", 1.5), ("서울 노원구", 2), ("서울 은평구", 1.5),
    ("부산 해운대구", 2), ("부산 부산진구", 2), ("부산 수영구", 1), ("부산 동래구", 1),
    ("대구 중구", 1), ("대구 수성구", 1.5), ("인천 연수구", 1.5), ("인천 부평구", 1.5), ("인천 남동구", 1.5),
    ("광주 서구", 1), ("광주 북구", 1), ("대전 유성구", 1.2), ("대전 서구", 1.2), ("울산 남구", 1),
    ("세종 세종시", 0.6), ("경기 수원시", 2.5), ("경기 성남시", 2.5), ("경기 고양시", 2), ("경기 용인시", 2),
    ("경기 부천시", 1.5), ("경기 화성시", 1.5), ("경기 안양시", 1.2), ("경기 남양주시", 1), ("경기 평택시", 1),
    ("강원 춘천시", 0.7), ("강원 강릉시", 0.7), ("충북 청주시", 1), ("충남 천안시", 1.2), ("전북 전주시", 1),
    ("전남 여수시", 0.6), ("전남 목포시", 0.5), ("경북 포항시", 0.8), ("경북 경주시", 0.5),
    ("경남 창원시", 1.2), ("경남 김해시", 0.8), ("제주 제주시", 1), ("제주 서귀포시", 0.5),
)

# Hard-case rates (independent draws; see `_restaurant_rows`).
_P_MISLEADING_NAME = 0.04
_P_MIXED_MENU = 0.04
_P_EMPTY_MENU = 0.03
_P_ENGLISH_NAME = 0.04
_P_PRICE_IN_ITEMS = 0.05
_P_EMOJI = 0.03
_P_WHITESPACE = 0.04
_P_ALTERNATIVE = 0.2  # per item with alternative names: use one of them (natural, not a hard case)
_P_SPELLING = 0.03  # per item: apply a common spelling variant / misspelling (hard case)
# (standard, variant) spellings seen on Korean menus; applied in either direction
_SPELLING = (
    ("까스", "가스"), ("짜장", "자장"), ("후라이드", "프라이드"), ("라떼", "라테"), ("크루아상", "크로아상"),
    ("마르게리따", "마르게리타"), ("리조또", "리조토"), ("아구", "아귀"), ("카라멜", "캬라멜"),
    ("쭈꾸미", "주꾸미"), ("떡볶이", "떡볶기"), ("찌개", "찌게"), ("케이크", "케잌"),
)


# -------------------------------------------------------------------------------------------------
# Static model tables (built once from the text above)
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Product:
    name: str
    category: str
    price: int
    base_qty: float
    season: str


@dataclass(frozen=True)
class _MenuItem:
    item_id: int
    industry: str
    names: tuple[str, ...]  # canonical first, then alternative names
    english: str | None
    popularity: float
    ingredients: tuple[tuple[int, float], ...]  # (product index, weight)


def _parse_catalog() -> list[_Product]:
    products: list[_Product] = []
    category = ""
    for raw in _CATALOG.strip().splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("["):
            category = line.strip("[]")
            continue
        parts = [p.strip() for p in line.split("|")]
        season = parts[3] if len(parts) > 3 else ""
        products.append(_Product(parts[0], category, int(parts[1]), float(parts[2]), season))
    names = [p.name for p in products]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate product names in catalog: {dupes}")
    return products


class _Model:
    """The generator's static causal tables: catalog, menu items, staples, seasonality."""

    def __init__(self) -> None:
        self.products = _parse_catalog()
        self.n_products = len(self.products)
        self._names = [p.name for p in self.products]
        self.industries = INDUSTRY_CODES
        self.ind_index = {c: i for i, c in enumerate(self.industries)}
        self.items: list[_MenuItem] = []
        self.items_by_industry: dict[str, list[_MenuItem]] = {c: [] for c in self.industries}
        self._parse_menu()
        n_ind = len(self.industries)
        self.staples = np.zeros((n_ind, self.n_products))
        for code in self.industries:
            i = self.ind_index[code]
            for p, w in self._refs(_STAPLES[code]):
                self.staples[i, p] += w
            factor = _BASICS_FACTOR.get(code, 1.0)
            for p, w in self._refs(_KITCHEN_BASICS):
                self.staples[i, p] += w * factor
            for p, w in self._refs(_COMMON_SUPPLIES):
                self.staples[i, p] += w
        self.item_matrix = np.zeros((len(self.items), self.n_products))
        for it in self.items:
            for p, w in it.ingredients:
                self.item_matrix[it.item_id, p] += w
        self.base_qty = np.array([p.base_qty for p in self.products])
        self.season = np.ones((12, self.n_products))
        for j, p in enumerate(self.products):
            if p.season:
                self.season[:, j] = _SEASON[p.season]

    def resolve(self, ref: str) -> int:
        ref = ref.strip()
        if ref in self._names:
            return self._names.index(ref)
        hits = [i for i, n in enumerate(self._names) if n.startswith(ref)]
        if len(hits) != 1:
            raise ValueError(f"product reference {ref!r} matches {[self._names[i] for i in hits]}")
        return hits[0]

    def _refs(self, spec: str) -> list[tuple[int, float]]:
        out = []
        for part in spec.split(","):
            if not part.strip():
                continue
            ref, _, weight = part.rpartition("*")
            out.append((self.resolve(ref), float(weight)))
        return out

    def _parse_menu(self) -> None:
        industry = ""
        for raw in _MENU.strip().splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("["):
                industry = line.strip("[]")
                if industry not in self.ind_index:
                    raise ValueError(f"unknown industry {industry!r} in menu table")
                continue
            head, popularity, ingredients = (s.strip() for s in line.split(";"))
            names_part, _, english = head.partition("@")
            names = tuple(n.strip() for n in names_part.split("/") if n.strip())
            item = _MenuItem(
                item_id=len(self.items),
                industry=industry,
                names=names,
                english=english.strip() or None,
                popularity=float(popularity),
                ingredients=tuple(self._refs(ingredients)),
            )
            self.items.append(item)
            self.items_by_industry[industry].append(item)
        empty = [c for c, its in self.items_by_industry.items() if not its]
        if empty:
            raise ValueError(f"industries without menu items: {empty}")

    def structural_weights(self, industry_idx: np.ndarray, item_counts: np.ndarray) -> np.ndarray:
        """Unnormalized per-restaurant product weights (rows) from industry staples + menu items."""
        return self.staples[industry_idx] + item_counts @ self.item_matrix


_MODEL: _Model | None = None


def _model() -> _Model:
    global _MODEL
    if _MODEL is None:
        _MODEL = _Model()
    return _MODEL


# -------------------------------------------------------------------------------------------------
# Public API
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleFiles:
    restaurants: Path
    products: Path
    orders: Path
    ground_truth: Path  # a separate folder; the pipeline's inputs never read it


def generate_sample(
    out_dir: Path | str,
    scale: str = "small",
    seed: int = 42,
    fmt: str = "parquet",
    n_restaurants: int | None = None,
    progress: bool = False,
) -> SampleFiles:
    """Write restaurants, products, orders (and the ground truth) for one scale and seed.

    Deterministic: the same (scale, seed, n_restaurants) gives identical tables in either format.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    base_r, base_lines = SCALES[scale]
    n_r = base_r if n_restaurants is None else int(n_restaurants)
    if n_r < 1:
        raise ValueError("n_restaurants must be >= 1")
    target_lines = base_lines * n_r / base_r

    out = Path(out_dir)
    gt_dir = out / "ground_truth"
    out.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)

    model = _model()
    rng = np.random.default_rng(np.random.SeedSequence([seed, n_r, 20261031]))
    bar = _progress_bar(progress, total=4, desc=f"sample {scale}")

    rest = _make_restaurants(model, n_r, rng)
    _tick(bar, "restaurants")

    products_tbl = pa.table(
        {
            "product_id": [f"P{i + 1:04d}" for i in range(model.n_products)],
            "name": [p.name for p in model.products],
            "category": [p.category for p in model.products],
            "unit_price": pa.array([p.price for p in model.products], pa.int64()),
        }
    )
    ext = "parquet" if fmt == "parquet" else "csv"
    files = SampleFiles(
        restaurants=out / f"restaurants.{ext}",
        products=out / f"products.{ext}",
        orders=out / f"orders.{ext}",
        ground_truth=gt_dir,
    )
    _write_table(rest["table"], files.restaurants, fmt)
    _write_table(products_tbl, files.products, fmt)

    params = _order_params(rest, target_lines)
    _tick(bar, "catalog")
    n_lines = _write_orders(model, rest, params, rng, files.orders, fmt, products_tbl)
    _tick(bar, "orders")
    _write_ground_truth(model, rest, params, gt_dir, seed=seed, scale=scale, n_lines=n_lines)
    _tick(bar, "ground truth")
    if bar is not None:
        bar.close()
    return files


def oracle_scores(ground_truth_dir: Path | str, restaurant_ids: Sequence[str]) -> pd.DataFrame:
    """True expected quantity per product in each restaurant's first 30 days (noise-free).

    Computed from the true industry, menu items, size and activity stored in the ground truth,
    with the same seasonal weights the generator used. Rows with a zero score are omitted.
    """
    gt = Path(ground_truth_dir)
    params = json.loads((gt / "params.json").read_text(encoding="utf-8"))
    truth = pd.read_parquet(gt / "restaurant_truth.parquet")
    ids = list(dict.fromkeys(str(r) for r in restaurant_ids))  # unique, order kept
    pos = pd.Series(np.arange(len(truth)), index=truth["restaurant_id"].astype(str))
    missing = [r for r in ids if r not in pos.index]
    if missing:
        raise ValueError(f"{len(missing)} unknown restaurant ids, e.g. {missing[:3]}")
    if not ids:
        return pd.DataFrame(
            {"restaurant_id": pd.Series([], dtype=str), "product_id": pd.Series([], dtype=str),
             "score": pd.Series([], dtype=float)}
        )
    rows = pos.loc[ids].to_numpy()
    sub = truth.iloc[rows].reset_index(drop=True)

    products = pd.read_parquet(gt / "product_truth.parquet")
    prod_ids = products["product_id"].astype(str).to_numpy()
    n_p = len(products)
    ind_w = pd.read_parquet(gt / "industry_weights.parquet")
    item_w = pd.read_parquet(gt / "item_weights.parquet")
    r_items = pd.read_parquet(gt / "restaurant_items.parquet")
    codes = list(params["industries"])
    ind_idx_map = {c: i for i, c in enumerate(codes)}
    pid_idx = pd.Series(np.arange(n_p), index=prod_ids)

    staples = np.zeros((len(codes), n_p))
    np.add.at(staples, (ind_w["industry"].map(ind_idx_map).to_numpy(),
                        pid_idx.loc[ind_w["product_id"]].to_numpy()), ind_w["weight"].to_numpy())
    n_items = len(pd.read_parquet(gt / "menu_items.parquet", columns=["item_id"]))
    item_matrix = np.zeros((n_items, n_p))
    item_pos = (item_w["item_id"].to_numpy(), pid_idx.loc[item_w["product_id"]].to_numpy())
    np.add.at(item_matrix, item_pos, item_w["weight"].to_numpy())

    local = pd.Series(np.arange(len(sub)), index=sub["restaurant_id"].astype(str))
    r_items = r_items[r_items["restaurant_id"].isin(local.index)]
    counts = np.zeros((len(sub), n_items))
    count_pos = (local.loc[r_items["restaurant_id"]].to_numpy(), r_items["item_id"].to_numpy())
    np.add.at(counts, count_pos, 1.0)
    weights = staples[sub["industry"].map(ind_idx_map).to_numpy()] + counts @ item_matrix

    season = np.asarray(params["season_matrix"], dtype=float)  # 12 x P
    size_idx = sub["size"].map({s: i for i, s in enumerate(SIZES)}).to_numpy()
    signup = pd.to_datetime(sub["signup_date"]).to_numpy().astype("datetime64[D]")
    rows_ix = np.arange(len(sub))
    weekly = np.asarray(params["orders_per_week_by_size"])[size_idx]
    rate = weekly / 7.0 * sub["activity"].to_numpy()
    # expected orders of the 30-day window falling in each calendar month: the Poisson stream
    # plus the onboarding order a few days after sign-up
    month_orders = np.zeros((len(sub), 12))
    for d in range(int(params["window_days"])):
        months = (signup + np.timedelta64(d, "D")).astype("datetime64[M]").astype(int) % 12
        month_orders[rows_ix, months] += rate
    for d, prob in enumerate(params["first_order_delay_probs"]):
        months = (signup + np.timedelta64(d, "D")).astype("datetime64[M]").astype(int) % 12
        month_orders[rows_ix, months] += prob
    lines_per_order = (np.asarray(params["lines_per_order_by_size"])[size_idx]
                       * (1.0 - float(params["noise_share"])))
    qty = np.maximum(1.0, products["base_qty"].to_numpy()[None, :]
                     * np.asarray(params["qty_mult_by_size"])[size_idx][:, None])
    expected = np.zeros((len(sub), n_p))
    for m in range(12):
        has = month_orders[:, m] > 0
        if not has.any():
            continue
        w = weights[has] * season[m][None, :]
        share = w / w.sum(axis=1, keepdims=True)
        expected[has] += (month_orders[has, m] * lines_per_order[has])[:, None] * share
    expected *= qty
    r_ix, p_ix = np.nonzero(expected > 0)
    df = pd.DataFrame(
        {
            "restaurant_id": sub["restaurant_id"].astype(str).to_numpy()[r_ix],
            "product_id": prod_ids[p_ix],
            "score": expected[r_ix, p_ix],
        }
    )
    return df.reset_index(drop=True)


# -------------------------------------------------------------------------------------------------
# Restaurants
# -------------------------------------------------------------------------------------------------
def _weighted_sample(rnd: random.Random, items: Sequence, weights: Sequence[float], k: int) -> list:
    """k distinct items, probability proportional to weight (Efraimidis-Spirakis keys)."""
    keyed = sorted(((rnd.random() ** (1.0 / w), i) for i, w in enumerate(weights)), reverse=True)
    return [items[i] for _, i in keyed[:k]]


def _swap_spelling(text: str) -> str:
    for standard, variant in _SPELLING:
        if standard in text:
            return text.replace(standard, variant, 1)
        if variant in text:
            return text.replace(variant, standard, 1)
    return text


def _is_spelling_variant(canonical: str, text: str) -> bool:
    return any(
        canonical.replace(a, b) == text or canonical.replace(b, a) == text for a, b in _SPELLING
    )


def _place_of(region: str) -> str:
    district = region.split()[-1]
    return district[:-1] if len(district) > 2 and district[-1] in "구시군" else district


def _make_name(rnd: random.Random, industry: str, place: str, english: bool) -> str:
    if english:
        return rnd.choice(_NAME_EN[industry])
    style = rnd.choices(range(5), weights=(2, 1.5, 2, 2.5, 2))[0]
    core = rnd.choice(_NAME_CORES[industry])
    if style == 0:
        return f"{place}{core}"
    if style == 1:
        return f"{rnd.choice(_SURNAMES)}{rnd.choice(_FAMILY)} {core}"
    if style == 2:
        return f"{rnd.choice(_ADJECTIVES)} {core}"
    fun = rnd.choice(_NAME_FUN[industry])
    return fun if style == 3 else f"{fun} {place}점"


def _price_text(rnd: random.Random, industry: str) -> str:
    lo, hi = _MENU_PRICE[industry]
    price = int(round(rnd.uniform(lo, hi) / 500.0)) * 500
    style = rnd.randrange(3)
    if style == 0:
        return f"{price}원"
    if style == 1:
        return f"{price:,}원"
    return f"{price:,}"


def _make_restaurants(model: _Model, n: int, rng: np.random.Generator) -> dict:
    codes = model.industries
    share = np.array([_INDUSTRY_SHARE[c] for c in codes], dtype=float)
    industry_idx = rng.choice(len(codes), size=n, p=share / share.sum())
    # Guarantee every industry appears when there is room (small scale and up).
    if n >= 10 * len(codes):
        for i in range(len(codes)):
            if not (industry_idx == i).any():
                industry_idx[i * 7] = i
    size_idx = rng.choice(3, size=n, p=_SIZE_SHARE)
    reg_names = [r for r, _ in _REGIONS]
    reg_w = np.array([w for _, w in _REGIONS])
    region_idx = rng.choice(len(reg_names), size=n, p=reg_w / reg_w.sum())

    end_ord = REFERENCE_END.toordinal()
    last_signup = end_ord - WINDOW_DAYS
    first_signup = end_ord - HISTORY_DAYS
    span = last_signup - first_signup
    # Growing platform: sign-up density rises linearly (1 -> 2.5) over the history.
    a, b = 1.0, 1.5
    u = rng.random(n)
    t = (-a + np.sqrt(a * a + 2 * b * u * (a + b / 2))) / b  # inverse CDF of density a + b t
    signup = first_signup + np.floor(t * (span + 1)).astype(np.int64)
    signup = np.minimum(signup, last_signup)
    # Churn: some restaurants stop ordering; never within their first 60 days.
    churn = signup + 60 + np.floor(rng.exponential(_CHURN_MEAN_DAYS, size=n)).astype(np.int64)
    active_until = np.minimum(churn, end_ord)
    activity = rng.lognormal(mean=-0.5 * 0.35**2, sigma=0.35, size=n)

    rnd = random.Random(int(rng.integers(0, 2**63 - 1)))
    names: list[str] = []
    menus: list[str] = []
    descriptions: list[str] = []
    hard: list[str] = []
    item_rows: list[int] = []
    item_ids: list[int] = []
    non_other = [c for c in codes if c != "other"]
    item_range = {0: (3, 7), 1: (5, 10), 2: (6, 14)}

    for r in range(n):
        code = codes[industry_idx[r]]
        region = reg_names[region_idx[r]]
        place = _place_of(region)
        flags: list[str] = []
        pool = model.items_by_industry[code]
        lo, hi = item_range[int(size_idx[r])]
        k = min(len(pool), rnd.randint(lo, hi))
        chosen = _weighted_sample(rnd, pool, [it.popularity for it in pool], k)

        if rnd.random() < _P_MIXED_MENU and code != "other" and k >= 3:
            other = rnd.choice([c for c in non_other if c != code])
            opool = model.items_by_industry[other]
            k_other = max(1, min(k - 1, len(opool), rnd.randint(2, 3)))
            k_other = min(k_other, len(chosen) - 1)
            chosen = chosen[: max(k_other + 1, len(chosen) - k_other)]
            chosen += _weighted_sample(rnd, opool, [it.popularity for it in opool], k_other)
            flags.append("mixed_menu")
        elif rnd.random() < 0.25:
            side = rnd.choice(_CROSS_SELL[code])
            spool = [it for it in model.items_by_industry[side] if it.names[0] not in
                     {c.names[0] for c in chosen}]
            if spool:
                chosen.append(_weighted_sample(rnd, spool, [it.popularity for it in spool], 1)[0])
        rnd.shuffle(chosen)
        for it in chosen:
            item_rows.append(r)
            item_ids.append(it.item_id)

        english = rnd.random() < _P_ENGLISH_NAME
        if english:
            flags.append("english_name")
        name_industry = code
        if rnd.random() < _P_MISLEADING_NAME and code != "other":
            name_industry = rnd.choice([c for c in non_other if c != code])
            flags.append("misleading_name")
        name = _make_name(rnd, name_industry, place, english)

        empty = rnd.random() < _P_EMPTY_MENU or (code == "other" and rnd.random() < 0.3)
        if empty:
            if name_industry != code:  # a name-only row must still be decidable from its name
                name = _make_name(rnd, code, place, english)
                flags.remove("misleading_name")
            flags.append("empty_menu")
            menu = ""
        else:
            with_price = rnd.random() < _P_PRICE_IN_ITEMS
            with_emoji = rnd.random() < _P_EMOJI
            spaces = rnd.random() < _P_WHITESPACE
            texts = []
            variant_used = False
            for it in chosen:
                if english and it.english and rnd.random() < 0.6:
                    text = it.english
                else:
                    text = it.names[0]
                    if len(it.names) > 1 and rnd.random() < _P_ALTERNATIVE:
                        text = rnd.choice(it.names[1:])
                        variant_used |= _is_spelling_variant(it.names[0], text)
                    if rnd.random() < _P_SPELLING:
                        swapped = _swap_spelling(text)
                        variant_used |= swapped != text
                        text = swapped
                if with_price:
                    text = f"{text} {_price_text(rnd, it.industry)}"
                if with_emoji and rnd.random() < 0.6:
                    text = f"{_EMOJI[it.industry]} {text}"
                texts.append(text)
            if spaces:
                texts = [rnd.choice(("", " ", "  ")) + t.replace(" ", rnd.choice((" ", "  ")))
                         + rnd.choice(("", " ", "  ")) for t in texts]
                name = rnd.choice(("", " ")) + name + rnd.choice((" ", "  "))
                flags.append("stray_whitespace")
            menu = "|".join(texts)
            if with_price:
                flags.append("price_in_items")
            if with_emoji:
                flags.append("emoji")
            if variant_used:
                flags.append("spelling_variant")
        names.append(name)
        menus.append(menu)

        if rnd.random() < 0.4 or "misleading_name" in flags:
            descriptions.append("")
        else:
            template = rnd.choice(_DESCRIPTIONS)
            descriptions.append(template.format(place=place, kind=BY_CODE[code].name_ko,
                                                years=rnd.randint(2, 25)))
        hard.append(",".join(flags))

    ids = [f"R{i + 1:06d}" for i in range(n)]
    epoch = date(1970, 1, 1).toordinal()
    table = pa.table(
        {
            "restaurant_id": ids,
            "name": names,
            "menu": menus,
            "description": descriptions,
            "region": [reg_names[i] for i in region_idx],
            "size": [SIZES[i] for i in size_idx],
            "signup_date": pa.array((signup - epoch).astype(np.int32), pa.date32()),
        }
    )
    return {
        "table": table,
        "ids": ids,
        "industry_idx": industry_idx,
        "size_idx": size_idx,
        "signup": signup,  # proleptic ordinal days
        "active_until": active_until,
        "activity": activity,
        "hard": hard,
        "item_rows": np.asarray(item_rows, dtype=np.int64),
        "item_ids": np.asarray(item_ids, dtype=np.int64),
    }


# -------------------------------------------------------------------------------------------------
# Orders
# -------------------------------------------------------------------------------------------------
def _order_params(rest: dict, target_lines: float) -> dict:
    """Calibrate the weekly order rate so the expected number of lines matches the scale."""
    size_idx = rest["size_idx"]
    days = (rest["active_until"] - rest["signup"] + 1).astype(float)
    per_k = (_SIZE_FREQ[size_idx] / 7.0 * rest["activity"] * days * _SIZE_LINES[size_idx]).sum()
    onboarding = _SIZE_LINES[size_idx].sum()  # one first order per restaurant
    k = max(target_lines * _MERGE_LOSS - onboarding, 0.1 * per_k) / per_k if per_k > 0 else 1.0
    return {
        "orders_per_week_by_size": (_SIZE_FREQ * k).tolist(),
        "lines_per_order_by_size": _SIZE_LINES.tolist(),
        "qty_mult_by_size": _SIZE_QTY.tolist(),
        "noise_share": _NOISE_SHARE,
        "first_order_delay_probs": _FIRST_ORDER_DELAY.tolist(),
    }


def _sample_products(model: _Model, rest: dict, line_rest: np.ndarray, line_month: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Product index per line: the restaurant's seasonal structural mix, or its noise set."""
    n = len(rest["ids"])
    n_p = model.n_products
    out = np.empty(len(line_rest), dtype=np.int32)
    noise_set = rng.integers(0, n_p, size=(n, _NOISE_SET))
    is_noise = rng.random(len(line_rest)) < _NOISE_SHARE
    pick = rng.integers(0, _NOISE_SET, size=len(line_rest))
    out[is_noise] = noise_set[line_rest[is_noise], pick[is_noise]]
    u_all = rng.random(len(line_rest))

    item_rows, item_ids = rest["item_rows"], rest["item_ids"]
    n_items = len(model.items)
    # lines are sorted by restaurant, so each restaurant chunk is a contiguous slice
    bounds = np.searchsorted(line_rest, np.arange(0, n + _CHUNK_RESTAURANTS, _CHUNK_RESTAURANTS))
    for c0 in range(0, n, _CHUNK_RESTAURANTS):
        c1 = min(n, c0 + _CHUNK_RESTAURANTS)
        lo, hi = bounds[c0 // _CHUNK_RESTAURANTS], bounds[c0 // _CHUNK_RESTAURANTS + 1]
        if hi <= lo:
            continue
        sel_items = (item_rows >= c0) & (item_rows < c1)
        counts = np.zeros((c1 - c0, n_items))
        np.add.at(counts, (item_rows[sel_items] - c0, item_ids[sel_items]), 1.0)
        weights = model.structural_weights(rest["industry_idx"][c0:c1], counts)
        rl = line_rest[lo:hi] - c0
        months = line_month[lo:hi]
        structural = ~is_noise[lo:hi]
        u = u_all[lo:hi]
        chunk_out = out[lo:hi]
        offsets = np.arange(c1 - c0, dtype=float)[:, None]
        for m in np.unique(months[structural]):
            sel = structural & (months == m)
            cum = np.cumsum(weights * model.season[m][None, :], axis=1)
            cum /= cum[:, -1:]
            flat = (cum + offsets).ravel()
            idx = np.searchsorted(flat, rl[sel] + u[sel], side="right")
            chunk_out[sel] = np.minimum(idx - rl[sel] * n_p, n_p - 1)
        out[lo:hi] = chunk_out
    return out


def _write_orders(model: _Model, rest: dict, params: dict, rng: np.random.Generator, path: Path,
                  fmt: str, products_tbl: pa.Table) -> int:
    n = len(rest["ids"])
    size_idx = rest["size_idx"]
    signup, until = rest["signup"], rest["active_until"]
    days = until - signup + 1
    rate = np.asarray(params["orders_per_week_by_size"])[size_idx] / 7.0 * rest["activity"]
    n_orders = rng.poisson(rate * days)
    stream_rest = np.repeat(np.arange(n, dtype=np.int32), n_orders)
    offset = np.floor(rng.random(len(stream_rest)) * days[stream_rest]).astype(np.int64)
    stream_day = signup[stream_rest] + offset
    # every new restaurant places an onboarding order within its first week
    first_day = signup + rng.choice(len(_FIRST_ORDER_DELAY), size=n, p=_FIRST_ORDER_DELAY)
    order_rest = np.concatenate([np.arange(n, dtype=np.int32), stream_rest])
    order_day = np.concatenate([first_day, stream_day])
    by_rest = np.argsort(order_rest, kind="stable")  # lines must be grouped by restaurant
    order_rest, order_day = order_rest[by_rest], order_day[by_rest]
    del stream_rest, stream_day, by_rest
    hours = np.array([0.2, 0.1, 0.05, 0.05, 0.1, 0.3, 0.8, 1.5, 2.5, 3.0, 3.0, 2.2,
                      1.5, 1.8, 2.6, 2.8, 2.4, 1.8, 1.2, 1.0, 1.2, 1.8, 2.2, 1.0])
    hour = rng.choice(24, size=len(order_rest), p=hours / hours.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=len(order_rest))
    epoch = date(1970, 1, 1).toordinal()
    order_ts = (order_day - epoch) * 86400 + seconds

    # order ids follow time, like a real order system
    order_rank = np.empty(len(order_rest), dtype=np.int64)
    order_rank[np.lexsort((order_rest, order_ts))] = np.arange(len(order_rest))

    n_lines = 1 + rng.poisson(_SIZE_LINES[size_idx[order_rest]] - 1.0)
    line_order = np.repeat(np.arange(len(order_rest), dtype=np.int64), n_lines)
    line_rest = order_rest[line_order]
    line_month = ((order_day[line_order] - epoch).astype("datetime64[D]").astype("datetime64[M]")
                  .astype(np.int64) % 12).astype(np.int8)
    del n_lines
    product = _sample_products(model, rest, line_rest, line_month, rng)
    del line_month
    mu = np.maximum(1.0, model.base_qty[product] * _SIZE_QTY[size_idx[line_rest]])
    qty = 1 + rng.poisson(mu - 1.0)
    del mu

    # sort by (order rank, product) and merge duplicate products within an order
    line_rank = order_rank[line_order]
    order_sort = np.lexsort((product, line_rank))
    line_rank, product, qty = line_rank[order_sort], product[order_sort], qty[order_sort]
    line_order = line_order[order_sort]
    del order_sort
    first = np.ones(len(line_rank), dtype=bool)
    first[1:] = (line_rank[1:] != line_rank[:-1]) | (product[1:] != product[:-1])
    starts = np.flatnonzero(first)
    qty = np.add.reduceat(qty, starts) if len(starts) else qty[:0]
    line_rank, product, line_order = line_rank[starts], product[starts], line_order[starts]
    del first, starts

    rid_arr = pa.array(rest["ids"], pa.string())
    pid_arr = products_tbl.column("product_id").combine_chunks()
    schema = pa.schema([("order_id", pa.string()), ("restaurant_id", pa.string()),
                        ("product_id", pa.string()), ("quantity", pa.int64()),
                        ("ordered_at", pa.timestamp("us"))])
    total = len(line_rank)
    writer = None
    try:
        if fmt == "parquet":
            writer = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            path.unlink(missing_ok=True)
        for s in range(0, max(total, 1), _WRITE_CHUNK_LINES):
            e = min(total, s + _WRITE_CHUNK_LINES)
            lo_ord = line_order[s:e]
            nums = pc.cast(pa.array(line_rank[s:e] + 1), pa.string())
            order_id = pc.binary_join_element_wise("O", pc.utf8_lpad(nums, 9, "0"), "")
            ts = pa.array(order_ts[lo_ord] * 1_000_000, pa.timestamp("us"))
            batch = pa.table(
                {
                    "order_id": order_id,
                    "restaurant_id": rid_arr.take(pa.array(order_rest[lo_ord])),
                    "product_id": pid_arr.take(pa.array(product[s:e])),
                    "quantity": pa.array(qty[s:e].astype(np.int64)),
                    "ordered_at": ts,
                },
                schema=schema,
            )
            if writer is not None:
                writer.write_table(batch)
            else:
                _append_csv(batch, path, header=(s == 0))
    finally:
        if writer is not None:
            writer.close()
    return total


# -------------------------------------------------------------------------------------------------
# Writing
# -------------------------------------------------------------------------------------------------
def _append_csv(table: pa.Table, path: Path, header: bool) -> None:
    """Append order lines; their values (ids, integers, timestamps) never need quoting."""
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
        cols.append(col)
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "ab") as fh:
        if header:
            fh.write((",".join(table.column_names) + "\n").encode("utf-8"))
        pacsv.write_csv(pa.table(cols, names=table.column_names), fh, write_options=opts)


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        # free text (names, menus with "7,000원") needs RFC 4180 minimal quoting
        table.to_pandas().to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


def _write_ground_truth(model: _Model, rest: dict, params: dict, gt_dir: Path, *, seed: int,
                        scale: str, n_lines: int) -> None:
    epoch = date(1970, 1, 1).toordinal()
    codes = model.industries
    items_per_r = np.bincount(rest["item_rows"], minlength=len(rest["ids"]))
    pq.write_table(
        pa.table(
            {
                "restaurant_id": rest["ids"],
                "industry": [codes[i] for i in rest["industry_idx"]],
                "size": [SIZES[i] for i in rest["size_idx"]],
                "signup_date": pa.array((rest["signup"] - epoch).astype(np.int32), pa.date32()),
                "active_until": pa.array((rest["active_until"] - epoch).astype(np.int32),
                                         pa.date32()),
                "activity": rest["activity"],
                "n_menu_items": items_per_r.astype(np.int64),
                "hard_cases": rest["hard"],
            }
        ),
        gt_dir / "restaurant_truth.parquet",
    )
    ids = np.asarray(rest["ids"], dtype=object)
    pq.write_table(pa.table({"restaurant_id": ids[rest["item_rows"]].tolist(),
                             "item_id": rest["item_ids"]}), gt_dir / "restaurant_items.parquet")
    prod_ids = [f"P{i + 1:04d}" for i in range(model.n_products)]
    pq.write_table(
        pa.table({"product_id": prod_ids, "name": [p.name for p in model.products],
                  "base_qty": model.base_qty, "season": [p.season for p in model.products]}),
        gt_dir / "product_truth.parquet",
    )
    ii, pp = np.nonzero(model.staples)
    pq.write_table(pa.table({"industry": [codes[i] for i in ii],
                             "product_id": [prod_ids[p] for p in pp],
                             "weight": model.staples[ii, pp]}), gt_dir / "industry_weights.parquet")
    it, pp = np.nonzero(model.item_matrix)
    pq.write_table(pa.table({"item_id": it.astype(np.int64),
                             "product_id": [prod_ids[p] for p in pp],
                             "weight": model.item_matrix[it, pp]}), gt_dir / "item_weights.parquet")
    pq.write_table(
        pa.table({"item_id": [i.item_id for i in model.items],
                  "industry": [i.industry for i in model.items],
                  "name": [i.names[0] for i in model.items]}),
        gt_dir / "menu_items.parquet",
    )
    meta = dict(params)
    meta.update(
        seed=seed, scale=scale, n_restaurants=len(rest["ids"]), n_order_lines=int(n_lines),
        reference_end=REFERENCE_END.isoformat(), window_days=WINDOW_DAYS, industries=list(codes),
        sizes=list(SIZES), season_matrix=model.season.tolist(),
    )
    text = json.dumps(meta, ensure_ascii=False, indent=1)
    (gt_dir / "params.json").write_text(text, encoding="utf-8")


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc)


def _tick(bar, label: str) -> None:
    if bar is not None:
        bar.set_postfix_str(label)
        bar.update(1)


__all__ = ["SCALES", "REFERENCE_END", "SampleFiles", "generate_sample", "oracle_scores"]
