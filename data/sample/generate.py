#!/usr/bin/env python3
"""Generate the synthetic sample corpus that ships with llmjp-jax.

Every sentence, word list and code fragment below was written for this
project; the script combines them with a seeded ``random.Random`` so the
output is byte-for-byte reproducible.  Pure standard library, Python 3.11.

    python data/sample/generate.py            # writes next to this script
    python data/sample/generate.py --out DIR  # writes DIR/train, DIR/heldout

Each output file is JSON lines: {"text": "...", "id": "<subset>-<n>"}.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import random
import re
import sys
import textwrap
from pathlib import Path

TRAIN_SEED = 20240601
HELDOUT_SEED = 91807
TARGET_BYTES = {"ja": 1_200_000, "en": 900_000, "code": 400_000}
HELDOUT_FRACTION = 0.03
MIN_CHARS, MAX_CHARS = 200, 3000


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

class Slots(dict):
    """Lazily fills `{slot}` names from a word table, once per document.

    `{food}` and `{food2}` draw from the same list but never repeat a value.
    A table entry is either a list (choose one) or a callable taking the rng.
    """

    def __init__(self, rng: random.Random, words: dict, **fixed):
        super().__init__(fixed)
        self.rng = rng
        self.words = words

    def __missing__(self, key: str) -> str:
        base = key if key in self.words else key.rstrip("0123456789")
        source = self.words[base]  # an unknown slot is a bug: fail loudly
        used = [v for k, v in self.items() if k.rstrip("0123456789") == base]
        value = None
        for _ in range(30):
            value = source(self.rng) if callable(source) else self.rng.choice(source)
            if value not in used:
                break
        self[key] = value
        return value


def fill_slots(template: str, slots: Slots) -> str:
    text = template
    for _ in range(5):  # slot values may themselves contain slots
        if "{" not in text:
            return text
        text = text.format_map(slots)
    raise ValueError(f"unresolved slots in {template!r}")


def pick_units(rng: random.Random, units: list, lo: int, hi: int) -> list:
    """Chooses lo..hi template units, keeping their written order."""
    k = min(len(units), rng.randint(lo, hi))
    return [units[i] for i in sorted(rng.sample(range(len(units)), k))]


def deal_units(rng: random.Random, units: list, days: int, lo: int, hi: int) -> list[list]:
    """Deals template units to several diary entries without reusing any."""
    order = rng.sample(range(len(units)), len(units))
    hands = []
    for _ in range(days):
        k = min(len(order), rng.randint(lo, hi))
        if k < 3:
            break
        hand, order = sorted(order[:k]), order[k:]
        hands.append([units[i] for i in hand])
    return hands


def split_paragraphs(rng: random.Random, items: list, min_len: int = 3) -> list[list]:
    """Splits a list into 1..4 consecutive runs of at least `min_len` items."""
    most = max(1, min(4, len(items) // min_len))
    n = rng.randint(1, most)
    if n == 1:
        return [items]
    cuts = sorted(rng.sample(range(min_len, len(items) - min_len + 1), n - 1))
    runs, start = [], 0
    for cut in cuts:
        if cut - start >= min_len:
            runs.append(items[start:cut])
            start = cut
    runs.append(items[start:])
    return runs


def number(lo: int, hi: int, step: int = 1, comma: bool = False, wide: float = 0.0):
    """Word-table entry: a random integer as text (optionally full-width)."""
    def draw(rng: random.Random) -> str:
        n = rng.randrange(lo, hi + 1, step)
        if comma:
            return f"{n:,}"
        text = str(n)
        return text.translate(FULLWIDTH) if rng.random() < wide else text
    return draw


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


# ---------------------------------------------------------------------------
# Japanese: verb conjugation and style endings
# ---------------------------------------------------------------------------
# Templates mark sentence-final predicates so one template serves three styles:
#   [食べる:past]  -> 食べました (polite) / 食べた (plain, formal)
#   <だ> <だった> <い> <でしょう> -> copula endings per style
# Forms: pres past neg pneg prog progp vol want (style dependent) and
#        te ta dict ou (always plain).

ICHIDAN = set("""
食べる 見る 起きる 寝る 出かける 考える 続ける 始める 決める 調べる 覚える 教える
入れる 加える 混ぜる いる できる 出る 降りる 乗り換える 伝える 集める 建てる 植える
変える 比べる 見せる 届ける 受ける 感じる 借りる 上げる 並べる 答える 育てる 増える
消える 温める 炒める 煮る 整える 迎える 見つける 眺める 広げる 開かれる 言われる
使われる 表される 展示される 行われる 揺れる 遅れる 忘れる 訪れる 流れる 慣れる みる
見える 聞こえる 止める 分ける 漬ける かける のせる 仕上げる 垂れ込める 照りつける
される 見かける 飾られる 隠れる つける 確かめる 指定される 冷める 茹でる 超える
回しかける 含ませる 煮立てる こねる 調える 和える 炒め合わせる しみる 弱める 見られる
生まれる 晴れる 任せる 伸びる 乗り越える 守られる 栄える 追われる 売られる
付け加える 取り入れる 備える 届けられる 寄せられる
""".split())

GODAN = set("""
行く 帰る 入る 走る 知る 切る 減る 使う 買う 言う 思う 会う 合う 払う 習う 手伝う
向かう 扱う 話す 出す 渡す 返す 過ごす 探す 動かす 待つ 持つ 勝つ 育つ 読む 住む
飲む 休む 進む 悩む 楽しむ 包む 積む 遊ぶ 呼ぶ 選ぶ 並ぶ 運ぶ 学ぶ 喜ぶ 書く 聞く
歩く 働く 咲く 吹く 続く 開く 届く 置く 焼く 描く 築く 乾く 急ぐ 降る 乗る 取る
作る 送る 残る 終わる 始まる 変わる 集まる 伝わる 分かる 光る 眠る 頑張る 登る 戻る
直る 困る 仕上がる 混む 暮らす 冷やす 増やす 干す 舞う 笑う 洗う 守る 上がる 下がる
広がる 渡る 通う 保つ 目指す 果たす 覆う おく しまう いく 降り注ぐ 映る 曇る にぎわう
わき上がる 引き合う 見つかる 撮る 書き出す 出会う 驚く 迷う 鳴く 差し込む
見守る 足す 沸く 残す 祈る 刻む 盛る 巻く 積もる 色づく 散る 弾む 生かす
向く 振り返る なる つぶす 散らす いただく さらす 煮込む 絞る 強まる 冷ます ふる 降り続く
""".split())

I_ROW = dict(zip("うくぐすつぬぶむる", "いきぎしちにびみり"))
A_ROW = dict(zip("うくぐすつぬぶむる", "わかがさたなばまら"))
O_ROW = dict(zip("うくぐすつぬぶむる", "おこごそとのぼもろ"))
TE_ROW = {"う": "って", "つ": "って", "る": "って", "く": "いて", "ぐ": "いで",
          "す": "して", "ぬ": "んで", "ぶ": "んで", "む": "んで"}


def verb_bases(verb: str) -> tuple[str, str, str, str, str]:
    """(masu stem, te form, plain past, plain negative, volitional)."""
    if verb == "来る":
        return "来", "来て", "来た", "来ない", "来よう"
    if verb == "くる":
        return "き", "きて", "きた", "こない", "こよう"
    if verb.endswith("する"):
        p = verb[:-2]
        return p + "し", p + "して", p + "した", p + "しない", p + "しよう"
    if verb in ICHIDAN:
        s = verb[:-1]
        return s, s + "て", s + "た", s + "ない", s + "よう"
    if verb in GODAN or verb == "ある":
        base, last = verb[:-1], verb[-1]
        te = TE_ROW[last]
        if verb in ("行く", "いく"):
            te = "って"
        nai = "ない" if verb == "ある" else base + A_ROW[last] + "ない"
        return (base + I_ROW[last], base + te, base + te[:-1] + te[-1].translate(TE_TO_TA),
                nai, base + O_ROW[last] + "う")
    raise KeyError(f"verb {verb!r} is not in the conjugation tables")


TE_TO_TA = str.maketrans("てで", "ただ")


def conjugate(verb: str, form: str, style: str) -> str:
    stem, te, ta, nai, vol = verb_bases(verb)
    polite = style == "polite"
    table = {
        "pres": (stem + "ます", verb),
        "past": (stem + "ました", ta),
        "neg": (stem + "ません", nai),
        "pneg": (stem + "ませんでした", nai[:-1] + "かった"),
        "prog": (te + "います", te + "いる"),
        "progp": (te + "いました", te + "いた"),
        "vol": (stem + "ましょう", vol),
        "want": (stem + "たいです", stem + "たい"),
        "te": (te, te), "ta": (ta, ta), "dict": (verb, verb), "ou": (vol, vol),
    }
    return table[form][0 if polite else 1]


ENDINGS = {
    "だ": {"polite": "です", "plain": "だ", "formal": "である"},
    "だった": {"polite": "でした", "plain": "だった", "formal": "であった"},
    "い": {"polite": "です", "plain": "", "formal": ""},
    "でしょう": {"polite": "でしょう", "plain": "だろう", "formal": "であろう"},
}
VERB_RE = re.compile(r"\[([^\[\]:]+):(\w+)\]")
END_RE = re.compile(r"<([^<>]+)>")


def ja_render(template: str, slots: Slots, style: str) -> str:
    text = fill_slots(template, slots)
    text = VERB_RE.sub(lambda m: conjugate(m[1], m[2], style), text)
    text = END_RE.sub(lambda m: ENDINGS[m[1]][style], text)
    if re.search(r"[{}\[\]<>]", text):
        raise ValueError(f"unrendered marker in {text!r}")
    return text


def ja_units(rng, units, slots, style, lo=4, hi=14) -> list[str]:
    """Renders a sample of template units into paragraphs of sentences."""
    chosen = pick_units(rng, units, lo, hi)
    paragraphs = []
    for run in split_paragraphs(rng, chosen):
        sentences = []
        for unit in run:
            parts = unit if isinstance(unit, tuple) else (unit,)
            sentences.extend(ja_render(p, slots, style) for p in parts)
        paragraphs.append("".join(sentences))
    return paragraphs


# ---------------------------------------------------------------------------
# Japanese: word lists
# ---------------------------------------------------------------------------

FAMILY = ("佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 "
          "井上 木村 林 清水 山崎 森 池田 橋本 阿部 石川 前田 藤田 小川 岡田 後藤 長谷川 "
          "村上 近藤 坂本 遠藤 青木 西村 福田 太田 三浦 藤井 岡本 中島 原田 小野").split()
GIVEN = ("太郎 花子 健太 美咲 翔太 陽菜 大輝 結衣 蓮 さくら 悠斗 葵 湊 凛 拓海 彩花 一郎 "
         "真由美 誠 恵子 直樹 由美 浩二 千尋 大和 ひなた 颯太 莉子 光 ゆかり 修 明美 "
         "隆 芽衣 陸 紗希 勇気 知子").split()

JA_WORDS = {
    "name": lambda r: r.choice(FAMILY) + "さん",
    "fullname": lambda r: r.choice(FAMILY) + r.choice(GIVEN),
    "given": GIVEN,
    "town": ("星見町 花咲野市 風見町 雲雀ヶ丘町 鈴音町 水鏡村 青嵐市 梢町 灯野町 白鷺台市 "
             "若竹町 川霧町 桜見坂市 糸杉町 虹ヶ浜町 夕凪市 月見野町 霞台市").split(),
    "place": ("図書館 中央公園 市民ホール 体育館 港 美術館 駅前広場 商店街 小学校 市役所 "
              "神社 動物園 植物園 科学館 公民館 川沿いの遊歩道 海浜公園 郷土資料館").split(),
    "garden": "中央公園 川沿いの遊歩道 植物園 神社の境内 駅前の花壇 城跡公園 小学校の校庭".split(),
    "walk": number(3, 15),
    "food_shop": "農産物の直売所 道の駅 商店街の青果店 老舗の食料品店 駅前の市場".split(),
    "indoor": "科学館 美術館 水族館 郷土資料館 プラネタリウム".split(),
    "shop": ("パン屋 八百屋 本屋 花屋 魚屋 喫茶店 雑貨屋 文房具店 自転車屋 豆腐屋 和菓子屋 "
             "定食屋 古本屋 ケーキ屋").split(),
    "drink": "緑茶 ほうじ茶 麦茶 紅茶 コーヒー 牛乳 ココア".split(),
    "food": ("カレーライス 焼き魚 親子丼 肉じゃが ラーメン うどん そば おにぎり 天ぷら 餃子 "
             "オムライス 焼きそば サンドイッチ ハンバーグ 卵焼き お好み焼き 野菜炒め 豚汁").split(),
    "snack": "どら焼き クッキー メロンパン 大福 プリン たい焼き せんべい ドーナツ カステラ 団子".split(),
    "animal": "猫 犬 すずめ カラス うさぎ たぬき つばめ ハト 亀 鯉 白鷺".split(),
    "hobby": ("読書 散歩 写真 料理 園芸 将棋 釣り 水彩画 ピアノ ジョギング 登山 書道 手芸 "
              "囲碁 ギター 俳句").split(),
    "book": "小説 図鑑 料理の本 歴史の本 旅行雑誌 漫画 詩集 推理小説 絵本 科学の本".split(),
    "subject": "数学 理科 国語 英語 歴史 地理 音楽 美術".split(),
    "event": ("夏祭り 花火大会 運動会 文化祭 朝市 盆踊り マラソン大会 音楽会 餅つき大会 "
              "植木市 フリーマーケット 灯籠流し").split(),
    "sport": "サッカー 野球 ソフトボール ホッケー 水球".split(),
    "venue": "中央公園 河川敷 神社の境内 城跡公園 駅前広場 海浜公園 市民グラウンド".split(),
    "device": "ノートパソコン スマートフォン タブレット デスクトップパソコン".split(),
    "software": "表計算ソフト テキストエディタ 文書作成ソフト 写真の編集ソフト 家計簿アプリ".split(),
    "app": ("在庫管理のシステム 図書館の貸し出しアプリ 天気のデータを集めるツール "
            "会議室の予約システム 学校の時間割アプリ 商店街のポイントカードのシステム").split(),
    "station": ("桜通り駅 川端駅 東町駅 西公園駅 大橋駅 市民病院前駅 山手口駅 緑ヶ丘駅 "
                "港南駅 中央駅 北野駅 古町駅").split(),
    "line": "青葉線 海沿い線 緑川線 東西線 環状線 北部線 丘陵線 みなと線".split(),
    "train_kind": "普通列車 快速 急行 特急".split(),
    "scenery": ("青い海 一面の田んぼ 遠くの山並み 川沿いの並木道 古い町並み 広い茶畑 "
                "大きな鉄橋 湖のほとりの小さな村").split(),
    "direction": "南 南西 西 北西 北 北東 東 南東".split(),
        "forecast": "晴れのち曇り 曇り時々雨 雨のち晴れ 一日中晴れ 曇りのち晴れ".split(),
    "weekday": "月曜日 火曜日 水曜日 木曜日 金曜日 土曜日 日曜日".split(),
    "plant": "ミニトマト バジル ミント パンジー ゼラニウム ポトス".split(),
    "gift": "りんご お茶 お菓子 みかん 干し柿 お米 梨".split(),
    "act_te": ("本を読んで 宿題を片付けて 写真を撮って 絵を描いて 友達とおしゃべりをして "
               "部屋の掃除をして 英単語を覚えて 手紙を書いて").split(),
    "feel": "楽しい 慌ただしい のんびりした 充実した 不思議な 少し疲れた 穏やかな".split(),
    "research": ("土の中の小さな生き物 雲のでき方 植物の根の伸び方 新しい電池の材料 "
                 "川の水質 鳥の渡りのルート 金属がさびる仕組み").split(),
    "observation": ["日なたに置いた水のほうが早く温まる", "塩を溶かした水は真水より凍りにくい",
                    "黒い紙を巻いた容器のほうが温度が高くなる",
                    "風通しのよい場所では水が早く蒸発する",
                    "温度が高いほど砂糖が速く溶ける"],
    "date": lambda r: f"{number(1, 12, wide=.12)(r)}月{number(1, 28, wide=.12)(r)}日",
    "hour": number(6, 11), "wake": number(5, 9), "sleep": number(21, 23),
    "minutes": number(5, 40, 5, wide=.1), "pct": number(0, 90, 10, wide=.1),
    "n": number(2, 9, wide=.15), "n_years": number(10, 50, 5), "n_days": number(3, 14),
    "n_gb": lambda r: r.choice(["8", "16", "32", "64"]), "n_chars": number(10, 16),
    "pop": number(8000, 60000, 500, comma=True), "visitors": number(300, 9000, 100, comma=True),
    "money": number(500, 9000, 100, comma=True), "passengers": number(3000, 90000, 1000, comma=True),
    "age": number(5, 12), "n_books": number(5, 15), "n_weeks": number(2, 3),
    "len1": number(1, 3), "n_beaker": number(3, 6),
    "street": "中央通り 駅前通り 県道沿い 住宅街の一角 港近くの交差点".split(),
    "school": "第一中学校 北高校 南小学校 東中学校 青葉高校".split(),
    "quote": ["天気に恵まれて、本当によかったです", "来年はもっと多くの人に楽しんでもらいたいです",
              "地域のつながりを感じられる一日になりました",
              "子どもたちの笑顔がたくさん見られて、うれしく思います",
              "準備は大変でしたが、やってよかったと思います"],
    "quote2": ["今年は出来がよく、自信を持っておすすめできます",
               "毎年楽しみにしてくださるお客さんがいるので、励みになります",
               "一つ一つ手作業で仕上げているので、ぜひ味わってほしいです"],
    "policy": ["来年度から市内の小学校の図書室を新しくする", "駅前の広場を改修して屋根を付ける",
               "中央公園の遊具をすべて入れ替える", "路線バスの本数を朝夕に増やす",
               "川沿いの遊歩道に街灯を設置する"],
    "reason": ["天候に恵まれた", "新しい催しが加わった", "駅から無料のバスが運行された"],
    "building": "酒蔵 石橋 旧役場の建物 木造の校舎 商家の建物 火の見やぐら".split(),
    "hist_event": "歴史まつり 時代行列 灯籠流し 昔の暮らしを再現する催し 古文書の特別展示".split(),
    "artifact": "古い農具 昔の地図 祭りで使われた衣装 町の古い写真 焼き物のかけら".split(),
    "era": "江戸時代の初め 室町時代 今からおよそ四百年前 平安時代の終わりごろ".split(),
    "industry": "絹織物 塩づくり 材木の取引 漁業 焼き物づくり 茶の栽培 和紙づくり".split(),
    "region": "山あいの盆地 大きな川の河口 海に面したなだらかな丘 広い平野の中ほど".split(),
    "origin": ["町を流れる川の名前", "かつてこの地に多く生えていた木", "古い神社の名前",
               "昔この地を治めた一族の名字", "丘の上から見える美しい星空"],
}

JA_SEASONS = {
    "春": dict(months=(3, 4, 5), temp=(14, 23), adj="暖かく過ごしやすい",
              crop="いちご たけのこ 春キャベツ".split(),
              flower="桜 菜の花 チューリップ たんぽぽ つつじ".split(),
              sfood="たけのこご飯 いちご 春キャベツのサラダ 菜の花のおひたし 桜もち".split(),
              sevent="春祭り 植木市 花まつり 朝市 マラソン大会".split(), wx="大雨 強風 長雨".split(),
              sky=["やわらかな日差しが[降り注ぐ:prog]", "薄い雲が広がり、ぼんやりとした空<だ>"],
              wet_sky=["しとしとと春の雨が[降る:prog]", "冷たい雨が[降り続く:prog]"],
              greeting="桜の便りがあちこちから届く季節となりましたが",
              lines=["冬の寒さがゆるみ、日差しが少しずつ暖かく[なる:prog]。",
                     "新しい生活を始める人も多く、駅や学校はどこか落ち着かない雰囲気<だ>。",
                     "暖かい日には、{garden2}でお弁当を広げる家族の姿も[見られる:pres]。",
                     "畑では、農家の人たちが種まきの準備に[追われる:prog]。"]),
    "夏": dict(months=(6, 7, 8), temp=(27, 35), adj="日差しが強く、暑さの厳しい",
              crop="すいか とうもろこし 枝豆 桃".split(),
              flower="ひまわり 朝顔 ハス さるすべり".split(),
              sfood="すいか 冷やし中華 かき氷 とうもろこし 枝豆".split(),
              sevent="夏祭り 花火大会 盆踊り大会 灯籠流し 朝顔市".split(), wx="大雨 雷雨 強風".split(),
              sky=["強い日差しが[照りつける:prog]", "入道雲が高く[わき上がる:prog]",
                   "むっとするような蒸し暑さが[続く:prog]"],
              wet_sky=["大粒の雨が激しく[降る:prog]", "雷を伴った強い雨が[降る:prog]"],
              greeting="暑い日が続いておりますが",
              lines=["梅雨が明けると、強い日差しが照りつける暑い日が[続く:pres]。",
                     "夕方になると、どこからかセミの鳴き声が[聞こえる:pres]。",
                     "夜の{town}では、浴衣姿の人たちが{sevent}の会場へ[向かう:progp]。",
                     "暑さで体調を崩さないよう、こまめに水分をとることが大切<だ>。"]),
    "秋": dict(months=(9, 10, 11), temp=(16, 24), adj="涼しく過ごしやすい",
              crop="梨 栗 さつまいも".split(),
              flower="コスモス 菊 彼岸花 金木犀".split(),
              sfood="さんまの塩焼き 栗ご飯 焼きいも 梨 きのこの炊き込みご飯".split(),
              sevent="運動会 紅葉まつり 収穫祭 文化祭 音楽会".split(), wx="大雨 長雨 強風".split(),
              sky=["すっきりとした秋晴れ<だ>", "高い空にうろこ雲が[広がる:prog]"],
              wet_sky=["冷たい秋雨が[降る:prog]", "台風の影響で風雨が[強まる:prog]"],
              greeting="朝夕はすっかり涼しくなりましたが",
              lines=["暑さがやわらぎ、朝夕には涼しい風が吹くように[なる:past]。",
                     "山の木々が赤や黄色に色づき、紅葉狩りの季節を[迎える:pres]。",
                     "実りの秋といわれるように、この時期は{sfood}がとてもおいしい<い>。",
                     "日が暮れるのが早くなり、帰り道はすっかり暗く[なる:pres]。"]),
    "冬": dict(months=(12, 1, 2), temp=(3, 10), adj="寒さの厳しい",
              crop="みかん 白菜 大根".split(),
              flower="椿 水仙 梅 山茶花".split(),
              sfood="鍋料理 おでん みかん 湯豆腐 ぶり大根".split(),
              sevent="餅つき大会 雪まつり 冬の朝市 音楽会".split(), wx="大雪 強風 寒波".split(),
              sky=["冷たい北風が[吹く:prog]", "よく晴れているものの、空気は冷たい<い>"],
              wet_sky=["小雪が[舞う:prog]", "みぞれ混じりの冷たい雨が[降る:prog]"],
              greeting="寒さが日ごとに厳しくなってまいりましたが",
              lines=["朝起きると、窓ガラスが白く[曇る:progp]。",
                     "吐く息が白くなり、手袋やマフラーが手放せない季節<だ>。",
                     "年末が近づくと、商店街は買い物客で[にぎわう:pres]。",
                     "雪の積もった朝は、いつもの道がまるで別の景色のように[見える:pres]。"]),
}


def ja_season_slots(rng: random.Random, wet: bool = False, **extra) -> Slots:
    season = rng.choice(list(JA_SEASONS))
    s = JA_SEASONS[season]
    month = rng.choice(s["months"])
    hi = rng.randint(*s["temp"])
    lo = hi - rng.randint(5, 10)
    lo_text = f"氷点下{-lo}" if lo < 0 else str(lo)
    return Slots(rng, JA_WORDS, season=season, month=f"{month}月",
                 date=f"{month}月{rng.randint(1, 28)}日", temp_hi=str(hi), temp_lo=lo_text,
                 flower=rng.choice(s["flower"]), sfood=rng.choice(s["sfood"]), crop=rng.choice(s["crop"]),
                 sevent=rng.choice(s["sevent"]), adj=s["adj"],
                 sky=rng.choice(s["wet_sky"] if wet else s["sky"]), wx_noun=rng.choice(s["wx"]),
                 greeting=s["greeting"], **extra)


# ---------------------------------------------------------------------------
# Japanese: topics (each returns a title and a list of paragraphs)
# ---------------------------------------------------------------------------

JA_WEATHER = [
    "{date}の{town}は、朝から{sky}。",
    "最高気温は{temp_hi}度、最低気温は{temp_lo}度の予想<だ>。",
    "降水確率は午前が{pct}パーセント、午後が{pct2}パーセント<だ>。",
    "{garden}の周りでは、風で木の枝が大きく[揺れる:progp]。",
    "天気予報によると、明日の{town}は{forecast}<だ>。",
    "風は{direction}寄りで、日中はやや強く吹く<でしょう>。",
    "来週は気温が平年並みに戻り、{season}らしい天気になりそう<だ>。",
    "体調を崩さないよう、無理をせず早めに休むことも大切<だ>。",
]
JA_WEATHER_WET = [
    "午後になると{direction}から湿った空気が流れ込み、雨脚が強まるおそれも[ある:pres]。",
    "出かけるときは、傘を忘れないように[する:vol]。",
    "{name}によると、{town}でこれほどの{wx_noun}は{n_years}年ぶりだそう<だ>。",
    "{town}の北にある山では、低い雲が[垂れ込める:prog]。",
    "道路が濡れて滑りやすくなっているので、自転車に乗る人は注意が必要<だ>。",
    "夕方には雨がやみ、{garden2}の水たまりに夕焼けが[映る:progp]。",
]
JA_WEATHER_FAIR = [
    ("午後になると{direction}から湿った空気が流れ込み、にわか雨が降るおそれも[ある:pres]。",
     "念のため、折りたたみ傘を持っていくと安心<だ>。"),
    "空気が乾燥しているため、火の取り扱いには十分な注意が必要<だ>。",
    "洗濯物を外に干すなら、日差しのある午前中がよさそう<だ>。",
    "{garden2}では、散歩を楽しむ人の姿が多く[見られる:past]。",
    "週末にかけても高気圧に覆われ、穏やかな天気が続く見込み<だ>。",
    "夜もよく晴れて、星がきれいに見える<でしょう>。",
]


def ja_weather(rng):
    wet = rng.random() < 0.4
    slots = ja_season_slots(rng, wet=wet,
                            pct=str(rng.randrange(50, 91, 10) if wet else rng.randrange(0, 31, 10)),
                            pct2=str(rng.randrange(50, 91, 10) if wet else rng.randrange(0, 41, 10)))
    units = JA_WEATHER[:3] + (JA_WEATHER_WET if wet else JA_WEATHER_FAIR) + JA_WEATHER[3:]
    style = rng.choice(["polite", "polite", "plain"])
    title = fill_slots(rng.choice(["{town}の天気", "{date}の天気", "今日の空模様"]), slots)
    return title, ja_units(rng, units, slots, style, 5, 14)


# dish: (ingredients, seasonings, good for a packed lunch, steps in order)
JA_RECIPES = {
    "肉じゃが": ("牛肉 じゃがいも 玉ねぎ にんじん しらたき", "醤油 砂糖 みりん", True, [
        "じゃがいもは皮をむいて一口大に切り、水に[さらす:pres]。",
        "鍋に油を熱して牛肉を炒め、色が変わったら野菜としらたきを[加える:pres]。",
        "水と{seas_list}を入れ、落としぶたをして弱火で{simmer}分ほど[煮る:pres]。",
        "じゃがいもに竹串がすっと通れば、火を[止める:pres]。",
        "一度冷ますと、じゃがいもに味がよく[しみる:pres]。"]),
    "カレーライス": ("豚肉 じゃがいも にんじん 玉ねぎ", "カレー粉 塩 ウスターソース", False, [
        "豚肉と野菜を、それぞれ食べやすい大きさに[切る:pres]。",
        "鍋に油を熱し、玉ねぎがしんなりするまでじっくり[炒める:pres]。",
        "豚肉、じゃがいも、にんじんを加えて炒め合わせ、水を注いで{simmer}分ほど[煮込む:pres]。",
        "カレー粉を加えてとろみがつくまで煮込み、塩とウスターソースで味を[調える:pres]。",
        "温かいご飯にたっぷりかけて[いただく:pres]。"]),
    "親子丼": ("鶏肉 玉ねぎ 卵 三つ葉", "醤油 みりん 砂糖 だし", False, [
        "鶏肉は一口大に切り、玉ねぎは薄切りに[する:pres]。",
        "小さめのフライパンに{seas_list}を入れて、中火で[煮立てる:pres]。",
        "玉ねぎと鶏肉を入れ、鶏肉に火が通るまで{short}分ほど[煮る:pres]。",
        "溶き卵を回し入れ、半熟になったら火を[止める:pres]。",
        "ご飯を盛ったどんぶりにのせ、三つ葉を[散らす:pres]。"]),
    "味噌汁": ("豆腐 わかめ ねぎ 油揚げ", "味噌 だし", False, [
        "豆腐はさいの目に切り、油揚げは細切りに[する:pres]。",
        "鍋にだしを入れて中火にかけ、煮立ったら油揚げと豆腐を[入れる:pres]。",
        "再び煮立ったらわかめを加え、火を[弱める:pres]。",
        "味噌を溶き入れ、煮立たせないように[温める:pres]。",
        "最後に刻んだねぎを[散らす:pres]。"]),
    "野菜炒め": ("豚肉 キャベツ にんじん ピーマン もやし", "塩 こしょう ごま油 醤油", True, [
        "豚肉は一口大に、キャベツはざく切りに、にんじんは短冊切りに[する:pres]。",
        "フライパンにごま油を熱し、強火で豚肉を[炒める:pres]。",
        "肉の色が変わったら、火の通りにくいにんじんから順に野菜を[加える:pres]。",
        "塩とこしょうで味をつけ、仕上げに醤油を少し[回しかける:pres]。",
        "野菜のシャキシャキした食感を残すのが、おいしく作るコツ<だ>。"]),
    "豚汁": ("豚肉 大根 にんじん ごぼう こんにゃく", "味噌 だし 七味唐辛子", False, [
        "大根とにんじんはいちょう切りに、ごぼうはささがきに[する:pres]。",
        "鍋に油を熱して豚肉を炒め、野菜とこんにゃくを加えてさらに[炒める:pres]。",
        "だしを注ぎ、野菜がやわらかくなるまで{simmer}分ほど[煮る:pres]。",
        "味噌を溶き入れ、お好みで七味唐辛子を[ふる:pres]。"]),
    "オムライス": ("鶏肉 玉ねぎ ご飯 卵", "ケチャップ 塩 バター", True, [
        "鶏肉は小さめの角切りに、玉ねぎはみじん切りに[する:pres]。",
        "フライパンにバターを溶かし、鶏肉と玉ねぎを[炒める:pres]。",
        "ご飯を加えてほぐしながら炒め、ケチャップと塩で味を[つける:pres]。",
        "別のフライパンで薄焼き卵を作り、ケチャップライスを[包む:pres]。",
        "上からケチャップをかければ、見た目も楽しい一皿に[なる:pres]。"]),
    "焼きそば": ("豚肉 キャベツ にんじん 中華麺", "ソース 塩 こしょう", True, [
        "豚肉とキャベツは食べやすい大きさに、にんじんは細切りに[する:pres]。",
        "フライパンで豚肉を炒め、野菜を加えてしんなりするまで[炒める:pres]。",
        "中華麺を加え、水を少し振ってほぐしながら[炒め合わせる:pres]。",
        "ソースを回しかけ、塩とこしょうで味を[調える:pres]。"]),
    "ポテトサラダ": ("じゃがいも きゅうり にんじん ゆで卵", "マヨネーズ 塩 こしょう 酢", True, [
        "じゃがいもは皮ごとゆでて、熱いうちに皮をむいて[つぶす:pres]。",
        "つぶしたじゃがいもに、酢を少し[混ぜる:te][おく:pres]。",
        "きゅうりは薄切りにして塩もみし、水気をよく[絞る:pres]。",
        "粗熱が取れたら、にんじん、きゅうり、刻んだゆで卵を加えてマヨネーズで[和える:pres]。",
        "冷蔵庫で少し冷やすと、味がなじんでおいしく[なる:pres]。"]),
    "鮭のホイル焼き": ("鮭 玉ねぎ しめじ えのき", "バター 醤油 レモン汁", True, [
        "玉ねぎは薄切りにし、しめじとえのきは石づきを取ってほぐして[おく:pres]。",
        "アルミホイルに玉ねぎを敷き、鮭ときのこをのせてバターを[のせる:pres]。",
        "ホイルをしっかり閉じてフライパンに並べ、ふたをして中火で{fry_min}分ほど[蒸し焼きにする:pres]。",
        "食べる直前に、醤油とレモン汁を少し[かける:pres]。"]),
    "麻婆豆腐": ("豆腐 豚ひき肉 ねぎ にんにく", "味噌 醤油 ごま油 片栗粉", False, [
        "豆腐は二センチ角に切り、ねぎとにんにくはみじん切りに[する:pres]。",
        "フライパンにごま油を熱し、にんにくと豚ひき肉を[炒める:pres]。",
        "味噌と醤油、水を加えて煮立ったら、豆腐を入れて{short}分ほど[煮る:pres]。",
        "水で溶いた片栗粉でとろみをつけ、ねぎを[散らす:pres]。"]),
    "かぼちゃの煮物": ("かぼちゃ 鶏ひき肉 しょうが", "醤油 砂糖 みりん", True, [
        "かぼちゃは種とわたを取り、一口大に[切る:pres]。",
        "鍋に鶏ひき肉とすりおろしたしょうがを入れ、ぽろぽろになるまで[炒める:pres]。",
        "かぼちゃと水、{seas_list}を加え、落としぶたをして{simmer}分ほど[煮る:pres]。",
        "煮汁が少なくなったら火を止め、そのまま冷まして味を[含ませる:pres]。"]),
    "ハンバーグ": ("合いびき肉 玉ねぎ 卵 パン粉", "塩 こしょう ケチャップ ソース", True, [
        "玉ねぎをみじん切りにして、しんなりするまで炒めて[冷ます:pres]。",
        "ボウルに合いびき肉、玉ねぎ、卵、パン粉、塩、こしょうを入れ、粘りが出るまでよく[こねる:pres]。",
        "小判形に整えてフライパンで両面に焼き色をつけ、ふたをして弱火で{fry_min}分ほど[焼く:pres]。",
        "ケチャップとソースを同じ量ずつ混ぜて、簡単なソースを[作る:pres]。"]),
    "お好み焼き": ("キャベツ 小麦粉 卵 豚肉 天かす", "ソース マヨネーズ 青のり", False, [
        "キャベツは粗めのみじん切りに[する:pres]。",
        "ボウルに小麦粉と水、卵を入れて混ぜ、キャベツと天かすを加えてさっくりと[混ぜる:pres]。",
        "熱したフライパンに生地を丸く広げ、上に豚肉を[並べる:pres]。",
        "焼き色がついたら裏返し、ふたをして弱火で{fry_min}分ほど[焼く:pres]。",
        "ソースとマヨネーズを塗り、青のりを[ふる:pres]。"]),
}

JA_COOKING_INTRO = [
    "今日は、家庭で手軽に作れる{dish}を[紹介する:pres]。",
    "{dish}は{name}の得意料理で、家族にもとても評判がよい<い>。",
    "慣れれば、{total}分ほどで作ることが[できる:pres]。",
    "材料（{servings}人分）は、{ing_list}<だ>。",
    "調味料には、{seas_list}を[使う:pres]。",
]
JA_COOKING_TIPS = [
    "器に盛りつけたら、できあがり<だ>。",
    "時間がない日は、前の晩に材料を切っておくと便利<だ>。",
    "家族の好みに合わせて、味の濃さを[加減する:vol]。",
    "残った{dish}は、冷蔵庫で{keep}日ほど保存することが[できる:pres]。",
    "{dish}には、温かい{drink}がよく[合う:pres]。",
    "火を使うときは、子どもだけで調理しないように[する:vol]。",
    "作り方に慣れてきたら、季節の野菜を加えて自分好みに[アレンジする:te][みる:vol]。",
]


def ja_cooking(rng):
    dish = rng.choice(list(JA_RECIPES))
    ings, seas, bento, steps = JA_RECIPES[dish]
    slots = Slots(rng, JA_WORDS, dish=dish, ing_list="、".join(ings.split()),
                  seas_list="、".join(seas.split()), servings=str(rng.randint(2, 4)),
                  total=str(rng.randrange(15, 50, 5)), simmer=str(rng.randrange(10, 31, 5)),
                  short=str(rng.randint(3, 6)), fry_min=str(rng.randint(5, 10)), keep=str(rng.randint(1, 3)))
    style = rng.choice(["polite", "polite", "plain"])
    tips = JA_COOKING_TIPS + (["冷めてもおいしいので、お弁当のおかずにも[向く:pres]。"] if bento else [])
    intro = [ja_render(u, slots, style) for u in pick_units(rng, JA_COOKING_INTRO, 2, 5)]
    body = [ja_render(u, slots, style) for u in steps]
    outro = [ja_render(u, slots, style) for u in pick_units(rng, tips, 1, 5)]
    title = rng.choice([f"{dish}の作り方", f"簡単{dish}", f"今日の献立：{dish}"])
    return title, ["".join(intro), "".join(body), "".join(outro)]


JA_TRAINS = [
    "{town}から{town2}までは、{line}の{train_kind}で約{minutes}分<だ>。",
    "{station}で{line2}に乗り換え、{n}駅目で[降りる:pres]。",
    "平日の朝の{station}は、通勤や通学の人で大変[混雑する:pres]。",
    "{name}は、{hour}時{minute}分発の{train_kind}に[乗る:past]。",
    ("車窓からは、{scenery}が[見える:past]。", "{name}はしばらく、その景色を[眺める:progp]。"),
    "途中の駅で信号の点検があり、電車は{n}分ほど[遅れる:past]。",
    "{line}は{year}年に開業し、今では一日に約{passengers}人が[利用する:pres]。",
    "切符は券売機で買うこともでき、交通系ICカードで改札を通ることも[できる:pres]。",
    "{station}の駅前には、{shop}や{shop2}が[並ぶ:prog]。",
    "終点の{station2}に着いたのは、{hour2}時過ぎ<だった>。",
    "車内では、多くの人が本を読んだり、スマートフォンを見たり[する:progp]。",
    "次の駅では、左側のドアが[開く:pres]。",
    "帰りは電車ではなく、バスを使おうと[思う:pres]。",
    "ホームの売店では、{town}の名物の{snack}が[売られる:prog]。",
    "来月からは新しいダイヤになり、夜の{train_kind}が{n2}本[増える:pres]。",
    "鉄道が好きな{given}は、駅に入ってくる列車を熱心に写真に[撮る:progp]。",
    "乗り換えの時間が短いので、階段の場所を先に[確かめる:te][おく:vol]。",
]


def ja_trains(rng):
    hour = rng.randint(6, 20)
    slots = Slots(rng, JA_WORDS, hour=str(hour), minute=f"{rng.randrange(0, 60, 5):02d}",
                  hour2=str(hour + 1), year=str(rng.randint(1910, 1995)))
    style = rng.choice(["polite", "plain"])
    title = fill_slots(rng.choice(["{line}で{town}へ", "電車の旅", "{station}から"]), slots)
    return title, ja_units(rng, JA_TRAINS, slots, style, 5, 14)


JA_SEASON_COMMON = [
    "{season}は、一年の中でも{adj}季節<だ>。",
    "{month}になると、{town}の{garden}では{flower}が見ごろを[迎える:pres]。",
    "{season}の味覚といえば、やはり{sfood}<だ>。",
    "この時期には、各地で{sevent}が[開かれる:pres]。",
    "{season}の{town}を歩くと、{season}ならではの景色に[出会う:pres]。",
    "{name}は毎年{season}になると、{hobby}を楽しむために{place}へ[出かける:pres]。",
    "昔から日本では、季節ごとの行事が大切に[される:te][くる:past]。",
    "季節の移り変わりを感じるたびに、一年の早さに[驚く:pres]。",
    "{flower}の花言葉を調べてみると、思いがけない意味が[ある:past]。",
    "衣替えをすると、部屋の中にも新しい季節が来たように[感じる:pres]。",
    "どの季節にもそれぞれの楽しみ方があり、それを探すのもまた面白い<い>。",
]


def ja_seasons(rng):
    slots = ja_season_slots(rng)
    lines = JA_SEASONS[slots["season"]]["lines"]
    units = JA_SEASON_COMMON[:3] + lines + JA_SEASON_COMMON[3:]
    style = rng.choice(["plain", "formal", "polite"])
    title = fill_slots(rng.choice(["{season}の便り", "{town}の{season}", "{season}を感じる"]), slots)
    return title, ja_units(rng, units, slots, style, 5, 13)


ELEMENTS = {"水素": "H", "酸素": "O", "炭素": "C", "窒素": "N", "鉄": "Fe", "銅": "Cu",
            "ナトリウム": "Na", "ヘリウム": "He", "金": "Au", "銀": "Ag"}
PLANETS = {"水星": "太陽に最も近いところを回る惑星", "金星": "明けの明星とも呼ばれる明るい惑星",
           "火星": "表面が赤っぽく見える惑星", "木星": "太陽系で最も大きな惑星",
           "土星": "大きな環を持つことで知られる惑星"}

JA_SCIENCE = [
    "{element}は、元素記号で{symbol}と[表される:pres]。",
    "{planet}は、{planet_fact}<だ>。",
    "地球は約365日かけて、太陽の周りを一周[する:pres]。",
    "光は真空中を、一秒間におよそ30万キロメートル[進む:pres]。",
    "植物は光合成によって、二酸化炭素と水からでんぷんなどの養分を[作る:pres]。",
    ("実験では、{n_beaker}個のビーカーに同じ量の水を入れ、温度の変化を{minutes}分ごとに[記録する:past]。",
     "その結果、{observation}ことが[分かる:past]。"),
    "音は、空気などの物質の振動として[伝わる:pres]。",
    "月は自ら光を出しているのではなく、太陽の光を[反射する:te][光る:prog]。",
    "仮説を確かめるには、条件を一つだけ変えて結果を比べることが大切<だ>。",
    "{name}の研究室では、{research}について[調べる:prog]。",
    "測定の際には、誤差が生じることも考えておく必要が[ある:pres]。",
    "氷が水に浮くのは、氷のほうが水よりも密度が小さいから<だ>。",
    "磁石の同じ極どうしは反発し合い、異なる極どうしは[引き合う:pres]。",
    "物質は温度によって、固体、液体、気体とその姿を[変える:pres]。",
    "水は、1気圧のもとではおよそ100度で[沸騰する:pres]。",
    "雲は、空気中の水蒸気が冷やされて、小さな水滴や氷の粒になったもの<だ>。",
    ("{name}は、{n_days}日間にわたってインゲンマメの成長を[観察する:past]。",
     "一日目に{len1}センチメートルだった芽は、最終日には{len2}センチメートルまで[伸びる:past]。"),
    "結果を記録したら、グラフに表して変化の様子を[確かめる:vol]。",
    "身近な現象にも、よく観察すると多くの不思議が[隠れる:prog]。",
]


def ja_science(rng):
    element = rng.choice(list(ELEMENTS))
    planet = rng.choice(list(PLANETS))
    slots = Slots(rng, JA_WORDS, element=element, symbol=ELEMENTS[element], planet=planet,
                  planet_fact=PLANETS[planet], len2=str(rng.randint(8, 30)))
    style = rng.choice(["formal", "formal", "polite", "plain"])
    title = rng.choice(["理科のノート", "身近な科学", "実験の記録", "自然のしくみ"])
    return title, ja_units(rng, JA_SCIENCE, slots, style, 5, 13)


PLANGS = {"Python": ["データ分析", "機械学習の研究", "業務の自動化"],
          "JavaScript": ["ウェブページの開発", "ブラウザで動くアプリの開発"],
          "C言語": ["組み込み機器の制御", "OSの開発"],
          "Rust": ["安全性が求められるシステムの開発", "高速なツールの開発"],
          "Go": ["サーバーの開発", "ネットワーク関係のツールの開発"],
          "SQL": ["データベースの操作", "売上データの集計"]}

JA_COMPUTERS = [
    "{name}は、仕事で毎日{device}を[使う:prog]。",
    "{plang}は、{purpose}によく使われるプログラミング言語<だ>。",
    "作業中のファイルはこまめに保存しないと、内容が消えてしまうおそれが[ある:pres]。",
    "パスワードは{n_chars}文字以上にして、ほかのサービスと同じものは使わないように[する:vol]。",
    "ソフトウェアの更新は、コンピュータを安全に使うために欠かせない<い>。",
    "{software}を起動して、新しいファイルを[作る:past]。",
    "コンピュータの内部では、すべての情報が0と1の組み合わせで[表される:pres]。",
    "1バイトは8ビットで、1キロバイトはおよそ1000バイト<だ>。",
    "{name}は、メモリを{n_gb}ギガバイト搭載した新しい{device}を[買う:past]。",
    ("エラーが出たときは、まず表示されたメッセージを落ち着いて[読む:vol]。",
     "検索してみると、同じ問題に悩んでいた人の記事がいくつも[見つかる:past]。"),
    "大切なデータは、別のディスクやクラウドにバックアップを取っておくと安心<だ>。",
    "通信が不安定なときは、ルーターを再起動すると直ることが[ある:pres]。",
    "週末に、{plang}で書いた小さなプログラムを[動かす:te][みる:past]。",
    "画面の文字が読みにくい場合は、設定から表示の倍率を変えるとよい<でしょう>。",
    "最近は、小学生のうちから{plang}を学ぶ人も[増える:prog]。",
    "{name2}のチームは、{plang}を使って{app}を[開発する:prog]。",
    "プログラムの動きを確かめるために、テストを書く習慣を[つける:vol]。",
    "キーボードのショートカットを覚えると、作業の効率が大きく[上がる:pres]。",
    "処理が遅い原因を調べたところ、同じ計算を何度も繰り返していたことが[分かる:past]。",
    "不要なファイルを整理したら、ディスクの空き容量が{n_gb2}ギガバイトほど[増える:past]。",
]


def ja_computers(rng):
    plang = rng.choice(list(PLANGS))
    slots = Slots(rng, JA_WORDS, plang=plang, purpose=rng.choice(PLANGS[plang]))
    style = rng.choice(["polite", "formal", "plain"])
    title = rng.choice(["パソコンのある暮らし", f"{plang}入門の前に", "コンピュータの基礎",
                        "IT便り"])
    return title, ja_units(rng, JA_COMPUTERS, slots, style, 5, 14)


JA_HISTORY = [
    "{town}は、{region}に位置する人口およそ{pop}人の{kind}<だ>。",
    "{town}という名前は、{origin}に由来すると[言われる:prog]。",
    "{kind}の歴史は古く、{era}にはすでに小さな集落があったと[言われる:prog]。",
    "かつての{town}は、{industry}で[栄える:past]。",
    "古い地図を見ると、今の{place}のあたりがかつて田んぼだったことが[分かる:pres]。",
    ("{year_a}年に鉄道が開通すると、{kind}の様子は大きく[変わる:past]。",
     "駅の周りには商店や旅館が次々と建ち、人の行き来も[増える:past]。"),
    ("{year_b}年の大水害では、川沿いの多くの家が被害を[受ける:past]。",
     "この経験から、{kind}の人々は力を合わせて新しい堤防を[築く:past]。"),
    "{year_c}年には隣の村と合併し、現在の{town}が[誕生する:past]。",
    "昭和の中ごろになると、若い世代が都市へ移り住み、人口は少しずつ[減る:te][いく:past]。",
    ("{kind}の中心には、当時の{building}が今も[残る:prog]。",
     "この{building}は{kind}の文化財に指定され、大切に[守られる:prog]。"),
    "郷土資料館には、{artifact}や{artifact2}などが[展示される:prog]。",
    "毎年{month}には、{kind}の歴史を伝える{hist_event}が[開かれる:pres]。",
    "{kind}の小学校では、地域の歴史を学ぶ授業が[行われる:prog]。",
    "{name}は、祖父から聞いた{town}の昔話を今でもよく[覚える:prog]。",
    "近年は、古い町並みを生かした観光にも力を[入れる:prog]。",
    "{kind}の人々にとって、{kind}を流れる川は昔から暮らしを支える大切な存在<だ>。",
]


def ja_history(rng):
    a = rng.randint(1889, 1925)
    b = rng.randint(a + 8, 1962)
    town = rng.choice(JA_WORDS["town"])
    kind = town[-1]
    pop = rng.randrange(*{"村": (1500, 9000), "町": (6000, 40000)}.get(kind, (40000, 250000)), 500)
    slots = Slots(rng, JA_WORDS, year_a=str(a), year_b=str(b), year_c=str(rng.randint(b + 1, 1975)),
                  month=f"{rng.randint(1, 12)}月", town=town, kind=kind, pop=f"{pop:,}")
    style = rng.choice(["formal", "plain", "polite"])
    title = fill_slots(rng.choice(["{town}の歴史", "{town}のあゆみ", "ふるさと{town}"]), slots)
    return title, ja_units(rng, JA_HISTORY, slots, style, 5, 14)


JA_LETTER_BODY = [
    ("先日は、おいしい{gift}をお送りいただき、本当にありがとうございました。",
     "家族みんなで、ありがたくいただきました。"),
    "こちらは、おかげさまで皆元気に過ごしております。",
    "{given}も今年で{age}歳になり、毎日元気に学校へ通っています。",
    "最近は{hobby}を始めて、週末が楽しみになりました。",
    "先月は家族で{town}を訪れ、{place}をゆっくり見て回りました。",
    "こちらの{place2}も改装され、以前よりずいぶん明るくなりました。",
    "{sevent}のときに撮った写真を同封しますので、どうぞご覧ください。",
    "{month}には{town}で{event}がありますので、よろしければぜひお越しください。",
    "久しぶりにお会いできる日を、心より楽しみにしております。",
]
JA_LETTER_END = [
    "季節の変わり目ですので、どうぞお体を大切になさってください。",
    "取り急ぎ、近況のご報告まで。",
    "皆様のご健康を、心よりお祈り申し上げます。",
]


def ja_letter(rng):
    rcpt, sender = rng.sample(FAMILY, 2)
    slots = ja_season_slots(rng, rcpt=rcpt + "様", sender=sender + rng.choice(GIVEN))
    body = ja_units(rng, JA_LETTER_BODY, slots, "polite", 3, 8)
    opening = fill_slots("拝啓　{greeting}、{rcpt}はいかがお過ごしでしょうか。", slots)
    closing = "".join(rng.sample(JA_LETTER_END, rng.randint(1, 2))) + "\n敬具"
    signature = f"{slots['date']}\n{slots['sender']}"
    return fill_slots("{rcpt}への手紙", slots), [opening] + body + [closing, signature]


JA_DIARY = [
    "今日は{wake}時に[起きる:past]。",
    "朝ごはんは{food}と{drink}<だった>。",
    "午前中は{place}で{act_te}[過ごす:past]。",
    ("昼過ぎに{name}から電話があり、駅前の{shop}で会うことに[なる:past]。",
     "久しぶりに会った{name}は、少し髪が[伸びる:progp]。"),
    "帰り道、塀の上で猫が気持ちよさそうに[寝る:progp]。",
    ("夕方から急に雨が[降る:te][くる:past]。",
     "傘を持っていなかったので、{shop2}の軒先でしばらく雨宿りを[する:past]。"),
    "帰りに買った{snack}は、思っていたよりずっとおいしかった<い>。",
    "公園で{animal}を見かけて、思わず写真を[撮る:past]。",
    "{subject}の宿題がなかなか終わらず、夜遅くまで机に[向かう:past]。",
    "{name2}に借りていた{book}を、やっと[返す:past]。",
    "家に帰ってから、{food2}を作って家族と[食べる:past]。",
    "最近は、{hobby}にすっかり夢中に[なる:prog]。",
    "{given}が描いた絵が、{place2}に[飾られる:prog]。",
    "夜は{book2}を読んで、{sleep}時ごろに[寝る:past]。",
    "明日は{event}なので、早めに寝ようと[思う:pres]。",
    "寝る前に、明日やることを手帳に[書き出す:past]。",
    "なんだか{feel}一日<だった>。",
]
JA_WEEKDAY_SHORT = "月火水木金土日"
JA_DIARY_WX = "晴れ 曇り 雨 晴れ時々曇り 曇りのち雨 雪".split()


def ja_diary(rng):
    style = "polite" if rng.random() < 0.2 else "plain"
    start = datetime.date(rng.randint(2018, 2025), 1, 1) + datetime.timedelta(rng.randrange(365))
    entries = []
    for k, chosen in enumerate(deal_units(rng, JA_DIARY, rng.randint(1, 3), 4, 8)):
        slots = Slots(rng, JA_WORDS)
        day = start + datetime.timedelta(k)
        head = (f"{day.month}月{day.day}日（{JA_WEEKDAY_SHORT[day.weekday()]}）"
                f"{rng.choice(JA_DIARY_WX[:-1] if 3 < day.month < 12 else JA_DIARY_WX)}")
        body = "".join(ja_render(p, slots, style) for u in chosen
                       for p in (u if isinstance(u, tuple) else (u,)))
        entries += [head, body]
    return "日記", entries


JA_NEWS = {
    "event": [
        "{town}の{venue}で{date}、{sevent}が[開かれる:past]。",
        "会場には朝から大勢の人が訪れ、約{visitors}人が[参加する:past]。",
        "実行委員会によると、今年は{reason}こともあり、来場者は昨年より{n}割ほど増えたという。",
        "実行委員長の{fullname}さんは「{quote}」と[話す:progp]。",
        "{town}の観光協会は、次回も臨時のバスを運行する予定<だ>。",
    ],
    "incident": [
        "{town}の{street}で{date}午前{hour}時ごろ、{incident}。",
        "この影響でけがをした人は[いる:pneg]。",
        "{org}が詳しい原因を[調べる:prog]。",
        "近くに住む{fullname}さんは「大きな音がして驚いた」と[話す:past]。",
    ],
    "policy": [
        "{town}は{date}、{policy}と[発表する:past]。",
        "総事業費は約{money}万円で、{year}年度中の完成を[目指す:pres]。",
        "住民からは、以前から改善を求める声が[寄せられる:progp]。",
        "同じような取り組みは、近隣の{town2}にも[広がる:prog]。",
    ],
    "shop": [
        "{town}の{food_shop}で、今年も{crop}の販売が[始まる:past]。",
        "店主の{fullname}さんは「{quote2}」と笑顔を[見せる:past]。",
        "販売は{month}末まで続く予定で、週末には行列ができることもあるという。",
    ],
    "sport": [
        "{sport}の地区大会で、{town}の{school}が初優勝を[果たす:past]。",
        "決勝では{town2}のチームと対戦し、{s1}対{s2}で接戦を[制する:past]。",
        "主将の{fullname}さんは「仲間を信じて最後まで戦えた」と[振り返る:past]。",
        "チームは来月、県大会に出場する予定<だ>。",
    ],
}
JA_INCIDENTS = [("水道管が破裂し、周辺の道路が一時通行止めになった", "市の水道局"),
                ("停電が発生し、約{visitors}世帯で一時電気が使えなくなった", "電力会社"),
                ("倒木が道路をふさぎ、路線バスが一時運休した", "市の道路課")]


def ja_news(rng):
    style = rng.choice(["plain", "plain", "formal"])
    items = []
    for kind in rng.sample(list(JA_NEWS), rng.randint(1, 4)):
        incident, org = rng.choice(JA_INCIDENTS)
        s1 = rng.randint(2, 7)
        slots = ja_season_slots(rng, incident=incident, org=org, s1=str(s1),
                                s2=str(s1 - rng.randint(1, 2)), year=str(rng.randint(2026, 2030)))
        units = JA_NEWS[kind]
        chosen = units[:1] + pick_units(rng, units[1:], 2, len(units) - 1)
        items.append("■" + "".join(ja_render(u, slots, style) for u in chosen))
    return rng.choice(["地域のニュース", "今週の話題", "まちの出来事"]), items


JA_QA = [
    ("{plant}の水やりは、どのくらいの頻度がよいですか。",
     "土の表面が乾いたのを確かめてから、鉢の底から水が流れ出るくらいたっぷりと与えてください。"
     "{season}は土の乾き方が変わるので、朝のうちに様子を見るとよいでしょう。"),
    ("{town}の図書館では、本を何冊まで借りられますか。",
     "一人{n_books}冊まで、{n_weeks}週間借りることができます。"
     "予約した本は、準備ができるとメールでお知らせします。"),
    ("{station}から{place}までは、どうやって行けばよいですか。",
     "{station}の北口を出て、大通りをまっすぐ{walk}分ほど歩くと、右手に見えてきます。"
     "雨の日は、駅前の{n}番乗り場から出ているバスを使うと便利です。"),
    ("パソコンの動作が急に遅くなりました。どうすればよいですか。",
     "まずは、使っていないアプリを閉じてから再起動してみてください。"
     "それでも改善しない場合は、ディスクの空き容量が足りているか確認しましょう。"),
    ("ご飯を炊くときの水の量に、目安はありますか。",
     "一般的には、お米一合に対して水はおよそ200ミリリットルが目安です。"
     "新米は水分を多く含んでいるので、少し控えめにするとよいでしょう。"),
    ("雨の日でも楽しめる場所を教えてください。",
     "{town}の{indoor}がおすすめです。館内には休憩できる場所もあるので、一日ゆっくり過ごせます。"),
    ("子どもがなかなか野菜を食べてくれません。何か工夫はありますか。",
     "一緒に買い物に行ったり、料理を手伝ってもらったりすると、興味を持ちやすくなります。"
     "にんじんやピーマンを細かく刻んで、ハンバーグに混ぜるのも一つの方法です。"),
    ("朝早く起きるコツはありますか。",
     "毎日同じ時刻に寝て、同じ時刻に起きることが一番の近道です。"
     "起きたらすぐにカーテンを開けて、朝の光を浴びてみてください。"),
    ("ごみの分別がよく分かりません。",
     "{town}では、燃えるごみは毎週{weekday}と{weekday2}に出すことができます。"
     "分け方に迷ったときは、市のホームページにある一覧表を参考にしてください。"),
    ("プログラミングを独学で始めたいのですが、何から手をつければよいですか。",
     "まずは{plang}のように、情報の多い言語を一つ選ぶのがおすすめです。"
     "小さなプログラムを毎日少しずつ書くことで、自然と力がついていきます。"),
    ("電車の中に忘れ物をしてしまいました。",
     "すぐに近くの駅の窓口で、乗った列車の時刻と忘れた物の特徴を伝えてください。"
     "見つかった場合は、{station}の忘れ物センターで受け取ることができます。"),
    ("風邪をひかないために、気をつけることはありますか。",
     "外から帰ったら手洗いとうがいをし、十分な睡眠をとることが大切です。"
     "空気が乾燥する時期は、部屋の湿度にも気を配りましょう。"),
    ("{event}の会場に駐車場はありますか。",
     "会場には駐車場がありませんので、公共の交通機関をご利用ください。"
     "当日は{station}から臨時のバスが運行されます。"),
    ("星を観察するのに、よい時間帯はいつですか。",
     "月が出ていない夜の、{sleep}時以降がおすすめです。"
     "街の明かりが少ない場所を選ぶと、暗い星まで見えるようになります。"),
]


def ja_qa(rng):
    slots = ja_season_slots(rng, plang=rng.choice(list(PLANGS)))
    pairs = rng.sample(JA_QA, rng.randint(2, 6))
    paragraphs = [fill_slots(f"Q. {q}\nA. {a}", slots) for q, a in pairs]
    title = fill_slots(rng.choice(["よくある質問", "{town}くらしのQ&A", "教えて！暮らしの疑問"]), slots)
    return title, paragraphs


JA_TOPICS = [(ja_weather, 3), (ja_cooking, 3), (ja_trains, 3), (ja_seasons, 3),
             (ja_science, 3), (ja_computers, 3), (ja_history, 3), (ja_letter, 2),
             (ja_diary, 3), (ja_news, 3), (ja_qa, 2)]


def ja_article(rng: random.Random, titled: bool) -> str:
    title, paragraphs = weighted(rng, JA_TOPICS)(rng)
    return "\n".join(([title] if titled else []) + paragraphs)


def weighted(rng: random.Random, pairs):
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


# ---------------------------------------------------------------------------
# English
# ---------------------------------------------------------------------------

EN_PEOPLE = [("Emma", "f"), ("Liam", "m"), ("Noah", "m"), ("Olivia", "f"), ("Hana", "f"),
             ("Kenji", "m"), ("Priya", "f"), ("Mateo", "m"), ("Aiko", "f"), ("Tom", "m"),
             ("Sara", "f"), ("David", "m"), ("Yuki", "f"), ("Lena", "f"), ("Omar", "m"),
             ("Grace", "f"), ("Felix", "m"), ("Nora", "f"), ("Arjun", "m"), ("Mei", "f"),
             ("Ruth", "f"), ("Samuel", "m"), ("Chloe", "f"), ("Daniel", "m")]
EN_SURNAMES = ("Carter Okada Singh Moreno Fischer Hughes Tanaka Novak Bennett Alvarez Lindqvist "
               "Murphy Osei Kowalski Park Ferreira Quinn Haddad").split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()

EN_WORDS = {
    "friend": [p for p, _ in EN_PEOPLE],
    "fullname": lambda r: f"{r.choice(EN_PEOPLE)[0]} {r.choice(EN_SURNAMES)}",
    "town": ["Alderbrook", "Willow Bend", "Stonehaven", "Marlow Crossing", "Fernhill",
         "Brackenford", "Ashcombe", "Larkspur", "Eastwater", "Pinecrest", "Kestrel Ford",
         "Thornby", "Saltmarsh", "Greywell"],
    "outdoor": ["the riverside path", "the old market square", "the harbor", "the hill park",
                "the botanical garden", "the station square", "the castle ruins", "the beach"],
    "hall": ["the town hall", "the community center", "the library", "the old school gym"],
    "place": ["the library", "the riverside path", "the old market square", "the town hall",
              "the harbor", "the botanical garden", "the community center", "the station square",
              "the hill park", "the science museum", "the public pool", "the art gallery"],
    "shop": ["bakery", "bookshop", "flower stall", "corner cafe", "hardware store",
             "fish market", "tea shop", "bicycle repair shop", "secondhand bookstore"],
    "drink": ["green tea", "black coffee", "hot cocoa", "lemon water", "ginger tea", "milk"],
    "snack": ["warm pretzels", "rice crackers", "apple turnovers", "roasted chestnuts",
              "sweet bean buns", "oat cookies"],
    "meal": ["vegetable soup", "grilled fish", "a bowl of noodles", "fried rice", "a cheese omelet",
             "pancakes", "rice with miso soup", "a tomato salad", "a vegetable curry"],
    "animal": ["a heron", "a stray cat", "two squirrels", "a family of ducks", "a red fox",
               "a tortoise", "a flock of sparrows", "a woodpecker"],
    "hobby": ["sketching", "birdwatching", "baking bread", "learning the guitar", "running",
              "photography", "knitting", "chess", "gardening", "writing short poems"],
    "book": ["a mystery novel", "a field guide to birds", "a history of the railways",
             "a cookbook", "a collection of short stories", "a book about the stars",
             "a travel diary", "a comic about space pirates"],
    "subject": ["math", "history", "biology", "geography", "music", "chemistry", "art"],
    "event": ["the summer fair", "the lantern festival", "the harvest market", "the school play",
              "the spring concert", "the river cleanup day", "the charity run",
              "the flea market", "the kite festival"],
    "sport": ["soccer", "baseball", "hockey", "softball", "water polo"],
    "device": ["laptop", "tablet", "desktop computer", "phone"],
    "software": ["spreadsheet", "text editor", "web browser", "photo editor", "note-taking app"],
    "app": ["an inventory tracker", "a library booking system", "a weather data collector",
            "a timetable app for the school", "a tool that sorts customer emails"],
    "station": ["Central", "Harbor Road", "Mill Lane", "North Gate", "Riverside", "Park Street",
                "Elm Hill", "University", "Old Town", "Hillcrest", "Castle Gate", "Westfield"],
    "line": ["Coastal", "Green Valley", "Circle", "Northern", "Riverside", "Orchard"],
    "train_kind": ["local train", "express", "rapid service", "night train"],
    "scenery": ["a long stretch of blue sea", "rice fields shining in the sun",
                "mountains fading into the haze", "an old stone bridge",
                "orchards heavy with fruit", "a lake as flat as glass", "rows of tea bushes"],
    "direction": ["south", "southwest", "west", "northwest", "north", "northeast", "east"],
    "wx_noun": ["storm", "heat wave", "cold snap", "flood", "snowfall"],
    "forecast": ["sunny with a few clouds", "cloudy with showers later",
                 "bright after morning rain", "dry and mild", "overcast but calm"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "plant": ["tomatoes", "basil", "mint", "sunflowers", "strawberries", "beans", "lettuce"],
    "research": ["how clouds form", "soil bacteria", "the roots of young trees",
                 "new battery materials", "water quality in the river", "how birds migrate",
                 "why metals rust"],
    "observation": ["the water in the sunny spot warmed up fastest",
                    "salt water took longer to freeze than fresh water",
                    "the jar wrapped in black paper got the warmest",
                    "water evaporated faster where the air moved",
                    "sugar dissolved more quickly in warm water"],
    "feel": ["busy", "quiet", "strange", "happy", "tiring", "lovely", "ordinary but good"],
    "gift": ["the jar of honey", "the box of apples", "the tea", "the handmade scarf",
             "the photo album", "the seeds"],
    "policy": ["renovate the station square", "extend the riverside path by two kilometers",
               "add evening bus services", "replace the playground equipment in the hill park",
               "install solar panels on the school roofs"],
    "quote": ["We were lucky with the weather this year", "It felt like the whole town came out",
              "The volunteers did an amazing job", "Next year we hope to make it even bigger"],
    "building": ["the old mill", "the stone bridge", "the clock tower", "the former post office",
                 "the wooden schoolhouse", "the lighthouse"],
    "industry": ["wool weaving", "salt making", "timber", "fishing", "pottery", "papermaking"],
    "origin": ["the alder trees that once lined the river", "a shallow crossing on the old road",
               "a family of millers who settled there", "the hawks that nest on the cliffs"],
    "artifact": ["old farming tools", "hand-drawn maps", "festival costumes", "faded photographs",
                 "pieces of pottery"],
    "hour": number(6, 11), "minutes": number(5, 45, 5), "pct": number(10, 90, 10),
    "n": number(2, 9), "interval": number(5, 15, 5), "ride": number(15, 70, 5),
    "n_years": number(10, 50, 5), "n_days": number(3, 5),
    "pop": number(4000, 60000, 500, comma=True), "money": number(2, 40), "jars": number(3, 6),
    "walk": number(3, 15),
    "visitors": number(300, 9000, 100, comma=True), "passengers": number(3000, 90000, 1000, comma=True),
    "n_gb": lambda r: r.choice(["8", "16", "32", "64"]), "n_chars": number(12, 16),
    "age": number(5, 12), "n_books": number(5, 15), "delay": number(5, 25, 5),
}

EN_SEASONS = {
    "spring": dict(months=(3, 4, 5), temp=(12, 21), flower=["cherry blossoms", "tulips", "daffodils"],
                   sfood=["fresh strawberries", "asparagus", "new potatoes"],
                   sky=["soft sunshine and a pale blue sky", "a hazy, mild morning"],
                   wet_sky=["a gentle spring drizzle", "steady rain and low clouds"],
                   sevent=["the spring fair", "the blossom walk", "the seed swap"],
                   wx=["late frost", "spring storm"],
                   lines=["The days are getting longer, and the evenings smell of cut grass.",
                          "Farmers are out early, preparing the fields for planting.",
                          "Birds have started building nests under the bridge."]),
    "summer": dict(months=(6, 7, 8), temp=(26, 34), flower=["sunflowers", "roses", "lavender"],
                   sfood=["watermelon", "sweet corn", "cold noodles"],
                   sky=["bright sunshine and heavy, humid air", "a cloudless, blazing sky"],
                   wet_sky=["the rumble of thunder and heavy showers", "warm, pouring rain"],
                   sevent=["the summer fair", "the lantern festival", "the kite festival"],
                   wx=["heat wave", "thunderstorm"],
                   lines=["The heat makes the afternoons slow, and most people stay in the shade.",
                          "In the evening, children run to the river with their nets.",
                          "Cicadas sing from every tree until the sun goes down."]),
    "autumn": dict(months=(9, 10, 11), temp=(14, 22), flower=["cosmos", "chrysanthemums", "asters"],
                   sfood=["roasted chestnuts", "pumpkin soup", "fresh pears"],
                   sky=["crisp air and a clear sky", "a thin mist over the fields"],
                   wet_sky=["cold, blowing rain", "a gray sky and steady drizzle"],
                   sevent=["the harvest market", "the apple festival", "the lantern walk"],
                   wx=["gale", "autumn storm"],
                   lines=["The maples on the hill turn red one branch at a time.",
                          "Mornings are cool enough now for a sweater.",
                          "Apple crates are stacked high outside the farm shops."]),
    "winter": dict(months=(12, 1, 2), temp=(1, 8), flower=["camellias", "snowdrops", "winter jasmine"],
                   sfood=["hot stew", "mandarin oranges", "baked potatoes"],
                   sky=["a hard frost on every rooftop", "a bright, bitterly cold morning"],
                   wet_sky=["a light dusting of snow", "sleet rattling against the windows"],
                   sevent=["the winter market", "the midwinter concert", "the ice-skating night"],
                   wx=["cold snap", "snowfall"],
                   lines=["The pond in the park froze for the first time this year.",
                          "Windows glow warmly by four in the afternoon.",
                          "Everyone walks a little faster, scarves pulled up to their noses."]),
}


def en_slots(rng: random.Random, wet: bool = False, **fixed) -> Slots:
    """Per-document slots: one main person (with pronouns) and one season."""
    name, sex = rng.choice(EN_PEOPLE)
    he, his, him = ("she", "her", "her") if sex == "f" else ("he", "his", "him")
    season = rng.choice(list(EN_SEASONS))
    s = EN_SEASONS[season]
    month = rng.choice(s["months"])
    hi = rng.randint(*s["temp"])
    values = dict(name=name, he=he, He=he.capitalize(), his=his, His=his.capitalize(), him=him,
                  season=season, month=MONTHS[month - 1],
                  date=f"{MONTHS[month - 1]} {rng.randint(1, 28)}", hi=str(hi),
                  lo=str(hi - rng.randint(5, 10)), flower=rng.choice(s["flower"]),
                  sfood=rng.choice(s["sfood"]), sky=rng.choice(s["wet_sky" if wet else "sky"]),
                  sevent=rng.choice(s["sevent"]), wx_noun=rng.choice(s["wx"]),
                  friend=rng.choice([p for p, _ in EN_PEOPLE if p != name]))
    values.update(fixed)
    return Slots(rng, EN_WORDS, **values)


AN_RE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])(?!uni|use|one|Uni|Use|One)")


def en_render(template: str, slots: Slots) -> str:
    text = fill_slots(template, slots)
    text = AN_RE.sub(lambda m: m[1] + "n ", text)
    return text[0].upper() + text[1:]


def en_units(rng, units, slots, lo=4, hi=13) -> list[str]:
    chosen = pick_units(rng, units, lo, hi)
    return [" ".join(en_render(p, slots) for u in run for p in (u if isinstance(u, tuple) else (u,)))
            for run in split_paragraphs(rng, chosen)]


EN_WEATHER = [
    "On {date}, {town} woke up to {sky}.",
    "The high is expected to reach {hi} degrees, with a low of {lo} overnight.",
    "Forecasters give a {pct} percent chance of rain in the afternoon.",
    "A light wind from the {direction} should keep the air feeling fresh.",
    "{name} said {he} could not remember a {wx_noun} like this in the last {n_years} years.",
    "Tomorrow looks {forecast}, which is good news for anyone planning a trip to {place2}.",
    "Temperatures this week are running close to the seasonal average.",
    "Whatever the weather, the {season} light over the rooftops is worth a look.",
]
EN_WEATHER_WET = [
    "If you are heading out, do not forget an umbrella.",
    "Drivers on the hill roads are advised to slow down where water collects on the road.",
    "The river is running high, so the lower footpath has been closed for now.",
    "By late afternoon the rain should ease, leaving puddles in {outdoor2} that reflect a clearing sky.",
    "Farmers near {town} have been watching the sky closely, hoping for a few dry days.",
]
EN_WEATHER_FAIR = [
    "The air has been dry for several days, so people are asked to be careful with open flames.",
    "It is a good day to hang the washing outside before noon.",
    "By evening the sky should stay clear, and the stars may be visible over {outdoor}.",
    "The weekend should bring calm conditions as high pressure settles over the region.",
    "{outdoor2} was busy with walkers all afternoon.",
]


def en_weather(rng):
    wet = rng.random() < 0.4
    slots = en_slots(rng, wet=wet, pct=str(rng.randrange(50, 91, 10) if wet else rng.randrange(0, 31, 10)))
    units = EN_WEATHER[:3] + (EN_WEATHER_WET if wet else EN_WEATHER_FAIR) + EN_WEATHER[3:]
    title = fill_slots(rng.choice(["Weather for {town}", "{date}: today's sky", "Local forecast"]), slots)
    return title, en_units(rng, units, slots, 5, 12)


EN_RECIPES = {  # dish: (main ingredient, other ingredients, seasonings)
    "vegetable curry": ("potatoes", "carrots,onions,chickpeas,spinach", "curry powder,salt,cumin"),
    "chicken and rice soup": ("chicken", "rice,carrots,celery,onions", "salt,black pepper,thyme"),
    "tomato pasta": ("tomatoes", "garlic,onions,basil,pasta", "olive oil,salt,black pepper"),
    "miso soup": ("tofu", "seaweed,spring onions,mushrooms", "miso paste,fish stock"),
    "fried rice": ("rice", "eggs,spring onions,peas,carrots", "soy sauce,sesame oil,white pepper"),
    "potato salad": ("potatoes", "cucumber,eggs,carrots,onions", "mayonnaise,vinegar,salt"),
    "lentil stew": ("lentils", "carrots,onions,celery,tomatoes", "paprika,salt,bay leaves"),
    "baked salmon": ("salmon", "lemons,potatoes,green beans", "butter,dill,salt"),
    "vegetable stir-fry": ("cabbage", "peppers,carrots,bean sprouts,mushrooms", "soy sauce,ginger,garlic"),
}

EN_COOKING = [
    "Today we are making {dish}, a simple dish that suits a busy weeknight.",
    "You will need {ing}, {ing2}, {ing3}, and a little {seas}.",
    "Prepare the {ing} first, rinsing, trimming and cutting as needed.",
    "Heat a spoonful of oil in a wide pan over medium heat.",
    "Add the {ing} and cook for about {minutes} minutes, stirring now and then.",
    "Next, add the {ing2} and {ing3}, then season with {seas} and {seas2}.",
    "Cover the pan and let everything simmer gently for {minutes2} minutes.",
    "Taste as you go, and adjust the seasoning before serving.",
    "Serve it hot, with a few chopped herbs on top.",
    "{name} learned this recipe from {his} grandmother and still makes it every {weekday}.",
    "Leftovers keep well in the fridge for up to {n_days} days.",
    "The trick is not to rush the first step; give the {ing} time to take on some color.",
    "A cup of {drink} goes nicely with this meal.",
    "Children can help by washing the vegetables and setting the table.",
    "Once you are comfortable with the basic version, try adding whatever vegetables are in season.",
    "It also packs well for lunch the next day.",
]


def en_cooking(rng):
    dish = rng.choice(list(EN_RECIPES))
    first, rest, seas = EN_RECIPES[dish]
    i2, i3 = rng.sample(rest.split(","), 2)
    s1, s2 = rng.sample(seas.split(","), 2)
    slots = en_slots(rng, dish=dish, ing=first, ing2=i2, ing3=i3, seas=s1, seas2=s2,
                     minutes2=str(rng.randrange(10, 35, 5)))
    return rng.choice([f"How to make {dish}", f"Weeknight {dish}", f"Recipe: {dish}"]), \
        en_units(rng, EN_COOKING, slots, 6, 14)


EN_TRAINS = [
    "The {line} Line runs from {station} to {station2} in about {ride} minutes.",
    "At {station}, change to the {line2} Line and get off at the {nth} stop.",
    "During the morning rush, the platforms at {station} are packed with commuters.",
    ("{name} caught the {time} {train_kind} and found a seat by the window.",
     "From the window {he} could see {scenery}."),
    "The train was held for {delay} minutes because of a signal check near {station2}.",
    "The line opened in {year} and now carries around {passengers} passengers a day.",
    "Tickets can be bought from the machines, or you can simply tap a travel card at the gate.",
    "Outside {station} station, a row of small stalls sells {snack} and hot drinks.",
    "When the train finally pulled into {station2}, it was already past {hour2} o'clock.",
    "A conductor walked through the carriage, checking tickets and answering questions.",
    "The next stop is {station2}; please mind the gap when leaving the train.",
    "On the way back, {name} decided to take the bus instead.",
    "Regular riders say the quiet carriage at the rear is the best place to read.",
    "A new timetable starts next month, adding {n} extra trains on weekday evenings.",
    "{name}'s friend {friend} keeps a notebook of every station the two of them have visited.",
]


def en_trains(rng):
    hour = rng.randint(6, 10)
    slots = en_slots(rng, nth=rng.choice(["second", "third", "fourth", "fifth"]),
                     time=f"{hour}:{rng.randrange(0, 60, 5):02d}",
                     year=str(rng.randint(1890, 1990)), hour2=str(hour + 1))
    title = fill_slots(rng.choice(["Riding the {line} Line", "A day on the train",
                                   "Getting around {town}"]), slots)
    return title, en_units(rng, EN_TRAINS, slots, 5, 13)


EN_SEASON_COMMON = [
    "In {town}, {season} arrives quietly and then all at once.",
    "By {month}, the {flower} in {outdoor} are at their best.",
    "For many people, the taste of {season} is {sfood}.",
    "Each year {sevent} marks the middle of the season.",
    "On {season} weekends, {name} always makes time for {hobby}.",
    "Old calendars divided the year into far more than four seasons, each with its own name.",
    "Walking the same route every day is the best way to notice the small changes.",
    "Shops change their windows, and the smell of the market changes with them.",
    "Every season has its own work and its own rest.",
    "Before long, people will be packing away one set of clothes and taking out another.",
]


def en_seasons(rng):
    slots = en_slots(rng)
    units = EN_SEASON_COMMON[:3] + EN_SEASONS[slots["season"]]["lines"] + EN_SEASON_COMMON[3:]
    title = fill_slots(rng.choice(["Notes on {season}", "{season} in {town}", "The turning year"]), slots)
    return title[0].upper() + title[1:], en_units(rng, units, slots, 5, 12)


EN_SCIENCE = [
    "Water boils at about 100 degrees Celsius at sea level, and at"
    " a lower temperature high in the mountains.",
    "Light travels roughly 300,000 kilometers every second.",
    "The Earth takes a little over 365 days to travel once around the Sun.",
    "Plants use sunlight to turn carbon dioxide and water into sugars, releasing oxygen as they do.",
    ("In the experiment, we filled {jars} jars with the same amount of water"
     " and recorded the temperature every {interval} minutes.",
     "The results showed that {observation}."),
    "Sound moves as a vibration through air, water, or solid materials.",
    "The Moon does not make its own light; it reflects light from the Sun.",
    "A fair test changes only one condition at a time and keeps everything else the same.",
    "At {name}'s lab, the team is studying {research}.",
    "Every measurement carries some error, so it is good practice to repeat it several times.",
    "Ice floats because it is less dense than the liquid water around it.",
    "Like poles of two magnets push each other away, while opposite poles pull together.",
    "Clouds form when water vapor cools and condenses into tiny droplets or ice crystals.",
    ("Over {n_days} weeks, {name} measured a bean seedling every morning.",
     "It grew from {len1} centimeters to {len2} centimeters, with the fastest growth in the second week."),
    "Plotting the data on a simple graph made the pattern much easier to see.",
    "Good questions often start with something ordinary that nobody has looked at closely.",
]


def en_science(rng):
    slots = en_slots(rng, len1=str(rng.randint(2, 4)), len2=str(rng.randint(9, 30)))
    title = rng.choice(["Science notebook", "How things work", "Lab notes", "Everyday physics"])
    return title, en_units(rng, EN_SCIENCE, slots, 5, 12)


EN_COMPUTERS = [
    "{name} uses a {device} at work every day.",
    "{plang} is widely used for {purpose}.",
    "If you do not save your work often, a crash can wipe out an hour of effort.",
    "Choose a password at least {n_chars} characters long, and never reuse it for another service.",
    "Software updates matter because they often fix security problems.",
    "{name} opened the {software} and started a new file.",
    "Inside a computer, all information is stored as patterns of zeros and ones.",
    "One byte is eight bits, and a kilobyte is about a thousand bytes.",
    "Last month {name} bought a new {device} with {n_gb} gigabytes of memory.",
    ("When an error appears, read the message slowly before doing anything else.",
     "A quick search usually turns up someone who has hit the same problem."),
    "Keep a backup of important files on a separate disk or in cloud storage.",
    "If the network is slow, restarting the router fixes it surprisingly often.",
    "Over the weekend, {name} wrote a small {plang} program to rename a folder of photos.",
    "Writing tests takes time at first, but it saves far more time later.",
    "{friend}'s team is building {app} in {plang}.",
    "Learning a few keyboard shortcuts can make everyday work noticeably faster.",
    "The program was slow because it repeated the same calculation inside a loop.",
]
EN_PLANGS = {"Python": ["data analysis", "scripting and automation", "machine learning research"],
             "JavaScript": ["building web pages", "interactive browser apps"],
             "C": ["programming small devices", "operating system work"],
             "Rust": ["tools where speed and safety both matter"],
             "Go": ["network services", "command-line tools"],
             "SQL": ["querying databases", "reporting on sales data"]}


def en_computers(rng):
    plang = rng.choice(list(EN_PLANGS))
    slots = en_slots(rng, plang=plang, purpose=rng.choice(EN_PLANGS[plang]))
    title = rng.choice(["Computers in daily life", f"Notes on {plang}", "Tech tips", "Digital basics"])
    return title, en_units(rng, EN_COMPUTERS, slots, 5, 13)


EN_HISTORY = [
    "{town} is a town of about {pop} people, built where two valleys meet.",
    "Its name is said to come from {origin}.",
    "Records suggest that a small settlement stood here more than four hundred years ago.",
    "For generations the town lived on {industry}.",
    ("When the railway arrived in {year_a}, the town changed almost overnight.",
     "Shops and inns sprang up around the new station, and the population doubled within twenty years."),
    ("In {year_b}, a great flood swept through the lower streets.",
     "Afterward, the townspeople worked together to build a higher embankment along the river."),
    "In {year_c}, {town} merged with a neighboring village to form the town we know today.",
    "As young people moved to the cities, the population slowly declined.",
    "{building} still stands at the center of town and is now protected as a historic site.",
    "The local museum displays {artifact} and {artifact2} from that era.",
    "Every year, {event} brings former residents back home.",
    "{name}'s grandfather still tells stories about the old ferry that crossed the river.",
    "In recent years, the town has begun to attract visitors who come for its quiet streets.",
    "Schoolchildren study the town's history by interviewing their oldest neighbors.",
]


def en_history(rng):
    a = rng.randint(1860, 1915)
    b = rng.randint(a + 10, 1950)
    slots = en_slots(rng, year_a=str(a), year_b=str(b), year_c=str(rng.randint(b + 1, 1975)))
    title = fill_slots(rng.choice(["A short history of {town}", "{town} through the years",
                                   "How {town} grew"]), slots)
    return title, en_units(rng, EN_HISTORY, slots, 5, 12)


EN_LETTER = [
    "Thank you so much for {gift}, which arrived safely on {weekday}.",
    "We are all well here, though the {season} has been busier than usual.",
    "{given} turned {age} last month and talks about nothing but {hobby2}.",
    "I have finally taken up {hobby}, and I am enjoying it more than I expected.",
    "Last week we visited {town} and spent a slow afternoon at {place}.",
    "The {shop} on our street has changed owners, but it is just as busy as before.",
    "I have enclosed a few photos from {sevent}.",
    "If you are free in {month}, please come and stay with us for a few days.",
    "We would love to show you the new path along the river.",
]


def en_letter(rng):
    slots = en_slots(rng, given=rng.choice(["Mia", "Ben", "Sophie", "Leo", "Ivy", "Kai"]),
                     hobby2=rng.choice(["dinosaurs", "trains", "football", "the piano", "drawing"]))
    body = en_units(rng, EN_LETTER, slots, 3, 8)
    signoff = rng.choice(["Take care of yourself,", "With love,", "Warm wishes,", "All the best,"])
    return "A letter", [f"Dear {slots['friend']},"] + body + [
        "I hope this finds you in good health. Write back when you can.", f"{signoff}\n{slots['name']}"]


EN_DIARY = [
    "Woke up at {hour} and lay in bed listening to the rain.",
    "Breakfast was {meal} and a cup of {drink}.",
    "Spent the morning at {place}, mostly reading {book}.",
    ("{friend} called after lunch, and we met at the {shop}.",
     "{friend} had cut {friend_his} hair short; it suits {friend_him}."),
    "On the way home I saw {animal} near the old wall.",
    ("The rain came back in the late afternoon.",
     "I had no umbrella, so I waited under the awning of the {shop2} until it eased."),
    "Bought {snack} at the market. Better than I expected.",
    "Spent an hour on my {subject} homework and still did not finish it.",
    "Finally returned the book I borrowed from {friend2}.",
    "Made {meal2} for dinner and ate it with the family.",
    "I cannot stop thinking about {hobby} these days.",
    "Tomorrow is {event}, so I should get to bed early.",
    "Wrote tomorrow's to-do list before turning off the light.",
    "A {feel} day, all things considered.",
]


def en_diary(rng):
    month, day = rng.randint(1, 12), rng.randint(1, 25)
    entries = []
    for k, chosen in enumerate(deal_units(rng, EN_DIARY, rng.randint(1, 3), 4, 7)):
        friend, sex = rng.choice(EN_PEOPLE)
        slots = en_slots(rng, friend=friend, friend_his="her" if sex == "f" else "his",
                         friend_him="her" if sex == "f" else "him")
        body = " ".join(en_render(p, slots) for u in chosen for p in (u if isinstance(u, tuple) else (u,)))
        entries += [f"{MONTHS[month - 1]} {day + k}", body]
    return "Diary", entries


EN_NEWS = {
    "event": ["{event} took place at {place} in {town} on {date}.",
              "Organizers estimate that around {visitors} people attended over the day.",
              "\"{quote},\" said {fullname}, who chaired the organizing committee.",
              "A shuttle bus from the station will run again next year."],
    "policy": ["The {town} council announced on {date} that it will {policy}.",
               "The project is expected to cost about {money} million dollars and finish by {year}.",
               "Residents have asked for the change for several years.",
               "A public meeting to discuss the plans will be held at {hall} next month."],
    "sport": ["The {school} {sport} team won the regional final on {date}.",
              "They beat {town2} by {s1} to {s2} in a tense match.",
              "\"Everyone played for each other,\" said captain {fullname}.",
              "The team will play in the national tournament next month."],
    "incident": ["A burst water main closed {street} in {town} for several hours on {date}.",
                 "No injuries were reported.",
                 "Engineers worked through the night to repair the pipe.",
                 "The water company apologized for the disruption."],
}


def en_news(rng):
    items = []
    for kind in rng.sample(list(EN_NEWS), rng.randint(1, 4)):
        s1 = rng.randint(2, 6)
        slots = en_slots(rng, year=str(rng.randint(2026, 2030)), s1=str(s1), s2=str(s1 - rng.randint(1, 2)),
                         school=rng.choice(["North High", "Riverside Middle School", "St. Anne's",
                                            "East Valley High"]),
                         street=rng.choice(["Mill Lane", "the high street", "Station Road", "Bridge Street"]))
        units = EN_NEWS[kind]
        chosen = units[:1] + pick_units(rng, units[1:], 2, len(units) - 1)
        items.append(" ".join(en_render(u, slots) for u in chosen))
    return rng.choice(["Local news", "This week in brief", "Around town"]), items


EN_QA = [
    ("How often should I water {plant}?",
     "Check the soil with a finger; water deeply when the top few"
     " centimeters are dry. In {season}, check a little more often."),
    ("How many books can I borrow from the {town} library?",
     "Up to {n_books} books at a time, for three weeks. You can"
     " renew online if nobody else has reserved them."),
    ("What is the easiest way to get from {station} to {place}?",
     "Leave {station} by the north exit and walk straight for about {walk}"
     " minutes. On rainy days the number {n} bus is easier."),
    ("My computer has suddenly become slow. What should I try first?",
     "Close programs you are not using and restart. If that does not"
     " help, check how much free disk space is left."),
    ("Is there a simple rule for cooking rice?",
     "For white rice, a common starting point is a little more water than rice"
     " by volume. Let it rest for ten minutes after cooking."),
    ("Where can we go in {town} on a rainy day?",
     "Try the science museum or the art gallery. Both have cafes, so you can easily spend the whole day."),
    ("How do I get my children to eat more vegetables?",
     "Let them help with shopping and cooking. Grated carrot in a sauce often goes unnoticed."),
    ("Any tips for getting up early?",
     "Go to bed and get up at the same time every day. Open the curtains as soon as you wake."),
    ("I want to learn programming on my own. Where should I start?",
     "Pick one language with lots of learning material, such as"
     " {plang}, and write a small program every day."),
    ("I left my bag on the train. What should I do?",
     "Tell the staff at the nearest station which train you were on and"
     " describe the bag. Found items are kept at {station} station."),
    ("When is the best time to look at the stars?",
     "On a night without the Moon, a couple of hours after sunset. Get away from street lights if you can."),
]


def en_qa(rng):
    slots = en_slots(rng, plang=rng.choice(list(EN_PLANGS)))
    pairs = rng.sample(EN_QA, rng.randint(2, 6))
    paragraphs = [en_render(f"Q: {q}\nA: {a}", slots) for q, a in pairs]
    return fill_slots(rng.choice(["Frequently asked questions", "Ask us: {town} edition"]), slots), paragraphs


EN_GARDEN = [
    "This year {name} is growing {plant} in a sunny corner of the yard.",
    "Good soil is the foundation of everything, so {he} mixed in compost before planting.",
    "Seeds went in on a mild {weekday} in {month}.",
    "The first shoots appeared after about a week.",
    "Slugs are the main problem, and {he} checks the beds every evening with a flashlight.",
    "Watering early in the morning means less water is lost to the sun.",
    "A neighbor, {friend}, passed some cuttings over the fence.",
    "By midsummer the {plant} had almost doubled in size.",
    "Mulch around the stems helps the soil stay damp between waterings.",
    "Keeping a small notebook of what was planted where makes next year much easier.",
    "Nothing tastes quite like something you grew yourself.",
]


def en_garden(rng):
    slots = en_slots(rng)
    return rng.choice(["Garden diary", "Notes from the vegetable patch", "Growing at home"]), \
        en_units(rng, EN_GARDEN, slots, 4, 10)


EN_TOPICS = [(en_weather, 3), (en_cooking, 3), (en_trains, 3), (en_seasons, 3), (en_science, 3),
             (en_computers, 3), (en_history, 3), (en_letter, 2), (en_diary, 3), (en_news, 3),
             (en_qa, 2), (en_garden, 2)]


def en_article(rng: random.Random, titled: bool) -> str:
    title, paragraphs = weighted(rng, EN_TOPICS)(rng)
    return "\n\n".join(([title] if titled else []) + paragraphs)


# ---------------------------------------------------------------------------
# Code: Python snippets (placeholders are <<name>>) plus shell, JSON and YAML
# ---------------------------------------------------------------------------

def code_fill(template: str, **kw) -> str:
    return re.sub(r"<<(\w+)>>", lambda m: str(kw[m[1]]), textwrap.dedent(template).strip("\n"))


def ints(rng, n, lo=1, hi=99) -> str:
    return ", ".join(str(rng.randint(lo, hi)) for _ in range(n))


def py_mean(rng, t):
    fn = rng.choice(["mean", "average", "compute_mean", "mean_of"])
    xs = rng.choice(["values", "numbers", "scores", "samples"])
    code = code_fill('''
        def <<fn>>(<<xs>>):
            """<<doc>>"""
            if not <<xs>>:
                raise ValueError("<<msg>>")
            return sum(<<xs>>) / len(<<xs>>)
        ''', fn=fn, xs=xs, doc=t("Return the arithmetic mean of a non-empty sequence.",
                                 "空でない数列の平均値を返す。"),
        msg=t("cannot average an empty sequence", "空の列の平均は計算できません"))
    return code, [f"print({fn}([{ints(rng, rng.randint(3, 8))}]))"], []


def py_word_count(rng, t):
    fn = rng.choice(["word_counts", "count_words", "tally_words"])
    code = code_fill('''
        def <<fn>>(text):
            """<<doc>>"""
            counts = {}
            for word in text.lower().split():
                word = word.strip(".,!?;:")
                if word:  # <<c>>
                    counts[word] = counts.get(word, 0) + 1
            return counts
        ''', fn=fn, doc=t("Count how often each word appears in the text.",
                          "文中の各単語の出現回数を数える。"),
        c=t("skip pure punctuation", "記号だけの語は数えない"))
    sentence = rng.choice(["the cat sat on the mat", "red fish, blue fish, old fish",
                           "to be or not to be", "one train, two trains, three trains"])
    return code, [f"print({fn}({sentence!r}))"], []


def py_clamp(rng, t):
    fn = rng.choice(["clamp", "limit", "bound_value"])
    code = code_fill('''
        def <<fn>>(x, low, high):
            """<<doc>>"""
            if low > high:
                raise ValueError("low must not exceed high")
            return max(low, min(x, high))
        ''', fn=fn, doc=t("Restrict x to the closed interval [low, high].",
                          "x を区間 [low, high] に収める。"))
    return code, [f"print({fn}({rng.randint(-20, 120)}, 0, 100))"], []


def py_fibonacci(rng, t):
    fn = rng.choice(["fibonacci", "fib_sequence", "first_fibs"])
    code = code_fill('''
        def <<fn>>(n):
            """<<doc>>"""
            result = []
            a, b = 0, 1
            for _ in range(n):
                result.append(a)
                a, b = b, a + b  # <<c>>
            return result
        ''', fn=fn, doc=t("Return the first n Fibonacci numbers.", "フィボナッチ数列の最初の n 項を返す。"),
        c=t("advance the pair", "次の二項に進める"))
    return code, [f"print({fn}({rng.randint(5, 15)}))"], []


def py_is_prime(rng, t):
    fn = rng.choice(["is_prime", "check_prime", "prime_p"])
    code = code_fill('''
        def <<fn>>(n):
            """<<doc>>"""
            if n < 2:
                return False
            i = 2
            while i * i <= n:  # <<c>>
                if n % i == 0:
                    return False
                i += 1
            return True
        ''', fn=fn, doc=t("Return True if n is a prime number.", "n が素数なら True を返す。"),
        c=t("trial division up to the square root", "平方根までの試し割り"))
    hi = rng.randint(20, 60)
    return code, [f"print([k for k in range({hi}) if {fn}(k)])"], []


def py_moving_average(rng, t):
    fn = rng.choice(["moving_average", "rolling_mean", "smooth"])
    code = code_fill('''
        def <<fn>>(series, window=<<w>>):
            """<<doc>>"""
            if window <= 0:
                raise ValueError("window must be positive")
            out = []
            total = 0.0
            for i, value in enumerate(series):
                total += value
                if i >= window:
                    total -= series[i - window]  # <<c>>
                if i >= window - 1:
                    out.append(total / window)
            return out
        ''', fn=fn, w=rng.randint(2, 5), doc=t("Return the simple moving average of a series.",
                                              "系列の単純移動平均を返す。"),
        c=t("drop the value that left the window", "窓から外れた値を引く"))
    return code, [f"print({fn}([{ints(rng, 10)}]))"], []


def py_temperature(rng, t):
    fn = rng.choice(["celsius_to_fahrenheit", "c_to_f", "to_fahrenheit"])
    code = code_fill('''
        def <<fn>>(celsius):
            """<<doc>>"""
            return celsius * 9 / 5 + 32


        def print_table(start, stop, step):
            # <<c>>
            for c in range(start, stop + 1, step):
                print(f"{c:>4} C = {<<fn>>(c):6.1f} F")
        ''', fn=fn, doc=t("Convert a temperature from Celsius to Fahrenheit.", "摂氏を華氏に変換する。"),
        c=t("print one row per temperature", "温度ごとに一行ずつ表示する"))
    lo = rng.choice([-20, -10, 0])
    return code, [f"print_table({lo}, {rng.choice([30, 40, 50])}, {rng.choice([5, 10])})"], []


def py_parse_config(rng, t):
    fn = rng.choice(["parse_settings", "read_key_values", "parse_config"])
    code = code_fill('''
        def <<fn>>(lines):
            """<<doc>>"""
            settings = {}
            for number, line in enumerate(lines, start=1):
                line = line.split("#", 1)[0].strip()  # <<c>>
                if not line:
                    continue
                if "=" not in line:
                    raise ValueError(f"line {number}: expected key = value")
                key, value = (part.strip() for part in line.split("=", 1))
                settings[key] = value
            return settings
        ''', fn=fn, doc=t("Parse 'key = value' lines, ignoring comments and blank lines.",
                          "「key = value」形式の行を読み、コメントと空行は無視する。"),
        c=t("remove trailing comments", "行末のコメントを取り除く"))
    note = t('demo settings', 'サンプル設定')
    demo = [f"sample = [\"# {note}\", \"batch_size = {rng.choice([8, 16, 32])}\", "
            f"\"\", \"learning_rate = {rng.choice(['3e-4', '1e-3', '2e-4'])}  # peak\"]",
            f"print({fn}(sample))"]
    return code, demo, []


def py_flatten(rng, t):
    fn = rng.choice(["flatten", "flatten_list", "unnest"])
    code = code_fill('''
        def <<fn>>(nested):
            """<<doc>>"""
            flat = []
            for item in nested:
                if isinstance(item, (list, tuple)):
                    flat.extend(<<fn>>(item))  # <<c>>
                else:
                    flat.append(item)
            return flat
        ''', fn=fn, doc=t("Flatten arbitrarily nested lists and tuples.",
                          "入れ子になったリストを平らにする。"),
        c=t("recurse into sub-lists", "内側のリストを再帰的に処理する"))
    return code, [f"print({fn}([1, [2, 3], [[4], ({rng.randint(5, 9)}, 10)]]))"], []


def py_chunk(rng, t):
    fn = rng.choice(["chunked", "batches", "split_every"])
    code = code_fill('''
        def <<fn>>(items, size):
            """<<doc>>"""
            if size < 1:
                raise ValueError("size must be at least 1")
            for start in range(0, len(items), size):
                yield items[start:start + size]
        ''', fn=fn, doc=t("Yield consecutive slices of at most `size` items.",
                          "最大 size 個ずつの区切りを順に返す。"))
    n, size = rng.randint(7, 20), rng.randint(2, 5)
    return code, [f"for part in {fn}(list(range({n})), {size}):", "    print(part)"], []


def py_binary_search(rng, t):
    fn = rng.choice(["binary_search", "find_sorted", "bisect_index"])
    code = code_fill('''
        def <<fn>>(sorted_items, target):
            """<<doc>>"""
            lo, hi = 0, len(sorted_items) - 1
            while lo <= hi:
                mid = (lo + hi) // 2
                if sorted_items[mid] == target:
                    return mid
                if sorted_items[mid] < target:
                    lo = mid + 1  # <<c>>
                else:
                    hi = mid - 1
            return -1
        ''', fn=fn, doc=t("Return the index of target in a sorted list, or -1.",
                          "ソート済みリスト中の target の位置を返す。無ければ -1。"),
        c=t("search the right half", "右半分を探す"))
    data = sorted(rng.sample(range(100), 10))
    return code, [f"data = {data}", f"print({fn}(data, {rng.choice(data)}), {fn}(data, 101))"], []


def py_gcd(rng, t):
    code = code_fill('''
        def gcd(a, b):
            """<<doc1>>"""
            while b:
                a, b = b, a % b
            return abs(a)


        def lcm(a, b):
            """<<doc2>>"""
            return abs(a * b) // gcd(a, b) if a and b else 0
        ''', doc1=t("Greatest common divisor by Euclid's algorithm.",
                    "ユークリッドの互除法で最大公約数を求める。"),
        doc2=t("Least common multiple of two integers.", "二つの整数の最小公倍数を求める。"))
    a, b = rng.randint(6, 120), rng.randint(6, 120)
    return code, [f"print(gcd({a}, {b}), lcm({a}, {b}))"], []


def py_rle(rng, t):
    fn = rng.choice(["run_length_encode", "rle", "compress_runs"])
    code = code_fill('''
        def <<fn>>(text):
            """<<doc>>"""
            runs = []
            for ch in text:
                if runs and runs[-1][0] == ch:
                    runs[-1][1] += 1
                else:
                    runs.append([ch, 1])  # <<c>>
            return "".join(f"{ch}{count}" for ch, count in runs)
        ''', fn=fn, doc=t("Encode repeated characters as character-count pairs.",
                          "連続する文字を「文字+個数」で表す。"),
        c=t("start a new run", "新しい連続を始める"))
    return code, [f"print({fn}({rng.choice(['aaabccdddd', 'ああいいいう', 'xxyyyzzzz', 'wwwwbw'])!r}))"], []


def py_dedupe(rng, t):
    fn = rng.choice(["unique", "dedupe", "remove_duplicates"])
    code = code_fill('''
        def <<fn>>(items):
            """<<doc>>"""
            seen = set()
            result = []
            for item in items:
                if item not in seen:  # <<c>>
                    seen.add(item)
                    result.append(item)
            return result
        ''', fn=fn, doc=t("Remove duplicates while keeping the first occurrence order.",
                          "最初に現れた順序を保ったまま重複を取り除く。"),
        c=t("keep only the first occurrence", "最初の一つだけを残す"))
    return code, [f"print({fn}([{ints(rng, 12, 1, 6)}]))"], []


def py_char_classes(rng, t):
    fn = rng.choice(["script_counts", "count_scripts", "classify_chars"])
    code = code_fill('''
        def <<fn>>(text):
            """<<doc>>"""
            counts = Counter()
            for ch in text:
                code = ord(ch)
                if 0x3040 <= code <= 0x309F:
                    counts["hiragana"] += 1
                elif 0x30A0 <= code <= 0x30FF:
                    counts["katakana"] += 1
                elif 0x4E00 <= code <= 0x9FFF:
                    counts["kanji"] += 1
                elif ch.isascii() and ch.isalpha():
                    counts["latin"] += 1
                else:
                    counts["other"] += 1  # <<c>>
            return dict(counts)
        ''', fn=fn, doc=t("Count hiragana, katakana, kanji and Latin letters in a string.",
                          "文字列中のひらがな・カタカナ・漢字・英字の数を数える。"),
        c=t("digits, punctuation and spaces", "数字・記号・空白など"))
    sample = rng.choice(["今日はPythonで日本語のテキストを数えます。", "カレーライスを作りました",
                         "東京駅から新幹線に乗る", "データセットのサイズは3MBです"])
    return code, [f"print({fn}({sample!r}))"], ["from collections import Counter"]


def py_vocab(rng, t):
    fn = rng.choice(["build_vocab", "make_vocabulary", "collect_vocab"])
    code = code_fill('''
        def <<fn>>(texts, min_count=<<mc>>):
            """<<doc>>"""
            counts = Counter(token for text in texts for token in text.split())
            vocab = {"<pad>": 0, "<unk>": 1}
            for token, count in counts.most_common():
                if count < min_count:
                    break  # <<c>>
                vocab[token] = len(vocab)
            return vocab


        def encode(text, vocab):
            return [vocab.get(token, vocab["<unk>"]) for token in text.split()]
        ''', fn=fn, mc=rng.randint(1, 2), doc=t("Build a token-to-id table from whitespace-split texts.",
                                               "空白区切りのテキストから語彙表を作る。"),
        c=t("most_common is sorted, so the rest are rarer", "頻度順なので以降はすべて少ない"))
    demo = ["corpus = [\"the quick fox\", \"the lazy dog\", \"the fox sleeps\"]",
            f"table = {fn}(corpus)", "print(table)", "print(encode(\"the fox runs\", table))"]
    return code, demo, ["from collections import Counter"]


def py_lr_schedule(rng, t):
    fn = rng.choice(["learning_rate", "lr_at", "cosine_schedule"])
    code = code_fill('''
        def <<fn>>(step, peak=<<peak>>, warmup=<<warm>>, total=<<total>>, floor=0.1):
            """<<doc>>"""
            if step < warmup:
                return peak * (step + 1) / warmup  # <<c>>
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            return peak * (floor + (1 - floor) * cosine)
        ''', fn=fn, peak=rng.choice(["3e-4", "1e-3", "6e-4"]), warm=rng.choice([100, 200, 500]),
        total=rng.choice([2000, 5000, 10000]),
        doc=t("Linear warmup followed by cosine decay to floor * peak.",
              "線形ウォームアップの後、コサインで peak * floor まで下げる。"),
        c=t("linear warmup", "線形に増やす"))
    return code, ["for s in (0, 50, 500, 1500, 4000):", f"    print(s, round({fn}(s), 6))"], ["import math"]


def py_transpose(rng, t):
    fn = rng.choice(["transpose", "flip_matrix", "swap_axes"])
    code = code_fill('''
        def <<fn>>(matrix):
            """<<doc>>"""
            if not matrix:
                return []
            return [list(row) for row in zip(*matrix)]


        def matmul(a, b):
            # <<c>>
            cols = <<fn>>(b)
            return [[sum(x * y for x, y in zip(row, col)) for col in cols] for row in a]
        ''', fn=fn, doc=t("Swap rows and columns of a list-of-lists matrix.", "行列の行と列を入れ替える。"),
        c=t("multiply two small matrices without numpy", "numpy を使わずに小さな行列の積を計算する"))
    return code, [f"m = [[{ints(rng, 3, 0, 9)}], [{ints(rng, 3, 0, 9)}]]", f"print({fn}(m))",
                  f"print(matmul(m, {fn}(m)))"], []


def py_stack_class(rng, t):
    cls = rng.choice(["Stack", "LifoBuffer", "PlateStack"])
    code = code_fill('''
        class <<cls>>:
            """<<doc>>"""

            def __init__(self):
                self._items = []

            def push(self, item):
                self._items.append(item)

            def pop(self):
                if not self._items:
                    raise IndexError("<<msg>>")
                return self._items.pop()

            def peek(self):
                return self._items[-1] if self._items else None

            def __len__(self):
                return len(self._items)
        ''', cls=cls, doc=t("A minimal last-in, first-out container.", "後入れ先出しの簡単なコンテナ。"),
        msg=t("pop from an empty stack", "空のスタックからは取り出せません"))
    words = rng.sample(['alpha', 'beta', 'gamma', 'delta', 'kappa'], 3)
    return code, [f"s = {cls}()", f"for word in {words}:",
                  "    s.push(word)", "print(s.pop(), s.peek(), len(s))"], []


def py_inventory(rng, t):
    item = rng.choice(["Item", "Product", "Article"])
    code = code_fill('''
        @dataclass
        class <<item>>:
            name: str
            price: float
            quantity: int = 0

            def total(self):
                return self.price * self.quantity


        def inventory_value(items):
            """<<doc>>"""
            return round(sum(i.total() for i in items), 2)


        def low_stock(items, threshold=<<th>>):
            # <<c>>
            return [i.name for i in items if i.quantity < threshold]
        ''', item=item, th=rng.randint(3, 10), doc=t("Total value of all items in stock.",
                                                     "在庫全体の金額を返す。"),
        c=t("names of items that should be reordered", "追加注文が必要な品目の名前"))
    goods = rng.sample(["pencil", "notebook", "eraser", "ruler", "stapler", "tape", "marker"], 3)
    rows = ", ".join(f"{item}({g!r}, {rng.randint(1, 30) * 10}, {rng.randint(0, 20)})" for g in goods)
    return code, [f"stock = [{rows}]", "print(inventory_value(stock))", "print(low_stock(stock))"], \
        ["from dataclasses import dataclass"]


def py_account(rng, t):
    cls = rng.choice(["Account", "Wallet", "PiggyBank"])
    code = code_fill('''
        class <<cls>>:
            """<<doc>>"""

            def __init__(self, owner, balance=0):
                self.owner = owner
                self.balance = balance
                self.history = []

            def deposit(self, amount):
                if amount <= 0:
                    raise ValueError("<<msg>>")
                self.balance += amount
                self.history.append(("deposit", amount))

            def withdraw(self, amount):
                if amount > self.balance:
                    raise ValueError("insufficient funds")
                self.balance -= amount
                self.history.append(("withdraw", amount))  # <<c>>

            def __repr__(self):
                return f"<<cls>>({self.owner!r}, balance={self.balance})"
        ''', cls=cls, doc=t("Keeps a balance and a history of transactions.", "残高と取引履歴を管理する。"),
        msg=t("amount must be positive",
              "金額は正の数にしてください"), c=t("record every change", "変更を記録する"))
    who = rng.choice(["Aiko", "Ben", "Chen", "Dana", "佐藤"])
    return code, [f"acct = {cls}({who!r}, {rng.randint(1, 9) * 100})",
                  f"acct.deposit({rng.randint(1, 9) * 50})",
                  f"acct.withdraw({rng.randint(1, 5) * 20})", "print(acct)", "print(acct.history)"], []


def py_read_lines(rng, t):
    fn = rng.choice(["read_records", "iter_lines", "load_entries"])
    code = code_fill('''
        def <<fn>>(path):
            """<<doc>>"""
            with Path(path).open(encoding="utf-8") as handle:
                for line in handle:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue  # <<c>>
                    yield line
        ''', fn=fn, doc=t("Yield non-empty, non-comment lines from a UTF-8 text file.",
                          "UTF-8 のテキストファイルから空行とコメント以外の行を返す。"),
        c=t("skip blanks and comments", "空行とコメントは読み飛ばす"))
    first, second = rng.choice(['apple', 'りんご', 'alpha']), rng.choice(['banana', 'みかん', 'beta'])
    demo = ["import tempfile", "with tempfile.TemporaryDirectory() as tmp:",
            "    sample = Path(tmp) / \"notes.txt\"",
            f"    sample.write_text(\"# header\\n{first}\\n\\n{second}\\n\", encoding=\"utf-8\")",
            f"    print(list({fn}(sample)))"]
    return code, demo, ["from pathlib import Path"]


def py_normalize(rng, t):
    fn = rng.choice(["min_max_scale", "normalize", "rescale"])
    code = code_fill('''
        def <<fn>>(values):
            """<<doc>>"""
            low, high = min(values), max(values)
            if high == low:
                return [0.0 for _ in values]  # <<c>>
            return [(v - low) / (high - low) for v in values]
        ''', fn=fn, doc=t("Scale values linearly into the range [0, 1].",
                          "値を 0 から 1 の範囲に線形に変換する。"),
        c=t("all values equal", "すべて同じ値の場合"))
    return code, [f"print([round(v, 3) for v in {fn}([{ints(rng, 6)}])])"], []


def py_insertion_sort(rng, t):
    fn = rng.choice(["insertion_sort", "sort_in_place", "simple_sort"])
    code = code_fill('''
        def <<fn>>(items):
            """<<doc>>"""
            for i in range(1, len(items)):
                current = items[i]
                j = i - 1
                while j >= 0 and items[j] > current:
                    items[j + 1] = items[j]  # <<c>>
                    j -= 1
                items[j + 1] = current
            return items
        ''', fn=fn, doc=t("Sort a list in place using insertion sort.",
                          "挿入ソートでリストをその場で並べ替える。"),
        c=t("shift larger items right", "大きい要素を右にずらす"))
    return code, [f"print({fn}([{ints(rng, 9)}]))"], []


def py_histogram(rng, t):
    fn = rng.choice(["print_histogram", "bar_chart", "show_counts"])
    code = code_fill('''
        def <<fn>>(counts, width=<<w>>):
            """<<doc>>"""
            if not counts:
                return
            peak = max(counts.values())
            for label, count in sorted(counts.items()):
                bar = "#" * max(1, round(width * count / peak))  # <<c>>
                print(f"{label:>10} | {bar} {count}")
        ''', fn=fn, w=rng.choice([20, 30, 40]), doc=t("Print a horizontal bar chart of label counts.",
                                                     "ラベルごとの件数を横棒グラフで表示する。"),
        c=t("scale bars to the widest one", "最大の棒に合わせて長さを調整する"))
    labels = rng.sample(["apples", "pears", "plums", "grapes", "kiwis", "ja", "en", "code"], 4)
    data = ", ".join(f"{k!r}: {rng.randint(1, 50)}" for k in labels)
    return code, [f"{fn}({{{data}}})"], []


def py_timer(rng, t):
    cls = rng.choice(["Timer", "Stopwatch", "ElapsedTime"])
    code = code_fill('''
        class <<cls>>:
            """<<doc>>"""

            def __init__(self, label="block"):
                self.label = label
                self.elapsed = 0.0

            def __enter__(self):
                self._start = time.perf_counter()
                return self

            def __exit__(self, *exc):
                self.elapsed = time.perf_counter() - self._start
                print(f"{self.label}: {self.elapsed * 1000:.2f} ms")
                return False  # <<c>>
        ''', cls=cls, doc=t("Context manager that reports how long a block took.",
                            "ブロックの実行時間を表示するコンテキストマネージャ。"),
        c=t("do not swallow exceptions", "例外は握りつぶさない"))
    return code, [f"with {cls}(\"sum of squares\"):",
                  f"    total = sum(i * i for i in range({rng.randint(1, 9)}0000))",
                  "print(total)"], ["import time"]


def py_json_roundtrip(rng, t):
    fn = rng.choice(["save_json", "write_json", "dump_records"])
    code = code_fill('''
        def <<fn>>(records, path):
            """<<doc>>"""
            with open(path, "w", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\\n")  # <<c>>


        def load_jsonl(path):
            with open(path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        ''', fn=fn, doc=t("Write records as JSON lines, keeping non-ASCII text readable.",
                          "非 ASCII の文字もそのまま読めるように JSON Lines で保存する。"),
        c=t("one object per line", "一行に一つのオブジェクト"))
    ja_word, en_word = rng.choice(['こんにちは', '晴れ', '電車']), rng.choice(['hello', 'rain', 'train'])
    demo = ["import os", "import tempfile",
            f"docs = [{{\"id\": 1, \"text\": {ja_word!r}}}, {{\"id\": 2, \"text\": {en_word!r}}}]",
            "path = os.path.join(tempfile.mkdtemp(), \"docs.jsonl\")",
            f"{fn}(docs, path)", "print(load_jsonl(path))"]
    return code, demo, ["import json"]


def py_group_by(rng, t):
    fn = rng.choice(["group_by", "bucket_by", "group_records"])
    key = rng.choice(["city", "team", "category"])
    code = code_fill("""
        def <<fn>>(records, key):
            \"\"\"<<doc>>\"\"\"
            groups = defaultdict(list)
            for record in records:
                groups[record[key]].append(record)  # <<c>>
            return dict(groups)
        """, fn=fn, doc=t("Group a list of dicts by the value stored under `key`.",
                          "辞書のリストを key の値ごとにまとめる。"),
        c=t("missing groups are created on first use", "初めて出てきたグループは自動で作られる"))
    values = rng.sample(["north", "south", "east", "west", "central"], 2)
    rows = ", ".join(f"{{\"name\": {n!r}, \"{key}\": {rng.choice(values)!r}}}"
                     for n in rng.sample(["Aki", "Ben", "Cleo", "Dev", "Emi", "Finn"], 4))
    return code, [f"rows = [{rows}]", f"for group, members in {fn}(rows, \"{key}\").items():",
                  "    print(group, [m[\"name\"] for m in members])"], ["from collections import defaultdict"]


def py_caesar(rng, t):
    fn = rng.choice(["caesar_shift", "rotate_letters", "shift_text"])
    code = code_fill("""
        def <<fn>>(text: str, shift: int) -> str:
            \"\"\"<<doc>>\"\"\"
            out = []
            for ch in text:
                if "a" <= ch <= "z":
                    out.append(chr((ord(ch) - ord("a") + shift) % 26 + ord("a")))
                elif "A" <= ch <= "Z":
                    out.append(chr((ord(ch) - ord("A") + shift) % 26 + ord("A")))
                else:
                    out.append(ch)  # <<c>>
            return "".join(out)
        """, fn=fn, doc=t("Shift ASCII letters by `shift` places, leaving other characters alone.",
                          "英字だけを shift 文字ずらし、それ以外はそのまま残す。"),
        c=t("digits, spaces and kana are unchanged", "数字や空白、かなは変えない"))
    word = rng.choice(["Hello, World", "attack at dawn", "Meet me at the station", "JAX on TPU"])
    k = rng.randint(1, 25)
    return code, [f"secret = {fn}({word!r}, {k})", "print(secret)", f"print({fn}(secret, -{k}))"], []


def py_palindrome(rng, t):
    fn = rng.choice(["is_palindrome", "reads_same_backwards", "palindrome_check"])
    code = code_fill("""
        def <<fn>>(text: str) -> bool:
            \"\"\"<<doc>>\"\"\"
            cleaned = [ch.lower() for ch in text if ch.isalnum()]  # <<c>>
            return cleaned == cleaned[::-1]
        """, fn=fn, doc=t("True if the text reads the same forwards and backwards.",
                          "前から読んでも後ろから読んでも同じなら True。"),
        c=t("ignore case, spaces and punctuation", "大文字小文字・空白・記号は無視する"))
    words = rng.sample(["Never odd or even", "たけやぶやけた", "step on no pets", "python", "level",
                        "しんぶんし"], 3)
    return code, [f"for phrase in {words}:", f"    print(phrase, {fn}(phrase))"], []


def py_days_until(rng, t):
    fn = rng.choice(["days_until", "days_left", "countdown_days"])
    code = code_fill("""
        def <<fn>>(target, today=None):
            \"\"\"<<doc>>\"\"\"
            today = today or date.today()
            delta = target - today
            return max(0, delta.days)  # <<c>>
        """, fn=fn, doc=t("Number of whole days from today until the target date.",
                          "今日から目標の日付までの日数を返す。"),
        c=t("dates in the past count as zero", "過去の日付は 0 とする"))
    y = rng.randint(2024, 2027)
    m1, m2 = sorted(rng.sample(range(1, 13), 2))
    d1, d2 = rng.randint(1, 28), rng.randint(1, 28)
    return code, [f"print({fn}(date({y}, {m2}, {d2}), today=date({y}, {m1}, {d1})))"], \
        ["from datetime import date"]


def py_csv_totals(rng, t):
    fn = rng.choice(["column_totals", "sum_columns", "totals_by_column"])
    cols = rng.sample(["apples", "pears", "rice", "tea", "bread", "milk"], 3)
    code = code_fill("""
        def <<fn>>(csv_text):
            \"\"\"<<doc>>\"\"\"
            reader = csv.DictReader(io.StringIO(csv_text))
            totals = {}
            for row in reader:
                for column, value in row.items():
                    if column == "date":
                        continue  # <<c>>
                    totals[column] = totals.get(column, 0) + int(value)
            return totals
        """, fn=fn, doc=t("Sum every numeric column of a small CSV table.",
                          "CSV の数値の列ごとに合計を求める。"),
        c=t("the date column is not a number", "日付の列は数値ではない"))
    rows = "\\n".join(f"2025-0{i + 1}-01," + ",".join(str(rng.randint(0, 40)) for _ in cols)
                      for i in range(3))
    header = ",".join(cols)
    return code, [f"table = \"date,{header}\\n{rows}\\n\"", f"print({fn}(table))"], \
        ["import csv", "import io"]


def py_retry(rng, t):
    deco = rng.choice(["retry", "with_retries", "try_again"])
    code = code_fill("""
        def <<deco>>(times=<<n>>, delay=0.0):
            \"\"\"<<doc>>\"\"\"
            def decorator(func):
                @functools.wraps(func)
                def wrapper(*args, **kwargs):
                    for attempt in range(1, times + 1):
                        try:
                            return func(*args, **kwargs)
                        except Exception as err:  # <<c>>
                            if attempt == times:
                                raise
                            print(f"attempt {attempt} failed: {err}")
                            time.sleep(delay)
                return wrapper
            return decorator
        """, deco=deco, n=rng.randint(2, 5), doc=t("Decorator that re-runs a function when it raises.",
                                                   "例外が出たときに関数を再実行するデコレータ。"),
        c=t("retry on any error", "どんなエラーでも再試行する"))
    fails = rng.randint(1, 2)
    demo = ["calls = []", "", f"@{deco}(times={fails + 1})", "def flaky():", "    calls.append(1)",
            f"    if len(calls) <= {fails}:", "        raise RuntimeError(\"not yet\")",
            "    return len(calls)",
            "", "print(flaky())"]
    return code, demo, ["import functools", "import time"]


def py_lru(rng, t):
    cls = rng.choice(["LRUCache", "RecentCache", "SmallCache"])
    code = code_fill("""
        class <<cls>>:
            \"\"\"<<doc>>\"\"\"

            def __init__(self, capacity: int = <<cap>>):
                self.capacity = capacity
                self._data = OrderedDict()

            def get(self, key, default=None):
                if key not in self._data:
                    return default
                self._data.move_to_end(key)  # <<c>>
                return self._data[key]

            def put(self, key, value):
                self._data[key] = value
                self._data.move_to_end(key)
                if len(self._data) > self.capacity:
                    self._data.popitem(last=False)
        """, cls=cls, cap=rng.randint(2, 4), doc=t("Keeps only the most recently used entries.",
                                                    "最近使った項目だけを保持するキャッシュ。"),
        c=t("mark as recently used", "最近使ったものとして印を付ける"))
    keys = rng.sample(["a", "b", "c", "d", "e", "f"], 5)
    puts = [f"cache.put({k!r}, {i})" for i, k in enumerate(keys[:3])]
    return code, [f"cache = {cls}(capacity=2)"] + puts + \
        [f"print(cache.get({keys[0]!r}), cache.get({keys[2]!r}))"], ["from collections import OrderedDict"]


def py_split_sentences(rng, t):
    fn = rng.choice(["split_sentences", "sentences", "cut_sentences"])
    code = code_fill("""
        SENTENCE_END = re.compile(r"(?<=[。！？!?])\\s*")


        def <<fn>>(text):
            \"\"\"<<doc>>\"\"\"
            parts = SENTENCE_END.split(text.strip())
            return [p for p in parts if p]  # <<c>>
        """, fn=fn, doc=t("Split Japanese or English text after sentence-final punctuation.",
                          "句点や感嘆符・疑問符の後ろで文を区切る。"),
        c=t("drop empty pieces", "空の要素は捨てる"))
    sample = rng.choice(["今日は晴れです。明日は雨でしょうか？傘を持っていきます！",
                         "It rained. Then the sun came out! Did you see it?",
                         "電車が遅れました。でも間に合いました。"])
    return code, [f"for s in {fn}({sample!r}):", "    print(s)"], ["import re"]


def py_perplexity(rng, t):
    fn = rng.choice(["perplexity", "ppl_from_losses", "mean_perplexity"])
    code = code_fill("""
        def <<fn>>(losses, token_counts):
            \"\"\"<<doc>>\"\"\"
            total_tokens = sum(token_counts)
            if total_tokens == 0:
                raise ValueError("<<msg>>")
            # <<c>>
            total_loss = sum(loss * n for loss, n in zip(losses, token_counts))
            return math.exp(total_loss / total_tokens)
        """, fn=fn, doc=t("Token-weighted perplexity from per-batch mean cross-entropy losses.",
                          "バッチごとの平均交差エントロピーから、トークン数で重み付けしたパープレキシティを求める。"),
        msg=t("no tokens", "トークンがありません"),
        c=t("weight each batch by how many tokens it had", "各バッチをトークン数で重み付けする"))
    losses = ", ".join(f"{rng.uniform(2.0, 6.0):.2f}" for _ in range(3))
    return code, [f"print(round({fn}([{losses}], [{ints(rng, 3, 100, 500)}]), 2))"], ["import math"]


def py_cli(rng, t):
    code = code_fill("""
        def parse_args(argv=None):
            \"\"\"<<doc>>\"\"\"
            parser = argparse.ArgumentParser(description="<<desc>>")
            parser.add_argument("paths", nargs="*", help="<<h1>>")
            parser.add_argument("--limit", type=int, default=<<limit>>, help="<<h2>>")
            parser.add_argument("--verbose", action="store_true")
            return parser.parse_args(argv)
        """, doc=t("Parse command-line options.", "コマンドライン引数を解析する。"),
        desc=t("Summarize text files.", "テキストファイルを要約する。"),
        h1=t("files to read", "読み込むファイル"), h2=t("maximum number of lines", "最大の行数"),
        limit=rng.choice([10, 50, 100]))
    return code, [f"args = parse_args([\"notes.txt\", \"--limit\", \"{rng.randint(1, 9)}\", \"--verbose\"])",
                  "print(args.paths, args.limit, args.verbose)"], ["import argparse"]


def py_season_enum(rng, t):
    cls = rng.choice(["Season", "Quarter", "SeasonName"])
    code = code_fill("""
        class <<cls>>(Enum):
            SPRING = "<<sp>>"
            SUMMER = "<<su>>"
            AUTUMN = "<<au>>"
            WINTER = "<<wi>>"


        def season_of(month: int) -> <<cls>>:
            \"\"\"<<doc>>\"\"\"
            if not 1 <= month <= 12:
                raise ValueError(f"bad month: {month}")
            order = [<<cls>>.WINTER, <<cls>>.SPRING, <<cls>>.SUMMER, <<cls>>.AUTUMN]
            return order[(month % 12) // 3]  # <<c>>
        """, cls=cls, doc=t("Map a month number (1-12) to its season.", "月（1〜12）を季節に対応させる。"),
        c=t("December, January and February are winter", "12月・1月・2月は冬"),
        sp=t("spring", "春"), su=t("summer", "夏"), au=t("autumn", "秋"), wi=t("winter", "冬"))
    return code, [f"for m in {sorted(rng.sample(range(1, 13), 4))}:", "    print(m, season_of(m).value)"], \
        ["from enum import Enum"]


def py_fullwidth(rng, t):
    fn = rng.choice(["to_halfwidth_digits", "normalize_digits", "ascii_digits"])
    code = code_fill("""
        _FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


        def <<fn>>(text: str) -> str:
            \"\"\"<<doc>>\"\"\"
            return text.translate(_FULLWIDTH_DIGITS)  # <<c>>
        """, fn=fn, doc=t("Replace full-width digits with ASCII digits.", "全角数字を半角数字に置き換える。"),
        c=t("other characters are kept as they are", "ほかの文字はそのまま"))
    sample = rng.choice(["気温は２５度でした", "３月１５日に出発します", "定員は１２０名です"])
    return code, [f"print({fn}({sample!r}))"], []


PY_SNIPPETS = [py_mean, py_word_count, py_clamp, py_fibonacci, py_is_prime, py_moving_average,
               py_temperature, py_parse_config, py_flatten, py_chunk, py_binary_search, py_gcd,
               py_rle, py_dedupe, py_char_classes, py_vocab, py_lr_schedule, py_transpose,
               py_stack_class, py_inventory, py_account, py_read_lines, py_normalize,
               py_insertion_sort, py_histogram, py_timer, py_json_roundtrip, py_group_by,
               py_caesar, py_palindrome, py_days_until, py_csv_totals, py_retry, py_lru,
               py_split_sentences, py_perplexity, py_cli, py_season_enum, py_fullwidth]

MODULE_DOCS = [
    ("Small utility functions for everyday scripts.", "日常的なスクリプトで使う小さな関数群。"),
    ("Examples written for the llmjp-jax sample corpus.", "サンプルコーパス用に書いたコード例。"),
    ("Helpers for working with lists of numbers and text.", "数値のリストや文字列を扱う補助関数。"),
    ("A few classic algorithms, written for clarity.", "読みやすさを重視して書いた古典的なアルゴリズム。"),
]


def code_python(rng: random.Random) -> str:
    lang = "ja" if rng.random() < 0.35 else "en"
    t = (lambda en, ja: ja) if lang == "ja" else (lambda en, ja: en)
    parts = [snip(rng, t) for snip in rng.sample(PY_SNIPPETS, rng.randint(1, 4))]
    imports = sorted({imp for _, _, imps in parts for imp in imps},
                     key=lambda s: (s.startswith("from"), s))
    header = f'"""{t(*rng.choice(MODULE_DOCS))}"""'
    if rng.random() < 0.3:
        header = "#!/usr/bin/env python3\n" + header
    blocks = [header + ("\n\n" + "\n".join(imports) if imports else "")]
    blocks += [code for code, _, _ in parts]
    main_body = "\n".join("    " + line if line else "" for _, demo, _ in parts for line in demo)
    blocks.append(f"def main():\n{main_body}\n\n\nif __name__ == \"__main__\":\n    main()")
    source = "\n\n\n".join(blocks) + "\n"
    try:
        ast.parse(source)
    except SyntaxError as err:
        sys.exit(f"generated Python does not parse ({err}):\n{source}")
    return source


def code_shell(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        src, dst = rng.choice(["notes",
                              "photos", "projects", "data"]), rng.choice(["/mnt/backup", "$HOME/backup"])
        return code_fill('''
            #!/usr/bin/env bash
            # <<c>>
            set -euo pipefail

            SRC="${1:-$HOME/<<src>>}"
            DEST="<<dst>>/$(date +%Y%m%d)"
            mkdir -p "$DEST"
            tar -czf "$DEST/<<src>>.tar.gz" -C "$(dirname "$SRC")" "$(basename "$SRC")"
            echo "saved $SRC to $DEST"
            find "<<dst>>" -maxdepth 1 -type d -mtime +<<days>> -print
            ''', src=src, dst=dst, days=rng.choice([7, 14, 30]),
            c=rng.choice(["Back up a folder into a dated archive.",
                         "フォルダを日付付きのアーカイブにバックアップする。"])) + "\n"
    if kind == 1:
        ext = rng.choice(["py", "md", "txt", "jsonl"])
        return code_fill('''
            #!/usr/bin/env bash
            # <<c>>
            set -eu
            total=0
            for f in "${1:-.}"/*.<<ext>>; do
                [ -e "$f" ] || continue
                n=$(wc -l < "$f")
                printf '%8d  %s\\n' "$n" "$f"
                total=$((total + n))
            done
            echo "total: $total lines"
            ''', ext=ext, c=rng.choice([f"Count lines in every .{ext} file of a folder.",
                                         f"フォルダ内の .{ext} ファイルの行数を数える。"])) + "\n"
    if kind == 2:
        return code_fill('''
            #!/usr/bin/env bash
            # <<c>>
            set -euo pipefail
            python data/sample/generate.py --out /tmp/sample
            llmjp-spm-train --input /tmp/sample/train --vocab_size <<vocab>> --out /tmp/spm
            llmjp-train --config configs/llmjp3/150m.py --steps <<steps>> --batch_size <<bs>>
            ''', vocab=rng.choice([4000, 8000, 16000]), steps=rng.choice([200, 500, 1000]),
            bs=rng.choice([4, 8, 16]),
            c=rng.choice(["Tiny end-to-end run on the sample corpus (illustrative flags).",
                          "サンプルコーパスで小さく一通り動かす例（引数は一例）。"])) + "\n"
    return code_fill('''
        #!/bin/sh
        # <<c>>
        limit=<<limit>>
        usage=$(df -P / | awk 'NR==2 {print $5}' | tr -d '%')
        if [ "$usage" -ge "$limit" ]; then
            echo "disk usage is ${usage}% (limit ${limit}%)" >&2
            exit 1
        fi
        echo "disk usage ok: ${usage}%"
        ''', limit=rng.choice([80, 85, 90, 95]),
        c=rng.choice(["Warn when the root disk is nearly full.",
                     "ルートディスクの使用率が高いときに警告する。"])) + "\n"


def code_json(rng: random.Random) -> str:
    dim = rng.choice([64, 128, 256])
    config = {
        "model": {"vocab_size": rng.choice([4000, 8000, 32000]), "hidden_size": dim,
                  "num_layers": rng.randint(2, 6), "num_heads": dim // 32,
                  "max_seq_len": rng.choice([128, 256, 512])},
        "train": {"batch_size": rng.choice([4, 8, 16]), "learning_rate": rng.choice([3e-4, 1e-3]),
                  "warmup_steps": rng.choice([50, 100]), "steps": rng.choice([500, 1000, 2000]),
                  "seed": rng.randint(0, 9999)},
        "data": {"train": "data/sample/train", "heldout": "data/sample/heldout",
                 "files": rng.sample(["ja.jsonl", "en.jsonl", "code.jsonl"], rng.randint(1, 3))},
        "note": rng.choice(["tiny CPU run", "CPU で動く小さな設定", "smoke test"]),
    }
    if rng.random() < 0.5:
        return json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    people = [{"id": i, "name": rng.choice(FAMILY) + " " + rng.choice(GIVEN),
               "city": rng.choice(JA_WORDS["town"]), "age": rng.randint(18, 80),
               "tags": rng.sample(["reader", "runner", "cook", "gardener", "coder"], 2)}
              for i in range(1, rng.randint(3, 7))]
    return json.dumps({"members": people}, indent=2, ensure_ascii=False) + "\n"


def code_yaml(rng: random.Random) -> str:
    return code_fill('''
        # <<c>>
        run_name: <<name>>
        seed: <<seed>>
        model:
          hidden_size: <<dim>>
          num_layers: <<layers>>
          num_heads: <<heads>>
          dropout: 0.0
        data:
          train_dir: data/sample/train
          heldout_dir: data/sample/heldout
          seq_len: <<seq>>
        optimizer:
          name: adamw
          learning_rate: <<lr>>
          weight_decay: 0.1
          betas: [0.9, 0.95]
        schedule:
          warmup_steps: <<warm>>
          total_steps: <<steps>>
        logging:
          every: <<every>>  # steps
        ''', c=rng.choice(["Tiny model for a quick CPU test.", "CPU で短時間に試すための小さなモデル設定。"]),
        name=rng.choice(["tiny-ja-en", "sample-run", "cpu-smoke", "debug"]) + f"-{rng.randint(1, 99):02d}",
        seed=rng.randint(0, 9999), dim=rng.choice([64, 128, 256]), layers=rng.randint(2, 4),
        heads=rng.choice([2, 4]), seq=rng.choice([128, 256]), lr=rng.choice(["3.0e-4", "1.0e-3"]),
        warm=rng.choice([50, 100]), steps=rng.choice([500, 1000]), every=rng.choice([10, 25, 50])) + "\n"


def code_article(rng: random.Random, titled: bool) -> str:
    return weighted(rng, [(code_python, 16), (code_shell, 2), (code_json, 1), (code_yaml, 1)])(rng)


# ---------------------------------------------------------------------------
# Corpus assembly
# ---------------------------------------------------------------------------

# subset: (article builder, median document length in characters, can join articles)
SUBSETS = {"ja": (ja_article, 350, True), "en": (en_article, 700, True),
           "code": (code_article, 0, False)}


def make_document(rng: random.Random, subset: str) -> str | None:
    """One document: an article, or for prose several titled articles (a page
    of a newsletter or blog) until a randomly drawn length is reached."""
    build, median, join = SUBSETS[subset]
    articles = [build(rng, rng.random() < 0.7)]
    if join:
        target = min(MAX_CHARS - 200, rng.lognormvariate(math.log(median), 0.6))
        while len("\n\n".join(articles)) < max(MIN_CHARS, target):
            articles.append(build(rng, True))
        if len(articles) > 1 and len("\n\n".join(articles)) > MAX_CHARS:
            articles.pop()
    text = "\n\n".join(articles).strip("\n") if join else articles[0]
    return text if MIN_CHARS <= len(text) <= MAX_CHARS else None


def build_subset(seed: int, subset: str, target_bytes: int, exclude: set[str]) -> list[str]:
    rng = random.Random(f"{seed}:{subset}")
    lines, seen, size = [], set(), 0
    while size < target_bytes:
        text = make_document(rng, subset)
        if text is None or text in seen or text in exclude:
            continue
        seen.add(text)
        line = json.dumps({"text": text, "id": f"{subset}-{len(lines)}"}, ensure_ascii=False)
        lines.append(line)
        size += len(line.encode("utf-8")) + 1
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: the folder holding this script)")
    args = parser.parse_args(argv)
    train_texts: set[str] = set()
    for split, seed, fraction in (("train", TRAIN_SEED, 1.0), ("heldout", HELDOUT_SEED, HELDOUT_FRACTION)):
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        for subset, target in TARGET_BYTES.items():
            lines = build_subset(seed, subset, int(target * fraction), train_texts)
            if split == "train":
                train_texts.update(json.loads(line)["text"] for line in lines)
            data = ("\n".join(lines) + "\n").encode("utf-8")
            (folder / f"{subset}.jsonl").write_bytes(data)
            print(f"{split}/{subset}.jsonl: {len(lines)} documents, {len(data):,} bytes")


if __name__ == "__main__":
    main()
