"""Offline industry labeler: a knowledge-based classifier over name, menu and description.

Why it exists: the pipeline must label cold-start restaurants with no network and no model download,
fast enough for 200,000 rows. A hand-written lexicon of dishes (with Korean spelling variants and
common English names), generic business words and chain brands is scanned with one precompiled trie
regex per field.

Scoring rules (from the taxonomy RULES):
- the menu outweighs the name: every menu item counts fully, the name counts at ``NAME_WEIGHT``;
- in a compound item the *last* matched dish is its head (Korean is head-final: 돈까스김밥 is a 김밥,
  불고기피자 is a 피자), the other matches only modify it;
- earlier menu items weigh slightly more (signature dishes come first);
- generic items (공기밥, 콜라, 소주 ...) weigh almost nothing;
- no usable evidence -> ``other`` with low confidence.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from recsys_assets.taxonomy import INDUSTRY_CODES, OTHER

__all__ = ["OfflineLabeler", "OfflinePrediction", "split_menu", "LEXICON_VERSION"]

LEXICON_VERSION = "offline-lexicon-v1"

NAME_WEIGHT = 0.6  # a name alone is a weak hint
DESC_WEIGHT = 0.35  # descriptions are free text, often marketing
DESC_CAP = 1.0  # per-industry cap of the description's contribution
MODIFIER_WEIGHT = 0.35  # non-head matches inside one menu item
STRONG_HEAD = 0.6  # a head weaker than this lets its modifiers count fully
POSITION_BONUS = 0.4  # first item weighs 1 + 0.4, decaying geometrically to 1
POSITION_DECAY = 0.75
MIN_EVIDENCE = 0.25  # below this total score the restaurant is "other"
STRENGTH_SCALE = 1.0  # evidence strength = 1 - exp(-total / scale)
MAX_FIELD_CHARS = {"name": 300, "menu": 6000, "description": 3000}
MAX_ITEMS = 120
MAX_EVIDENCE = 24

_IDX = {code: i for i, code in enumerate(INDUSTRY_CODES)}
_N = len(INDUSTRY_CODES)

# ------------------------------------------------------------------------------------------------
# Lexicon. One line: "<scope> <industry> <weight>: term term ...". Scope: '*' dish/shared term
# matched everywhere, 'N' name/description-only word, 'B' brand (name/description only), 'G' generic
# menu item (weighs almost nothing), 'S' single-syllable suffix of a menu item (전복죽 -> 죽),
# 'T' single-syllable ending of a name (Chinese restaurant endings 각/루/성). A term may appear on
# several lines (one per industry). English multi-word terms use '_' for the space; ASCII terms
# match whole words only (a trailing plural 's' is tolerated).
# ------------------------------------------------------------------------------------------------
_LEXICON = r"""
# ---- chicken
* chicken 1.0: 치킨 치킨집 후라이드 후라이드치킨 프라이드 프라이드치킨 양념치킨 간장치킨 통닭 옛날통닭 전기구이통닭 순살 순살치킨 뼈치킨 닭강정 파닭 파닭치킨 반반치킨 반반 닭다리 봉윙 날개 윙봉 똥집 똥집튀김 닭똥집 허니콤보 레드콤보 교촌오리지날 뿌링클 맛초킹 황금올리브 황금올리브치킨 고추바사삭 볼케이노 갈비천왕 오븐구이치킨 마늘치킨 크리스피치킨 스노윙치킨 치킨무 불닭 chicken fried_chicken wings chimaek
* chicken 0.3: 콤보
* chicken 0.6: 양념 간장 오븐구이 닭 닭한마리튀김 치즈볼 버팔로윙
* chicken 0.5: 닭꼬치 닭발
* chicken 0.3: 닭갈비
# ---- korean
* korean 1.0: 한식 백반 가정식백반 한정식 찌개 김치찌개 된장찌개 순두부 순두부찌개 부대찌개 동태찌개 비지찌개 청국장 국밥 순대국 순댓국 순대국밥 돼지국밥 소머리국밥 콩나물국밥 따로국밥 설렁탕 곰탕 갈비탕 육개장 해장국 뼈해장국 감자탕 삼계탕 백숙 한방백숙 오리백숙 닭백숙 닭볶음탕 닭도리탕 닭한마리 찜닭 안동찜닭 제육볶음 제육 제육덮밥 오징어볶음 비빔밥 돌솥비빔밥 산채비빔밥 육회비빔밥 냉면 물냉면 비빔냉면 평양냉면 함흥냉면 밀면 막국수 칼국수 바지락칼국수 수제비 만둣국 만두국 떡국 떡만둣국 죽 전복죽 호박죽 야채죽 소고기죽 팥죽 닭죽 본죽 도시락 한솥 보리밥 쌈밥 우렁쌈밥 생선구이 고등어구이 갈치조림 고등어조림 코다리 코다리조림 추어탕 알탕 동태탕 갈비찜 매운갈비찜 떡갈비 잔치국수 비빔국수 콩국수 국수 누룽지 누룽지백숙 북엇국 황태해장국 황태국 우거지 시래기 시래기국 묵은지 묵은지찜 김치찜 등갈비찜 보리굴비 굴비 간장게장 양념게장 게장 전골 버섯전골 곱창전골 샤브샤브 월남쌈샤브 닭개장 선지해장국 내장탕 도가니탕 꼬리곰탕 수육국밥 한방 오리 오리주물럭 오리훈제 훈제오리 불고기 뚝배기불고기 김치볶음밥 계란찜 두부 솥밥 영양돌솥밥 7분돼지김치 열무국수 메밀전병 조림 korean
* korean 0.3: 정식 한상 bibimbap bulgogi
* korean 0.6: 오징어덮밥 수육 곱창전골 육회 쌈 나물 순대볶음 백순대 도토리묵
* korean 0.45: 덮밥 편육 메밀 모밀 판메밀 비빔 오삼불고기 닭갈비 춘천닭갈비 철판닭갈비 숯불닭갈비
* korean 0.45: 볶음밥 오므라이스 계란말이 파전 해물파전 김치전 감자전 녹두전 빈대떡 모둠전 동그랑땡
* korean 0.3: 만두 고기만두 김치만두 순대 고등어 생선 장어 갈치
# ---- bunsik
* bunsik 1.0: 분식 떡볶이 떡뽁이 떡복이 떡볶기 떡볶끼 떡뽀끼 국물떡볶이 로제떡볶이 짜장떡볶이 엽떡 엽기떡볶이 라볶이 쫄볶이 김밥 꼬마김밥 참치김밥 치즈김밥 야채김밥 소고기김밥 돈까스김밥 충무김밥 김말이 라면 치즈라면 떡라면 해장라면 라면사리추가 순대 튀김 모둠튀김 오징어튀김 야채튀김 고구마튀김 쫄면 어묵 오뎅 어묵꼬치 주먹밥 컵밥 떡꼬치 떡순튀 tteokbokki kimbap gimbap
* bunsik 0.5: 토스트
* bunsik 0.6: 만두 군만두 찐만두 고기만두 김치만두 오므라이스 순대볶음 김치볶음밥 비빔국수 잔치국수 치즈돈까스 우동 돈까스 돈가스 쫄면 수제비 칼국수 핫도그
* bunsik 0.4: 볶음밥 덮밥 제육덮밥 오징어덮밥 김치찌개 된장찌개
# ---- chinese
* chinese 1.0: 중식 중국집 중화요리 짜장 짜장면 자장 자장면 간짜장 쟁반짜장 삼선짜장 유니짜장 짜장밥 짬뽕 짬뽕밥 삼선짬뽕 차돌짬뽕 굴짬뽕 고추짬뽕 탕수육 탕슉 찹쌀탕수육 꿔바로우 꿔바로 깐풍기 깐쇼새우 깐풍새우 칠리새우 크림새우 유린기 라조기 팔보채 양장피 고추잡채 잡채밥 마파두부 마파두부밥 울면 기스면 마라탕 마라샹궈 마라 훠궈 훠거 샤오롱바오 소룡포 딤섬 하가우 우육면 지삼선 동파육 멘보샤 양꼬치 양꼬치구이 꿔바로우 꽃빵 고추잡채 토마토계란볶음 어향가지 궁보계정 마라롱샤 중국 대만 dim_sum dimsum dumpling dumplings mala hotpot chinese
* chinese 0.4: 우동
* chinese 0.6: 볶음밥 새우볶음밥 군만두 물만두 만두 양갈비 양고기 마라 잡채 유산슬 누룽지탕
# ---- japanese
* japanese 1.0: 일식 일본 초밥 스시 모둠초밥 연어초밥 광어초밥 초밥세트 회전초밥 봉초밥 롤 캘리포니아롤 사시미 라멘 돈코츠 돈코츠라멘 돈꼬츠 쇼유라멘 미소라멘 시오라멘 탄탄멘 츠케멘 마제소바 아부라소바 우동 가락국수 냄비우동 튀김우동 카레우동 자루우동 붓카케 소바 냉소바 자루소바 메밀소바 돈까스 돈가스 돈카츠 돈카쓰 로스까스 로스카츠 히레까스 히레카츠 안심까스 등심까스 치즈까스 치즈카츠 생선까스 치킨까스 규카츠 규까스 카츠 까스 카츠동 가츠동 돈부리 규동 오야코동 텐동 에비동 사케동 부타동 차슈동 연어덮밥 장어덮밥 우나기동 카레 카레라이스 일본식카레 함박스테이크 오므카레 타코야끼 타코야키 오코노미야끼 오코노미야키 야끼소바 야키소바 덴뿌라 텐푸라 에비텐 가라아게 교자 야키토리 야끼토리 오마카세 스키야키 규동 나베 모츠나베 sushi sashimi ramen udon soba tonkatsu katsu donburi omakase japanese yakitori
* japanese 0.6: 연어 참치 참치회 연어회 메밀 모밀 판메밀 냉모밀 샤브샤브 튀김 새우튀김
* japanese 0.5: 덮밥
* pub 0.5: 가라아게 오코노미야끼 오코노미야키 타코야끼 타코야키
# ---- seafood
* seafood 1.0: 횟집 활어회 모둠회 광어회 우럭회 도미회 참돔회 방어회 숭어회 밀치회 전어회 세꼬시 막회 물회 회덮밥 회무침 광어 우럭 참돔 방어 숭어 도다리 전어 조개구이 조개찜 해물찜 아구찜 아귀찜 해물탕 매운탕 지리 대게 킹크랩 홍게 꽃게 꽃게탕 랍스터 랍스타 장어 장어구이 민물장어 바다장어 풍천장어 꼼장어 곰장어 먹장어 전복 멍게 해삼 개불 산낙지 낙지 세발낙지 연포탕 쭈꾸미 주꾸미 쭈구미 문어 문어숙회 숙회 과메기 대하 대하구이 새우구이 석화 생굴 굴구이 굴찜 홍어 홍어삼합 가리비 키조개 해산물 해물 수산 seafood oyster lobster crab
* seafood 0.5: 연어 참치 사시미 참치회 연어회 생선구이 고등어 고등어구이 갈치 갈치조림 간장게장 게장 동태탕 알탕 오징어 홍합 홍합탕 굴보쌈
# ---- meat_bbq
* meat_bbq 1.0: 고기 고깃집 삼겹살 생삼겹살 벌집삼겹살 오겹살 대패삼겹살 목살 항정살 가브리살 갈매기살 특수부위 뒷고기 껍데기 돼지껍데기 돼지갈비 소갈비 양념갈비 생갈비 갈비 갈비살 la갈비 우대갈비 숯불갈비 한우 한우구이 등심 꽃등심 안창살 제비추리 치마살 살치살 부채살 차돌박이 차돌 우삼겹 곱창 소곱창 돼지곱창 막창 대창 양대창 염통 특양 주물럭 소금구이 석쇠불고기 연탄불고기 열탄불고기 숯불 숯불구이 연탄구이 흑돼지 제주흑돼지 이베리코 소고기 돼지고기 생고기 정육식당 정육 양념돼지갈비 갈비세트 모둠구이 한돈 삼겹 samgyeopsal korean_bbq galbi
* meat_bbq 0.6: 육회 양갈비 양고기 양꼬치 불고기 떡갈비 곱창전골 닭갈비 숯불닭갈비 오리주물럭 오리훈제
* meat_bbq 0.4: 오리 구이
# ---- jokbal_bossam
* jokbal_bossam 1.0: 족발 왕족발 미니족발 불족발 냉채족발 마늘족발 순살족발 앞다리족발 보쌈 보쌈정식 굴보쌈 마늘보쌈 막국수보쌈 족발보쌈 족보세트 jokbal bossam
* jokbal_bossam 0.5: 수육 편육
# ---- pizza
* pizza 1.0: 피자 피짜 페퍼로니 페퍼로니피자 콤비네이션피자 포테이토피자 불고기피자 고구마피자 치즈피자 쉬림프피자 슈퍼슈프림 슈프림 마르게리타 마르게리따 칼조네 화덕피자 씬피자 pizza pizzeria margherita pepperoni calzone
* pizza 0.5: 고르곤졸라 콤비네이션 포테이토 치즈크러스트 리코타
# ---- burger
* burger 1.0: 버거 햄버거 수제버거 치즈버거 불고기버거 새우버거 치킨버거 더블버거 와퍼 빅맥 맥너겟 싸이버거 샌드위치 샌위치 서브웨이 핫도그 핫독 콘도그 너겟 치킨너겟 감자튀김 프렌치프라이 후렌치후라이 케이준감자 케이준양념감자 양념감자 후라이즈 토스트 치즈스틱 쉐이크 밀크쉐이크 토스트 에그드랍 비엠티 에그마요 로티세리 써브웨이클럽 클럽샌드위치 모짜렐라스틱 치킨텐더 텐더 패스트푸드 burger burgers hamburger cheeseburger sandwich hotdog hot_dog nugget nuggets fries french_fries shake milkshake whopper
* burger 0.5: 치즈스틱 타코 부리또 부리토 퀘사디아 나초
# ---- western
* western 1.0: 양식 파스타 스파게티 까르보나라 카르보나라 봉골레 알리오올리오 알리오 올리오 아라비아타 토마토파스타 크림파스타 로제파스타 오일파스타 투움바 투움바파스타 라자냐 뇨끼 라구 리조또 리조토 스테이크 티본 안심스테이크 등심스테이크 부채살스테이크 찹스테이크 함박스테이크 브런치 에그베네딕트 프렌치토스트 팬케이크 오믈렛 감바스 감바스알아히요 바베큐립 폭립 필라프 그라탕 스튜 비프스튜 수프 크림수프 양송이수프 피쉬앤칩스 패밀리레스토랑 레스토랑 비스트로 트라토리아 타코 부리또 부리토 퀘사디아 나초 pasta spaghetti carbonara risotto steak steakhouse brunch bistro trattoria lasagna gnocchi omelette pancake pancakes ribs taco tacos burrito quesadilla nachos fish_and_chips western
* western 1.0: 브리스킷 풀드포크 brisket pulled_pork
* western 0.6: 바베큐 바비큐
* western 0.5: 고르곤졸라 샐러드파스타 시저샐러드 리코타 와인 bbq grill
# ---- asian
* asian 1.0: 아시안 쌀국수 양지쌀국수 소고기쌀국수 차돌쌀국수 분짜 분보후에 반미 반쎄오 월남쌈 짜조 스프링롤 팟타이 똠양꿍 똠얌꿍 푸팟퐁커리 뿌빳뽕커리 카오팟 팟카파오 카오만가이 쏨땀 나시고랭 나시고렝 미고랭 미고렝 락사 커리 치킨커리 버터치킨 치킨티카 티카마살라 마살라 탄두리 탄두리치킨 갈릭난 버터난 플레인난 라씨 비리야니 케밥 케밥랩 훔무스 팔라펠 베트남 태국 인도 네팔 태국식 베트남식 pho banh_mi bun_cha pad_thai tom_yum curry naan tandoori masala biryani kebab laksa thai vietnamese indian nasi_goreng
# ---- cafe_dessert
* cafe_dessert 1.0: 카페 커피 아메리카노 아이스아메리카노 에스프레소 라떼 라테 카페라떼 카페라테 바닐라라떼 카라멜마끼아또 카라멜마키아토 카푸치노 카페모카 모카 콜드브루 돌체라떼 플랫화이트 아인슈페너 토피넛라떼 녹차라떼 말차라떼 고구마라떼 딸기라떼 밀크티 버블티 흑당버블티 타로밀크티 프라푸치노 스무디 요거트스무디 프라페 에이드 레몬에이드 자몽에이드 청포도에이드 생과일주스 과일주스 주스 쥬스 딸기주스 수박주스 바나나주스 녹차 홍차 얼그레이 캐모마일 페퍼민트 유자차 자몽차 대추차 생강차 쌍화차 밀크쉐이크 빙수 팥빙수 망고빙수 인절미빙수 인절미설빙 설빙 눈꽃빙수 아이스크림 소프트아이스크림 젤라또 요거트아이스크림 파르페 케이크 케익 케잌 치즈케이크 생크림케이크 조각케이크 티라미수 마카롱 뚱카롱 와플 크로플 디저트 아포가토 화채 수박화채 쿠키 브라우니 coffee cafe café espresso americano latte cappuccino mocha cold_brew frappuccino smoothie ade juice tea milk_tea bubble_tea boba dessert cake cheesecake tiramisu macaron macarons gelato ice_cream waffle waffles bingsu parfait
* cafe_dessert 0.6: 과일화채 요거트 프렌치토스트 팬케이크 휘낭시에 마들렌 스콘 도넛 도너츠 크로와상 크루아상 아사이볼 acai
* cafe_dessert 0.3: 빵 베이글
# ---- bakery
* bakery 1.0: 베이커리 빵집 제과 제과점 빵 식빵 우유식빵 베이글 크림치즈베이글 플레인베이글 크루아상 크로와상 크로아상 바게트 바게뜨 소금빵 단팥빵 크림빵 소보로 소보루 곰보빵 슈크림빵 모카번 앙버터 치아바타 깜빠뉴 캄파뉴 브리오슈 페이스트리 패스츄리 에그타르트 타르트 머핀 스콘 마들렌 휘낭시에 카스테라 카스텔라 롤케이크 파운드케이크 찹쌀도넛 꽈배기 도넛 도너츠 도나쓰 고로케 크로켓 피자빵 소시지빵 마늘빵 버터롤 모닝빵 bakery bread bagel bagels croissant baguette brioche pastry scone scones muffin muffins donut donuts doughnut doughnuts boulangerie patisserie
* bakery 0.4: 케이크 생크림케이크 치즈케이크 샌드위치 쿠키 브라우니
# ---- pub
* pub 1.0: 호프 호프집 주점 술집 포차 포장마차 실내포차 이자카야 선술집 펍 비어 생맥주 수제맥주 크래프트맥주 맥주집 막걸리 동동주 막걸리집 전집 하이볼 칵테일 와인 와인바 칵테일바 위스키 사케 안주 모둠안주 과일안주 마른안주 노가리 먹태 황태채 쥐포 골뱅이 골뱅이무침 골뱅이소면 두부김치 오뎅탕 어묵탕 나가사끼짬뽕 나가사키짬뽕 짬뽕탕 꼬치 모둠꼬치 꼬치구이 꼬치세트 야키토리 닭꼬치 염통꼬치 소세지 소시지 소시지구이 오돌뼈 닭발 불닭발 콘치즈 계란말이 먹태구이 파전 해물파전 김치전 모둠전 빈대떡 녹두전 감자전 홍합탕 pub craft_beer hof bar wine cocktail cocktails whisky whiskey highball makgeolli soju_bar brewery taproom
* pub 0.6: 과일화채 화채 감바스 치즈스틱 버팔로윙 감자튀김 똥집튀김 오징어 소맥
# ---- salad
* salad 1.0: 샐러드 샐러디 샐러드볼 콥샐러드 닭가슴살샐러드 연어샐러드 리코타샐러드 시저샐러드 그린샐러드 포케 포케볼 연어포케 참치포케 그릭요거트 요거트볼 아사이볼 웜볼 곡물볼 닭가슴살 샐러드바 키토 비건 저칼로리 건강식 다이어트 프로틴 salad salads poke poke_bowl greek_yogurt acai_bowl vegan healthy
* salad 0.5: 리코타 부리또볼 wrap
# ---- other (not a food business)
* other 1.0: 커트 펌 염색 클리닉 드라이클리닝 세탁 수선 네일 젤네일 속눈썹 왁싱 마사지 피부관리 복사 인쇄 열쇠 도장
N other 1.5: 부동산 공인중개사 중개사무소 미용실 헤어 헤어샵 네일샵 세탁소 약국 학원 교습소 어학원 병원 의원 치과 한의원 안과 피부과 정형외과 내과 동물병원 안경 안경원 휴대폰 핸드폰 모바일 통신 철물점 인테리어 카센터 자동차 정비 공업사 주유소 세차 노래방 노래연습장 pc방 피씨방 당구장 볼링장 헬스 헬스장 필라테스 요가 태권도 합기도 피아노 미술학원 세무 세무사 법무사 회계 변호사 사무소 모텔 부티크 옷가게 의류 꽃집 플라워 문구 서점 독서실 스터디카페 편의점 마트 슈퍼마켓 정육점 hair salon nail clinic dental realty laundry academy pharmacy fitness gym church motel
# ---- name / description only words
N chinese 1.0: 반점 중화 객잔 홍콩 상하이 북경 마라탕 차이나 china
N japanese 1.0: 스시 라멘 우동 돈까스 돈가스 카츠 초밥 일식당 스시야 sushi ramen
N korean 0.25: 식당 밥상 한상 가든 할매 할머니 손맛 집밥
N meat_bbq 0.5: 가든 정육 식육
N seafood 1.0: 횟집 수산 어시장 회센터 활어 횟집 바다 포구 항구
N pub 1.0: 포차 호프 비어 주점 술집 이자카야 펍 맥주 bar pub beer brewing brewery
N cafe_dessert 1.0: 카페 커피 다방 coffee cafe café roasters roastery espresso
N bakery 1.0: 베이커리 제과 빵집 베이글 브레드 bakery bread bagel
N bunsik 1.0: 분식 김밥 떡볶이 떡볶기
N western 1.0: 레스토랑 비스트로 트라토리아 다이닝 브런치 restaurant bistro trattoria dining brunch
N salad 1.0: 샐러드 포케 salad poke
N asian 1.0: 쌀국수 태국 베트남 인디아 pho thai india
* asian 0.5: 카레
# ---- brands (name / description only)
B chicken 3.0: bbq 비비큐 교촌 교촌치킨 bhc 비에이치씨 굽네 굽네치킨 네네치킨 페리카나 처갓집 처갓집양념치킨 푸라닭 지코바 호식이두마리치킨 호식이 멕시카나 또래오래 노랑통닭 60계 자담치킨 바른치킨 가마치통닭 맥시칸 깐부치킨 부어치킨 치킨플러스 순살만공격 멕시칸 땅땅치킨 기영이숯불두마리치킨 훌랄라 누구나홀딱반한닭
B korean 3.0: 본죽 본죽앤비빔밥 본도시락 한솥 한솥도시락 봉추찜닭 두찜 채선당 놀부부대찌개 박가부대 이화수 이화수전통육개장 육대장 신의주찹쌀순대 백채김치찌개 김치찌개전문점 한촌설렁탕 신선설농탕 육쌈냉면 유가네닭갈비 담소소사골순대 큰맘할매순대국 봉피양
B bunsik 3.0: 김밥천국 김가네 고봉민김밥 바르다김선생 죠스떡볶이 동대문엽기떡볶이 엽기떡볶이 신전떡볶이 국대떡볶이 배떡 청년다방 응급실떡볶이 두끼 얌샘김밥 걸작떡볶이 아딸 감탄떡볶이 스쿨푸드 마녀김밥
B chinese 3.0: 홍콩반점 홍콩반점0410 마라공방 라화쿵부 탕화쿵푸 춘리마라탕 하이디라오 딘타이펑 크리스탈제이드 보배반점 만리장성 짬뽕지존 신승반점 교동짬뽕 팔선
B japanese 3.0: 스시로 갓덴스시 은행골 이치란 멘야 코코이찌방야 코코이찌 아비꼬 미소야 사보텐 홍대개미 교토가츠규 정돈 하카타분코 잇푸도 스시히로바
B seafood 3.0: 바다회사랑 대게나라 노량진수산
N seafood 1.0: 노량진 어부 자갈치
B meat_bbq 3.0: 명륜진사갈비 새마을식당 하남돼지집 마포갈매기 육통령 화포식당 돈블랑 고반식당 맛찬들 맛찬들왕소금구이 팔색삼겹살 꿀돼지 서래갈매기
B jokbal_bossam 3.0: 원할머니보쌈 원할머니 가장맛있는족발 놀부보쌈 족발야시장 장충동왕족발 마왕족발 오향족발 삼육족발 족발신선생
B pizza 3.0: 도미노 도미노피자 피자헛 미스터피자 파파존스 피자알볼로 피자스쿨 59쌀피자 반올림피자 피자마루 7번가피자 청년피자 고피자 빽보이피자 domino dominos pizzahut papajohns
B burger 3.0: 맘스터치 롯데리아 버거킹 맥도날드 써브웨이 서브웨이 노브랜드버거 프랭크버거 kfc 쉐이크쉑 파이브가이즈 이삭토스트 에그드랍 퀴즈노스 명랑핫도그 subway mcdonalds burgerking lotteria momstouch shakeshack
B western 3.0: 아웃백 아웃백스테이크하우스 매드포갈릭 빕스 애슐리 tgi 티지아이 서가앤쿡 세븐스프링스 롤링파스타 토마토앤어니언 bills outback vips ashley
B asian 3.0: 에머이 포메인 미분당 생어거스틴 포보 포베이 띵커벨 에베레스트 리틀사이공 땀땀 pho24 포24
B cafe_dessert 3.0: 스타벅스 이디야 투썸 투썸플레이스 메가커피 메가mgc커피 빽다방 컴포즈커피 컴포즈 할리스 커피빈 폴바셋 엔제리너스 파스쿠찌 탐앤탐스 설빙 배스킨라빈스 베스킨라빈스 배스킨 공차 쥬씨 더벤티 매머드커피 요거프레소 카페베네 블루보틀 커피에반하다 텐퍼센트 starbucks ediya twosome hollys pascucci baskin
B bakery 3.0: 파리바게뜨 파리바게트 뚜레쥬르 런던베이글뮤지엄 런던베이글 성심당 던킨 던킨도너츠 크리스피크림 노티드 태극당 이성당 아티장베이커스 parisbaguette touslesjours dunkin
B pub 3.0: 역전할머니맥주 생활맥주 한신포차 투다리 봉구비어 용용선생 짚동가리 청담이상 인생술집 꼬치의달인 달빛포차 호랑이포차
B salad 3.0: 샐러디 포케올데이 스윗밸런스 샐러드박스 잇샐러드 그리너리 슬로우캘리 포케포케 sweetbalance salady
# ---- generic menu items (a side order says little)
G korean 0.05: 공기밥 밥 흰밥 추가밥 김치 반찬 계란후라이 계란프라이 라면사리 사리 우동사리 당면사리 치즈추가
G pub 0.05: 소주 참이슬 처음처럼 진로 새로 카스 테라 켈리 하이트 클라우드 병맥주 맥주 beer soju
G other 0.0: 콜라 코카콜라 펩시 사이다 칠성사이다 스프라이트 환타 제로콜라 음료 음료수 생수 물 탄산음료 coke cola sprite 곱빼기 추가 포장 배달 세트 단무지 쿠폰 배달팁
# ---- single-syllable suffixes: only at the end of a menu item (전복죽, 광어회, 단팥빵, 유자차)
S korean 0.8: 죽 탕 국 밥 찜
S asian 0.8: 난
S seafood 0.6: 굴
S seafood 0.8: 회
S bakery 0.8: 빵
S cafe_dessert 0.8: 차
S pub 0.5: 전
S korean 0.3: 전
# ---- single-syllable endings of a restaurant name (Chinese: 신흥각, 동해루, 만리장성); weak on purpose
T chinese 0.5: 각 루 성
"""

# Spelling variants folded to one canonical form, in the lexicon and in the input alike, so every
# variant of a dish scores identically (돈가스 = 돈까스, 자장면 = 짜장면, 주꾸미 = 쭈꾸미 ...).
_VARIANTS = {
    "주꾸미": "쭈꾸미", "쭈구미": "쭈꾸미", "돈가스": "돈까스", "돈카츠": "돈까스", "돈카쓰": "돈까스",
    "자장": "짜장", "프라이드": "후라이드", "떡뽁이": "떡볶이", "떡복이": "떡볶이", "떡볶기": "떡볶이",
    "떡볶끼": "떡볶이", "떡뽀끼": "떡볶이", "아귀": "아구", "크로와상": "크루아상", "크로아상": "크루아상",
    "케익": "케이크", "케잌": "케이크", "쥬스": "주스", "바게뜨": "바게트", "라테": "라떼",
    "카르보나라": "까르보나라", "리조토": "리조또", "꼼장어": "곰장어", "도너츠": "도넛", "도나쓰": "도넛",
    "소보루": "소보로", "카스텔라": "카스테라", "마르게리따": "마르게리타", "타코야키": "타코야끼",
    "오코노미야키": "오코노미야끼", "야키소바": "야끼소바", "야키토리": "야끼토리", "핫독": "핫도그",
    "샌위치": "샌드위치", "뿌빳뽕": "푸팟퐁", "똠얌꿍": "똠양꿍", "나시고렝": "나시고랭", "미고렝": "미고랭",
    "부리토": "부리또", "패스츄리": "페이스트리", "캄파뉴": "깜빠뉴", "소세지": "소시지",
    "나가사키": "나가사끼", "탕슉": "탕수육", "훠거": "훠궈", "랍스타": "랍스터", "규까스": "규카츠",
    "로스카츠": "로스까스", "히레카츠": "히레까스", "치즈카츠": "치즈까스", "꿔바로우": "꿔바로",
    "doughnut": "donut",
}
_VARIANT_RE = re.compile("|".join(sorted(map(re.escape, _VARIANTS), key=len, reverse=True)))


def _canon(text: str) -> str:
    return _VARIANT_RE.sub(lambda m: _VARIANTS[m.group()], text)


_ASCII_RE = re.compile(r"[a-z][a-z0-9']*")


@dataclass(frozen=True)
class _Entry:
    weights: tuple[float, ...]
    generic: bool = False


def _parse_lexicon(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """scope -> term -> industry -> weight (the last line wins for a repeated term/industry)."""
    out: dict[str, dict[str, dict[str, float]]] = {s: {} for s in "*NBGST"}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, _, terms = line.partition(":")
        scope, code, weight = head.split()
        if code not in _IDX:
            raise ValueError(f"unknown industry {code!r} in lexicon line: {line}")
        for term in terms.split():
            term = _canon(_normalize(term.replace("_", " ")))
            out[scope].setdefault(term, {})[code] = float(weight)
    return out


def _vector(weights: dict[str, float]) -> tuple[float, ...]:
    vec = [0.0] * _N
    for code, w in weights.items():
        vec[_IDX[code]] = w
    return tuple(vec)


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One lookahead regex that reports, at every position, the longest lexicon word starting there.

    A trie-shaped alternation keeps the scan in C (sre) and makes it linear in the text length.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and not end else "(?:" + "|".join(alts) + ")"
        return body + "?" if end else body

    return re.compile("(?=(" + build(trie) + "))")


class _Lexicon:
    """The compiled lexicon: dictionaries for lookups plus one trie regex per scope."""

    def __init__(self, text: str) -> None:
        parsed = _parse_lexicon(text)
        generic = parsed["G"]
        menu: dict[str, _Entry] = {}
        for term, ws in parsed["*"].items():
            menu[term] = _Entry(_vector(ws))
        for term, ws in generic.items():
            menu[term] = _Entry(_vector(ws), generic=True)
        full = dict(menu)
        for scope in "NB":
            for term, ws in parsed[scope].items():
                merged = dict(dict(zip(INDUSTRY_CODES, full[term].weights)) if term in full else {})
                merged = {k: v for k, v in merged.items() if v}
                merged.update(ws)
                full[term] = _Entry(_vector(merged))
        self.menu = menu
        self.full = full
        self.item_suffix = {t: _Entry(_vector(ws)) for t, ws in parsed["S"].items()}
        self.name_suffix = {t: _Entry(_vector(ws)) for t, ws in parsed["T"].items()}
        self.menu_re = _trie_pattern(t for t in menu if not t.isascii())
        self.full_re = _trie_pattern(t for t in full if not t.isascii())
        self.menu_ascii = {t: e for t, e in menu.items() if t.isascii()}
        self.full_ascii = {t: e for t, e in full.items() if t.isascii()}

    def scan(self, text: str, full: bool) -> list[tuple[int, int, str, _Entry]]:
        """All maximal lexicon matches in ``text``: (start, end, term, entry), ordered by start."""
        table = self.full if full else self.menu
        ascii_table = self.full_ascii if full else self.menu_ascii
        found: list[tuple[int, int, str, _Entry]] = []
        for m in (self.full_re if full else self.menu_re).finditer(text):
            term = m.group(1)
            found.append((m.start(), m.start() + len(term), term, table[term]))
        if ascii_table:
            tokens = [(m.start(), m.end(), m.group()) for m in _ASCII_RE.finditer(text)]
            for i, (s, e, tok) in enumerate(tokens):
                if i + 1 < len(tokens) and tokens[i + 1][0] == e + 1:
                    pair = tok + " " + tokens[i + 1][2]
                    entry = ascii_table.get(pair)
                    if entry is not None:
                        found.append((s, tokens[i + 1][1], pair, entry))
                        continue
                entry = ascii_table.get(tok)
                if entry is None and tok.endswith("s"):
                    entry = ascii_table.get(tok[:-1])
                if entry is not None:
                    found.append((s, e, tok, entry))
            found.sort(key=lambda x: (x[0], -x[1]))
        # drop matches contained in an earlier, longer one (양념갈비 hides 갈비; 순대국 hides 순대)
        kept: list[tuple[int, int, str, _Entry]] = []
        max_end = -1
        for match in found:
            if match[1] <= max_end:
                continue
            kept.append(match)
            max_end = match[1]
        return kept


# ------------------------------------------------------------------------------------------------
# Text normalisation
# ------------------------------------------------------------------------------------------------
_PRICE_RE = re.compile(
    r"""
    (?:₩|\\|krw|usd|\$)\s*\d[\d,.]*\s*(?:원|won)?      # ₩8,000  $12.50
    | \d+(?:\.\d+)?\s*(?:만|천)\s*(?:\d+\s*천\s*)?원     # 1.5만원 8천원 1만2천원
    | \d{1,3}(?:[,.]\d{3})+\s*(?:원|won|krw|₩)?        # 4,500  12.000원
    | \d+\s*(?:원|won|krw|₩)                           # 7000원 500원
    | (?<![\d.])\d{4,}(?![\d.])                         # a bare 4+ digit number: 4500
    """,
    re.VERBOSE | re.IGNORECASE,
)
_PRIMARY_SPLIT_RE = re.compile(r"[|\n\r\t;]+")
_SECONDARY_SPLIT_RE = re.compile(r"[,/·•+、，]+")
_SPACE_RE = re.compile(r"\s+")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):  # pandas.NA and friends refuse to be truthy
        return True


def _to_text(value: object, limit: int) -> str:
    if _is_missing(value):
        return ""
    text = value if isinstance(value, str) else str(value)
    return unicodedata.normalize("NFKC", text[: limit * 2])[:limit]


_JUNK_RE = re.compile(r"(?:[^\w']|_)+")  # \w = Unicode letters and digits (plus '_', dropped too)
_LETTER_RE = re.compile(r"[^\W\d_]")


def _clean(text: str) -> str:
    """Keep letters, digits and apostrophes; emoji, brackets and other symbols become spaces."""
    return _JUNK_RE.sub(" ", text).strip()


def _normalize(text: str) -> str:
    return _clean(unicodedata.normalize("NFKC", text).lower())


def split_menu(menu: str | None) -> list[str]:
    """Split a raw menu string into clean item names.

    Items are separated by '|' (also newlines, ';', ',', '/', '·', '+'); prices ("짜장면 7000원",
    "아메리카노 4,500", "₩8,000", "1.5만원"), emoji, brackets and stray whitespace are removed, text is
    NFKC-normalised (case is kept) and empty items are dropped.
    """
    text = _to_text(menu, MAX_FIELD_CHARS["menu"])
    if not text:
        return []
    items: list[str] = []
    for piece in _PRIMARY_SPLIT_RE.split(text):
        piece = _PRICE_RE.sub(" ", piece)
        for sub in _SECONDARY_SPLIT_RE.split(piece):
            item = _clean(sub)
            if item and _has_content(item):
                items.append(item)
                if len(items) >= MAX_ITEMS:
                    return items
    return items


def _has_content(item: str) -> bool:
    return _LETTER_RE.search(item) is not None


# ------------------------------------------------------------------------------------------------
# The labeler
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfflinePrediction:
    industry: str  # one of taxonomy.INDUSTRY_CODES
    confidence: float  # 0..1
    margin: float  # 0..1, normalized score gap to the runner-up, shrunk when evidence is thin
    runner_up: str | None
    evidence: tuple[str, ...]  # matched lexicon terms, "field:term"


_LEX = _Lexicon(_LEXICON)
_PUB = _IDX["pub"]
_OTHER = _IDX[OTHER]


@dataclass(frozen=True)
class _ItemScore:
    sparse: tuple[tuple[int, float], ...]  # (industry index, score) for non-zero scores
    terms: tuple[str, ...]
    generic: bool
    top: int  # industry index of the item's best score


_EMPTY_ITEM = _ItemScore((), (), False, _OTHER)


@lru_cache(maxsize=200_000)
def _score_item(item: str) -> _ItemScore:
    """Score one lower-cased, canonicalised menu item (cached: items repeat across restaurants).

    The last non-generic match is the head of the compound; earlier matches count as modifiers.
    """
    matches = _LEX.scan(item, full=False)
    compact_end = len(item.rstrip())
    last = item[compact_end - 1] if compact_end else ""
    suffix = _LEX.item_suffix.get(last)
    if suffix is not None and not any(end >= compact_end for _, end, _, _ in matches):
        matches.append((compact_end - 1, compact_end, last, suffix))
    if not matches:
        return _EMPTY_ITEM
    terms = tuple(m[2] for m in matches)
    real = [m for m in matches if not m[3].generic]
    if not real:
        vec = [0.0] * _N
        for m in matches:
            vec = [max(a, b) for a, b in zip(vec, m[3].weights)]
        return _item_score(vec, terms, True)
    head = max(real, key=lambda m: (m[1], m[1] - m[0]))
    vec = list(head[3].weights)
    # A weak head (구이, 정식, 덮밥) names a cooking style or a format, so the modifiers say what it is.
    factor = MODIFIER_WEIGHT if max(vec) >= STRONG_HEAD else 1.0
    seen = {head[2]}
    for m in real:
        if m[2] in seen:
            continue
        seen.add(m[2])
        for i, w in enumerate(m[3].weights):
            if w:
                vec[i] += factor * w
    return _item_score(vec, terms, False)


def _item_score(vec: list[float], terms: tuple[str, ...], generic: bool) -> _ItemScore:
    sparse = tuple((i, w) for i, w in enumerate(vec) if w)
    top = max(range(_N), key=lambda i: (vec[i], -i))
    return _ItemScore(sparse, terms, generic, top)


def _strip_branch(name: str) -> str:
    """Drop branch suffixes ("강남역점", "2호점", "본점") that follow the brand after a space."""
    tokens = name.split(" ")
    if len(tokens) > 1:
        tokens = [tokens[0]] + [
            t for t in tokens[1:] if not (len(t) >= 2 and t.endswith("점") and not t.endswith("반점"))
        ]
    return " ".join(tokens)


def _score_name(name: str) -> tuple[list[float], list[str]]:
    vec = [0.0] * _N
    evidence: list[str] = []
    name = _strip_branch(name)
    for _, _, term, entry in _LEX.scan(name, full=True):
        vec = [max(a, b) for a, b in zip(vec, entry.weights)]
        evidence.append("name:" + term)
    # Chinese-restaurant endings (신흥각, 동해루): only the last syllable of the first word, weak.
    first = name.split(" ")[0] if name else ""
    if len(first) >= 2 and not first[-1].isascii():
        entry = _LEX.name_suffix.get(first[-1])
        if entry is not None and not any(vec):
            vec = [max(a, b) for a, b in zip(vec, entry.weights)]
            evidence.append("name-ending:" + first[-1])
    return [NAME_WEIGHT * v for v in vec], evidence


def _score_description(desc: str) -> tuple[list[float], list[str]]:
    vec = [0.0] * _N
    evidence: list[str] = []
    for _, _, term, entry in _LEX.scan(desc, full=True):
        if entry.generic:
            continue
        vec = [a + DESC_WEIGHT * b for a, b in zip(vec, entry.weights)]
        evidence.append("desc:" + term)
    return [min(v, DESC_CAP) for v in vec], evidence


class OfflineLabeler:
    """Lexicon classifier: deterministic, stdlib-only, roughly 10,000 restaurants/s on one core."""

    version: str = LEXICON_VERSION

    def predict(
        self, name: str | None, menu: str | None, description: str | None = None
    ) -> OfflinePrediction:
        """Label one restaurant; any field may be None/NaN/empty."""
        scores = [0.0] * _N
        evidence: list[str] = []

        name_text = _canon(_normalize(_to_text(name, MAX_FIELD_CHARS["name"])))
        if name_text:
            vec, ev = _score_name(name_text)
            scores = [a + b for a, b in zip(scores, vec)]
            evidence += ev

        item_tops: set[int] = set()
        rank = 0
        for item in split_menu(menu):
            scored = _score_item(_canon(item.lower()))
            if not scored.terms:
                continue
            if scored.generic:
                weight = 1.0
            else:
                weight = 1.0 + POSITION_BONUS * POSITION_DECAY**rank
                rank += 1
                item_tops.add(scored.top)
            for i, w in scored.sparse:
                scores[i] += weight * w
            evidence += ["menu:" + t for t in scored.terms]

        desc_text = _canon(_normalize(_to_text(description, MAX_FIELD_CHARS["description"])))
        if desc_text:
            vec, ev = _score_description(desc_text)
            scores = [a + b for a, b in zip(scores, vec)]
            evidence += ev

        # A hodgepodge of dishes from three or more cuisines plus drinking snacks is a pub's anju
        # menu (고등어봉초밥 | 과일화채 | 모둠꼬치 is an izakaya, not a sushi bar).
        if len(item_tops) >= 3 and scores[_PUB] > 0:
            scores[_PUB] *= 1.5

        return _decide(scores, _dedupe(evidence))

    def predict_many(
        self, rows: Iterable[tuple[str | None, str | None, str | None]]
    ) -> list[OfflinePrediction]:
        out = []
        for row in rows:
            row = tuple(row)
            name = row[0] if len(row) > 0 else None
            menu = row[1] if len(row) > 1 else None
            desc = row[2] if len(row) > 2 else None
            out.append(self.predict(name, menu, desc))
        return out


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:MAX_EVIDENCE]


def _decide(scores: list[float], evidence: tuple[str, ...]) -> OfflinePrediction:
    """Turn raw scores into a prediction; ties break by taxonomy order (deterministic)."""
    total = sum(s for s in scores if s > 0)
    order = sorted(range(_N), key=lambda i: (-scores[i], i))
    top, second = order[0], order[1]
    if total < MIN_EVIDENCE or scores[top] <= 0:
        runner = INDUSTRY_CODES[top] if scores[top] > 0 and top != _OTHER else None
        confidence = 0.05 + 0.2 * min(total / MIN_EVIDENCE, 1.0) if total else 0.05
        return OfflinePrediction(OTHER, round(confidence, 4), 0.0, runner, evidence)
    strength = 1.0 - math.exp(-total / STRENGTH_SCALE)
    p1 = scores[top] / total
    p2 = max(scores[second], 0.0) / total
    confidence = min(max(p1 * strength, 0.0), 1.0)
    margin = min(max((p1 - p2) * strength, 0.0), 1.0)
    runner = INDUSTRY_CODES[second] if scores[second] > 0 else None
    return OfflinePrediction(
        INDUSTRY_CODES[top], round(confidence, 4), round(margin, 4), runner, evidence
    )
