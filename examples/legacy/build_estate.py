#!/usr/bin/env python3
"""Build the ACME legacy customer estate used by the crmkit examples.

Deterministic generator (``random.Random(7)``, stdlib + xlsxwriter only) of a
small but realistically messy legacy estate of the Chinese company "ACME":

* ``erp.sqlite``           legacy ERP database (T_DEPT, T_SALES_REP, T_CUSTOMER,
                           T_OPPORTUNITY, T_CASE; every column TEXT)
* ``customers.xlsx``       the sales team's contact spreadsheet (sheet ``客户``)
* ``service_contacts.csv`` the service desk's contact list (GB18030 encoded)
* ``answer_key.json``      what was injected: row counts and the legacy keys
                           that a correct migration must reject, with a reason

Run from the repository root::

    .venv/bin/python examples/legacy/build_estate.py

Two runs produce byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import sqlite3
from pathlib import Path

import xlsxwriter

HERE = Path(__file__).resolve().parent
SEED = 7
EXCEL_EPOCH = dt.date(1899, 12, 30)  # Excel 1900 date system, serial 1 == 1900-01-01
FIXED_CREATED = dt.datetime(2024, 5, 1, 9, 0, 0)  # xlsx document properties

rng = random.Random(SEED)

# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def fullwidth(text: str) -> str:
    """ASCII letters/digits/punctuation -> full-width forms (space kept)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def excel_serial(d: dt.date) -> int:
    return (d - EXCEL_EPOCH).days


def rand_date(start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def fmt_legacy_date(d: dt.date) -> str:
    """One of the four date spellings found in the legacy ERP."""
    style = rng.choices([0, 1, 2, 3], weights=[4, 3, 2, 2])[0]
    if style == 0:
        return d.isoformat()  # 2021-03-04
    if style == 1:
        return f"{d.year}/{d.month}/{d.day}"  # 2021/3/4
    if style == 2:
        return d.strftime("%Y%m%d")  # 20210304
    return str(excel_serial(d))  # 44259 (Excel serial stored as text)


def digits(n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "177",
    "180",
    "181",
    "186",
    "187",
    "188",
    "189",
]


def cn_mobile_digits() -> str:
    return rng.choice(MOBILE_PREFIXES) + digits(8)


def fmt_cn_mobile(m: str) -> str:
    style = rng.choice([0, 1, 2])
    if style == 0:
        return f"+86 {m[:3]} {m[3:7]} {m[7:]}"  # +86 138 0013 8000
    if style == 1:
        return m  # 13800138000
    return f"{m[:3]}-{m[3:7]}-{m[7:]}"  # 138-0013-8000


def cn_landline(area: str) -> str:
    sub = digits(8, "5678")
    style = rng.choices([0, 1, 2, 3], weights=[4, 2, 2, 1])[0]
    if style == 0:
        return f"{area}-{sub}"  # 010-62345678
    if style == 1:
        return f"({area}) {sub[:4]} {sub[4:]}"  # (010) 6552 1234
    if style == 2:
        return f"{area} {sub[:4]} {sub[4:]}"  # 021 5012 3456
    return f"+86 {area[1:]} {sub}"  # +86 10 62345678


def us_phone(area: str) -> str:
    exchange = rng.choice("2346789") + digits(2)
    while exchange == "555" or exchange[1:] == "11":
        exchange = rng.choice("2346789") + digits(2)
    line = digits(4)
    if rng.random() < 0.5:
        return f"+1 {area}-{exchange}-{line}"  # +1 415-692-1234
    return f"({area}) {exchange}-{line}"  # (415) 692-1234


def de_phone(area: str) -> str:
    sub = digits(8, "2345678")
    if rng.random() < 0.5:
        return f"0{area} {sub}"  # 030 12345678
    return f"+49 {area} {sub[:7]}"  # +49 30 1234567


def de_mobile() -> str:
    return f"+49 15{rng.choice('127')} {digits(8, '23456789')}"


# --------------------------------------------------------------------------- #
# Reference data
# --------------------------------------------------------------------------- #

DEPTS = [
    ("SALES_N", "华北销售部", "North"),
    ("SALES_S", "华南销售部", "South"),
    ("SERVICE", "客户服务部", "East"),
]

# (code, name, email as typed in the ERP, dept, role)
REPS = [
    ("R01", "李伟", "li.wei@acme.example", "SALES_N", "经理"),
    ("R02", "王芳", " Wang.Fang@ACME.example", "SALES_N", "销售"),
    ("R03", "张磊", "zhang.lei@acme.example ", "SALES_N", "销售"),
    ("R04", "刘洋", "Liu.Yang@Acme.Example", "SALES_S", "经理"),
    ("R05", "陈静", "chen.jing@acme.example", "SALES_S", "销售"),
    ("R06", "杨帆", "  YANG.FAN@acme.example", "SALES_S", "销售"),
    ("R07", "赵敏", "zhao.min@acme.example", "SERVICE", "客服"),
    ("R08", "黄强", "huang.qiang@acme.example", "SERVICE", "管理员"),
    ("R09", "周涛", "zhou.tao@acme.example", "SALES_X", "销售"),  # orphan dept
]
BAD_REP = "R09"
REP_DEPT = {r[0]: r[3] for r in REPS}
NORTH_REPS = ["R01", "R02", "R03"]
SOUTH_REPS = ["R04", "R05", "R06"]

# (city, area code, region, districts/streets)
CN_CITIES = [
    ("北京", "010", "N", ["海淀区中关村大街", "朝阳区建国路", "东城区东直门南大街", "西城区金融大街"]),
    ("上海", "021", "N", ["浦东新区张江路", "徐汇区漕溪北路", "静安区南京西路"]),
    ("广州", "020", "S", ["天河区天河路", "越秀区环市东路", "黄埔区科学大道"]),
    ("深圳", "0755", "S", ["南山区科技园南路", "福田区深南大道", "宝安区新安六路"]),
    ("杭州", "0571", "N", ["西湖区文三路", "滨江区江南大道"]),
    ("南京", "025", "N", ["鼓楼区中山北路", "江宁区胜太路"]),
    ("成都", "028", "S", ["高新区天府大道", "锦江区春熙路"]),
    ("武汉", "027", "S", ["洪山区珞喻路", "江汉区解放大道"]),
    ("天津", "022", "N", ["和平区南京路", "滨海新区第三大街"]),
    ("苏州", "0512", "N", ["工业园区星湖街", "姑苏区人民路"]),
]

# (brand, pinyin for web/email domains)
BRANDS = [
    ("星辰", "xingchen"),
    ("华信", "huaxin"),
    ("宏达", "hongda"),
    ("恒通", "hengtong"),
    ("瑞丰", "ruifeng"),
    ("金桥", "jinqiao"),
    ("天成", "tiancheng"),
    ("博远", "boyuan"),
    ("安泰", "antai"),
    ("鼎盛", "dingsheng"),
    ("锦程", "jincheng"),
    ("云帆", "yunfan"),
    ("启明", "qiming"),
    ("润泽", "runze"),
    ("万通", "wantong"),
    ("九州", "jiuzhou"),
    ("远景", "yuanjing"),
    ("卓越", "zhuoyue"),
    ("致远", "zhiyuan"),
    ("明德", "mingde"),
    ("长风", "changfeng"),
    ("新纪元", "xinjiyuan"),
    ("汇智", "huizhi"),
    ("海创", "haichuang"),
    ("同舟", "tongzhou"),
    ("中联", "zhonglian"),
    ("凯达", "kaida"),
    ("嘉禾", "jiahe"),
    ("银河", "yinhe"),
    ("东升", "dongsheng"),
    ("弘毅", "hongyi"),
    ("正泰", "zhengtai"),
    ("百川", "baichuan"),
    ("蓝海", "lanhai"),
    ("晨光", "chenguang"),
    ("永信", "yongxin"),
    ("华美", "huamei"),
    ("方正", "fangzheng"),
    ("利达", "lida"),
    ("盛世", "shengshi"),
    ("青松", "qingsong"),
    ("光华", "guanghua"),
    ("泰和", "taihe"),
    ("德润", "derun"),
    ("腾跃", "tengyue"),
    ("众合", "zhonghe"),
    ("新源", "xinyuan"),
    ("思创", "sichuang"),
    ("联拓", "liantuo"),
    ("宇航", "yuhang"),
]

# (word in the company name, INDUSTRY)
TRADES = [
    ("科技", "信息技术"),
    ("信息技术", "信息技术"),
    ("软件", "信息技术"),
    ("贸易", "批发零售"),
    ("商贸", "批发零售"),
    ("机械", "制造业"),
    ("电子", "制造业"),
    ("精密制造", "制造业"),
    ("物流", "交通物流"),
    ("供应链管理", "交通物流"),
    ("医药", "医疗健康"),
    ("医疗器械", "医疗健康"),
    ("教育咨询", "教育"),
    ("新能源", "能源"),
    ("食品", "食品饮料"),
    ("建设工程", "建筑"),
    ("金融服务", "金融"),
]
SUFFIXES = ["有限公司", "有限公司", "有限公司", "股份有限公司", "有限责任公司"]

US_CUSTOMERS = [
    ("Bayshore Analytics Inc.", "信息技术", "415", "San Francisco", "1 Market St, Suite 300", "bayshore-analytics.com"),
    ("Hudson Supply LLC", "批发零售", "212", "New York", "350 W 31st St", "hudsonsupply.com"),
    ("Sequoia Robotics Corp.", "制造业", "650", "Palo Alto", "2400 El Camino Real", "sequoiarobotics.com"),
    ("Golden Gate Foods Inc.", "食品饮料", "415", "San Francisco", "88 Kearny St", "goldengatefoods.com"),
    ("Empire Logistics LLC", "交通物流", "212", "New York", "120 Broadway, 20th Floor", "empirelogistics.com"),
]
DE_CUSTOMERS = [
    ("Müller Maschinenbau GmbH", "制造业", "30", "Berlin", "Friedrichstraße 123", "mueller-maschinenbau.de"),
    ("Hansa Handels GmbH", "批发零售", "40", "Hamburg", "Speicherstadt 5", "hansa-handels.de"),
    ("Bayern Medizintechnik AG", "医疗健康", "89", "München", "Leopoldstraße 44", "bayern-medtech.de"),
    ("Schmidt Logistik GmbH", "交通物流", "30", "Berlin", "Kurfürstendamm 21", "schmidt-logistik.de"),
]

SURNAMES = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
    ("许", "xu"),
    ("韩", "han"),
    ("冯", "feng"),
    ("邓", "deng"),
    ("曹", "cao"),
]
GIVEN = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("秀英", "xiuying"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀兰", "xiulan"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("建华", "jianhua"),
    ("志强", "zhiqiang"),
    ("晓东", "xiaodong"),
    ("海燕", "haiyan"),
    ("文博", "wenbo"),
    ("子涵", "zihan"),
    ("雨萱", "yuxuan"),
    ("浩然", "haoran"),
    ("思远", "siyuan"),
    ("佳怡", "jiayi"),
]
WESTERN_NAMES = {
    "US": [
        "John Miller",
        "Emily Carter",
        "Michael Chen",
        "Sarah Johnson",
        "David Park",
        "Jessica Wong",
        "Robert Brown",
        "Laura Davis",
    ],
    "DE": ["Anna Schmidt", "Thomas Müller", "Julia Weber", "Stefan Becker", "Katrin Wagner", "Markus Hoffmann"],
}
TITLES = [
    "总经理",
    "采购经理",
    "IT主管",
    "财务总监",
    "行政专员",
    "技术总监",
    "销售经理",
    "项目经理",
    "董事长助理",
    "运营总监",
    "采购专员",
]
FREE_MAIL = ["163.com", "qq.com", "126.com", "sina.com"]


def person_name() -> tuple[str, str, str]:
    """(Chinese full name, surname pinyin, given pinyin)."""
    s, sp = rng.choice(SURNAMES)
    g, gp = rng.choice(GIVEN)
    return s + g, sp, gp


def messy_email(local: str, domain: str) -> str:
    addr = f"{local}@{domain}"
    r = rng.random()
    if r < 0.15:
        addr = addr.upper()
    elif r < 0.35:
        addr = local.title() + "@" + domain
    r = rng.random()
    if r < 0.12:
        addr = " " + addr
    elif r < 0.24:
        addr = addr + " "
    return addr


# --------------------------------------------------------------------------- #
# T_CUSTOMER
# --------------------------------------------------------------------------- #

N_CUSTOMERS = 60
CUST_KEYS = [f"C{1001 + i}" for i in range(N_CUSTOMERS)]

# Injected problems (key -> (reason class, human detail))
CUST_EMPTY_NAME = "C1007"
CUST_BAD_REP = "C1015"
CUST_CASCADE_REP = "C1023"
CUST_BAD_DATE = "C1034"
CUST_BAD_TEL = "C1046"
CUSTOMER_REJECTS = {
    CUST_EMPTY_NAME: ("missing_required", "CUST_NAME is empty"),
    CUST_BAD_REP: ("orphan_reference", "SALES_REP R99 does not exist in T_SALES_REP"),
    CUST_CASCADE_REP: ("cascade_orphan", f"SALES_REP {BAD_REP} is itself rejected (DEPT_CODE SALES_X)"),
    CUST_BAD_DATE: ("invalid_date", "CREATE_DT 2021-13-45 is not a date"),
    CUST_BAD_TEL: ("invalid_phone", "TEL 12345 is not a phone number"),
}
BAD_CUSTOMERS = list(CUSTOMER_REJECTS)


# customer index -> (city, rest of the name, pinyin, INDUSTRY): names with full-width Latin/digits
FULLWIDTH_CUST = {
    3: ("上海", fullwidth("ABC") + "贸易有限公司", "abc-trade", "批发零售"),
    19: ("深圳", "星辰" + fullwidth("1") + "号科技有限公司", "xc1hao", "信息技术"),
    41: ("北京", fullwidth("IT100") + "信息技术有限公司", "it100", "信息技术"),
}


def build_customers() -> list[dict]:
    # Country per row: 48 中国, 3 already 'CN', 5 美国, 4 德国; injected rows stay Chinese.
    free = [i for i, k in enumerate(CUST_KEYS) if k not in CUSTOMER_REJECTS and i not in FULLWIDTH_CUST]
    foreign = rng.sample(free, len(US_CUSTOMERS) + len(DE_CUSTOMERS) + 3)
    country_of = {}
    for j, idx in enumerate(sorted(foreign[: len(US_CUSTOMERS)])):
        country_of[idx] = ("美国", j)
    for j, idx in enumerate(sorted(foreign[len(US_CUSTOMERS) : len(US_CUSTOMERS) + len(DE_CUSTOMERS)])):
        country_of[idx] = ("德国", j)
    for idx in foreign[len(US_CUSTOMERS) + len(DE_CUSTOMERS) :]:
        country_of[idx] = ("CN", None)

    brands = BRANDS[:]
    rng.shuffle(brands)
    padded = {11: " {}", 27: "{}  ", 38: "  {} ", 52: "{}\u3000"}  # leading/trailing blanks

    customers = []
    used_names: list[str] = []
    for i, key in enumerate(CUST_KEYS):
        country, fidx = country_of.get(i, ("中国", None))
        c: dict = {"CUST_NO": key, "COUNTRY": country}
        if country == "美国":
            name, industry, area, city, addr, domain = US_CUSTOMERS[fidx]
            c.update(CUST_NAME=name, INDUSTRY=industry, TEL=us_phone(area), ADDR=addr, CITY=city)
            c["SALES_REP"] = rng.choice(NORTH_REPS + SOUTH_REPS)
            c["WEBSITE"] = rng.choice(["http://www." + domain, "https://" + domain, ""])
            c["_domain"], c["_cc"], c["_area"] = domain, "US", area
        elif country == "德国":
            name, industry, area, city, addr, domain = DE_CUSTOMERS[fidx]
            c.update(CUST_NAME=name, INDUSTRY=industry, TEL=de_phone(area), ADDR=addr, CITY=city)
            c["SALES_REP"] = rng.choice(NORTH_REPS + SOUTH_REPS)
            c["WEBSITE"] = rng.choice(["http://www." + domain, "www." + domain, ""])
            c["_domain"], c["_cc"], c["_area"] = domain, "DE", area
        else:
            if i in FULLWIDTH_CUST:
                city_name, rest, py, industry = FULLWIDTH_CUST[i]
                city = next(x for x in CN_CITIES if x[0] == city_name)
                name = city_name + rest
            else:
                city = rng.choice(CN_CITIES)
                while True:
                    brand, py = brands.pop()
                    trade, industry = rng.choice(TRADES)
                    name = f"{city[0]}{brand}{trade}{rng.choice(SUFFIXES)}"
                    if name not in used_names:
                        break
            used_names.append(name)
            city_name, area, region, streets = city
            c["CUST_NAME"] = name
            c["INDUSTRY"] = industry
            c["TEL"] = cn_landline(area) if rng.random() < 0.8 else fmt_cn_mobile(cn_mobile_digits())
            c["ADDR"] = f"{city_name}市{rng.choice(streets)}{rng.randint(1, 399)}号"
            c["CITY"] = rng.choice([city_name, city_name + "市"])
            c["SALES_REP"] = rng.choice(NORTH_REPS if region == "N" else SOUTH_REPS)
            domain = py + rng.choice([".cn", ".com", ".com.cn"])
            c["WEBSITE"] = rng.choices(
                ["", "www." + domain, "http://" + domain, "http://www." + domain], weights=[4, 3, 2, 2]
            )[0]
            c["_domain"], c["_cc"], c["_area"] = domain, "CN", area
        if i in padded:
            c["CUST_NAME"] = padded[i].format(c["CUST_NAME"])
        c["DEPT_CODE"] = REP_DEPT[c["SALES_REP"]]
        c["LEVEL"] = rng.choices("ABC", weights=[2, 4, 3])[0]
        c["CREATE_DT"] = fmt_legacy_date(rand_date(dt.date(2019, 1, 1), dt.date(2023, 12, 31)))
        customers.append(c)

    by_key = {c["CUST_NO"]: c for c in customers}
    by_key[CUST_EMPTY_NAME]["CUST_NAME"] = ""
    by_key[CUST_BAD_REP]["SALES_REP"] = "R99"  # DEPT_CODE stays valid
    by_key[CUST_CASCADE_REP]["SALES_REP"] = BAD_REP  # DEPT_CODE stays valid (SALES_N)
    by_key[CUST_CASCADE_REP]["DEPT_CODE"] = "SALES_N"
    by_key[CUST_BAD_DATE]["CREATE_DT"] = "2021-13-45"
    by_key[CUST_BAD_TEL]["TEL"] = "12345"
    return customers


# --------------------------------------------------------------------------- #
# T_OPPORTUNITY
# --------------------------------------------------------------------------- #

N_OPPS = 80
STAGES = ["初步接洽", "需求确认", "方案报价", "商务谈判", "赢单", "输单"]
OPP_TOPICS = [
    "ERP升级项目",
    "年度维保合同",
    "数据中心扩容",
    "CRM实施项目",
    "生产设备采购",
    "办公网络改造",
    "云服务订阅",
    "仓储系统建设",
    "培训服务包",
    "安全审计服务",
    "备件年度框架协议",
    "二期扩展项目",
]


def fmt_amount(value: float) -> str:
    style = rng.choice([0, 1, 2])
    if style == 0:
        return f"{value:,.2f}"  # 1,234,567.00
    if style == 1:
        return str(int(value))  # 85000
    return f"{int(value) + 0.5}"  # 12000.5


def currency_for(cc: str) -> str:
    if cc == "US":
        return rng.choice(["USD", "USD", "美元"])
    if cc == "DE":
        return "EUR"
    return rng.choices(["CNY", "RMB", "人民币", "USD"], weights=[5, 3, 3, 1])[0]


def short_name(name: str) -> str:
    name = name.strip()
    for s in ("股份有限公司", "有限责任公司", "有限公司"):
        if name.endswith(s):
            return name[: -len(s)]
    return name + " "  # foreign company: keep the full name


def build_opportunities(customers: list[dict]):
    by_key = {c["CUST_NO"]: c for c in customers}
    good = [c["CUST_NO"] for c in customers if c["CUST_NO"] not in CUSTOMER_REJECTS]
    keys = [f"O{5001 + i}" for i in range(N_OPPS)]
    special = rng.sample(range(N_OPPS), len(BAD_CUSTOMERS) + 3)
    cascade_pos = dict(zip(special[: len(BAD_CUSTOMERS)], BAD_CUSTOMERS))
    orphan_pos = dict(zip(special[len(BAD_CUSTOMERS) : len(BAD_CUSTOMERS) + 2], ["C9999", "C8888"]))
    abc_pos = special[-1]

    rows, rejects = [], {}
    for i, key in enumerate(keys):
        if i in cascade_pos:
            cust = cascade_pos[i]
        elif i in orphan_pos:
            cust = orphan_pos[i]
        else:
            cust = rng.choice(good)
        c = by_key.get(cust)
        if c is not None:
            label = short_name(c["CUST_NAME"]) or "客户"
            cc = c["_cc"]
            rep = c["SALES_REP"] if c["SALES_REP"] in NORTH_REPS + SOUTH_REPS else rng.choice(NORTH_REPS)
        else:
            label, cc, rep = "老客户", "CN", rng.choice(NORTH_REPS + SOUTH_REPS)
        stage = rng.choices(STAGES, weights=[3, 3, 3, 2, 4, 2])[0]
        amount = rng.choice(
            [
                rng.randint(5, 95) * 1000,
                rng.randint(10, 900) * 1000,
                rng.randint(100, 2500) * 1000 + rng.randint(0, 999),
            ]
        )
        if cc == "US" or cc == "DE":
            amount = rng.randint(8, 400) * 500
        close = rand_date(dt.date(2022, 1, 1), dt.date(2024, 12, 31))
        rows.append(
            {
                "OPP_ID": key,
                "CUST_NO": cust,
                "OPP_NAME": f"{label}{rng.choice(OPP_TOPICS)}",
                "STAGE": stage,
                "AMOUNT": fmt_amount(amount),
                "CURRENCY": currency_for(cc),
                "CLOSE_DT": fmt_legacy_date(close),
                "REP_CODE": rep,
            }
        )
        if i in cascade_pos:
            rejects[key] = ("cascade_orphan", f"customer {cust} is rejected ({CUSTOMER_REJECTS[cust][0]})")
        elif i in orphan_pos:
            rejects[key] = ("orphan_reference", f"CUST_NO {cust} does not exist in T_CUSTOMER")
    rows[abc_pos]["AMOUNT"] = "abc"
    rejects[keys[abc_pos]] = ("invalid_number", "AMOUNT 'abc' is not a number")
    return rows, {k: rejects[k] for k in keys if k in rejects}


# --------------------------------------------------------------------------- #
# T_CASE
# --------------------------------------------------------------------------- #

N_CASES = 40
CASE_TITLES = [
    "发票开具错误",
    "系统登录失败",
    "设备故障报修",
    "合同续签咨询",
    "数据导出异常",
    "账号权限申请",
    "交付延期投诉",
    "培训需求",
    "报表数据不一致",
    "备件更换申请",
    "接口调用超时",
    "账单金额疑问",
]
SLA_BY_PRIORITY = {"高": "24", "中": "48", "低": "72"}


def build_cases(customers: list[dict]):
    good = [c["CUST_NO"] for c in customers if c["CUST_NO"] not in CUSTOMER_REJECTS]
    keys = [f"K{9001 + i}" for i in range(N_CASES)]
    orphan_pos = rng.randrange(N_CASES)
    rows, rejects = [], {}
    for i, key in enumerate(keys):
        cust = "C1099" if i == orphan_pos else rng.choice(good)
        status = rng.choices(["新建", "处理中", "已关闭"], weights=[2, 3, 5])[0]
        priority = rng.choices(["高", "中", "低"], weights=[2, 5, 3])[0]
        opened = dt.datetime.combine(
            rand_date(dt.date(2023, 1, 1), dt.date(2024, 4, 28)),
            dt.time(rng.randint(8, 18), rng.choice([0, 10, 15, 20, 30, 45, 50])),
        )
        closed = None
        if status == "已关闭":
            closed = opened + dt.timedelta(hours=rng.randint(1, 96), minutes=rng.choice([0, 15, 30, 45]))
        rows.append(
            {
                "CASE_NO": key,
                "CUST_NO": cust,
                "TITLE": rng.choice(CASE_TITLES),
                "STATUS": status,
                "PRIORITY": priority,
                "OPEN_TIME": opened.strftime("%Y-%m-%d %H:%M:%S"),
                "CLOSE_TIME": closed.strftime("%Y-%m-%d %H:%M:%S") if closed else None,
                "SLA_HOURS": SLA_BY_PRIORITY[priority],
            }
        )
        if i == orphan_pos:
            rejects[key] = ("orphan_reference", f"CUST_NO {cust} does not exist in T_CUSTOMER")
    return rows, rejects


# --------------------------------------------------------------------------- #
# erp.sqlite
# --------------------------------------------------------------------------- #

TABLES = {
    "T_DEPT": ["DEPT_CODE", "DEPT_NAME", "REGION"],
    "T_SALES_REP": ["REP_CODE", "REP_NAME", "EMAIL", "DEPT_CODE", "ROLE"],
    "T_CUSTOMER": [
        "CUST_NO",
        "CUST_NAME",
        "INDUSTRY",
        "TEL",
        "COUNTRY",
        "ADDR",
        "CITY",
        "SALES_REP",
        "DEPT_CODE",
        "LEVEL",
        "CREATE_DT",
        "WEBSITE",
    ],
    "T_OPPORTUNITY": ["OPP_ID", "CUST_NO", "OPP_NAME", "STAGE", "AMOUNT", "CURRENCY", "CLOSE_DT", "REP_CODE"],
    "T_CASE": ["CASE_NO", "CUST_NO", "TITLE", "STATUS", "PRIORITY", "OPEN_TIME", "CLOSE_TIME", "SLA_HOURS"],
}


def write_sqlite(path: Path, data: dict[str, list]) -> None:
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    try:
        for table, cols in TABLES.items():
            ddl = ", ".join(f"{c} TEXT" + (" PRIMARY KEY" if j == 0 else "") for j, c in enumerate(cols))
            con.execute(f"CREATE TABLE {table} ({ddl})")
            rows = [tuple(r[c] for c in cols) if isinstance(r, dict) else tuple(r) for r in data[table]]
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()


# --------------------------------------------------------------------------- #
# customers.xlsx
# --------------------------------------------------------------------------- #

N_CONTACTS = 80
XLSX_HEADERS = ["编号", "客户编号", "联系人", "职务", "手机", "电话", "邮箱", "生日", "是否同意联系"]
XLSX_FIRST_DATA_ROW = 4  # spreadsheet row (1-based); title row 1, export date row 2, header row 3
XLSX_BLANK_AFTER = 41  # the blank row follows the 41st contact
# (name as typed, surname pinyin, given-name pinyin)
PINYIN_NAMES = [
    ("Zhang Wei", "zhang", "wei"),
    ("Wang Fang", "wang", "fang"),
    ("Chen Jing", "chen", "jing"),
    ("Liu Yang", "liu", "yang"),
]
FULLWIDTH_NAMES = [
    (fullwidth("LI") + " " + fullwidth("Lei"), "li", "lei"),
    (fullwidth("ZHAO") + " " + fullwidth("Min"), "zhao", "min"),
]


def build_contacts(customers: list[dict]):
    """Returns (sheet rows, answer-key entry). A sheet row is None for the blank row."""
    by_key = {c["CUST_NO"]: c for c in customers}
    good = [c["CUST_NO"] for c in customers if c["CUST_NO"] not in CUSTOMER_REJECTS]
    special = rng.sample(range(5, N_CONTACTS), len(BAD_CUSTOMERS) + 3)
    cascade_pos = dict(zip(special[: len(BAD_CUSTOMERS)], BAD_CUSTOMERS))
    orphan_pos, bad_email_pos, dup_pos = special[len(BAD_CUSTOMERS) :]
    plain = [i for i in range(dup_pos) if i not in special]
    dup_of = rng.choice(plain)
    pinyin_pos = rng.sample([i for i in range(N_CONTACTS) if i not in special], 6)
    name_override = dict(zip(pinyin_pos, PINYIN_NAMES + FULLWIDTH_NAMES))

    contacts, keys = [], []
    counter = 0
    for i in range(N_CONTACTS):
        if i == dup_pos:
            key = keys[dup_of]
        else:
            counter += 1
            key = f"P{counter:04d}"
        keys.append(key)
        if i in cascade_pos:
            cust = cascade_pos[i]
        elif i == orphan_pos:
            cust = "C7777"
        else:
            cust = rng.choice(good)
        c = by_key.get(cust)
        cc = c["_cc"] if c else "CN"
        domain = c["_domain"] if c else "qq.com"

        if cc in WESTERN_NAMES and i not in name_override:
            name = rng.choice(WESTERN_NAMES[cc])
            first, last = name.lower().replace("ü", "ue").split(" ")
            email = messy_email(f"{first}.{last}", domain)
        else:
            name, sp, gp = person_name()
            if i in name_override:
                name, sp, gp = name_override[i]
            local = rng.choice([f"{sp}.{gp}", f"{sp}{gp}", f"{gp}.{sp}"])
            email = messy_email(local, domain if rng.random() < 0.7 else rng.choice(FREE_MAIL))
        if i == bad_email_pos:
            email = "not-an-email"

        # mobile: numeric cell, or text in various spellings
        if cc == "US":
            mobile = us_phone(c["_area"])
        elif cc == "DE":
            mobile = de_mobile()
        else:
            m = cn_mobile_digits()
            style = rng.choices([0, 1, 2, 3], weights=[4, 3, 3, 1])[0]
            mobile = (int(m), f"{m[:3]}-{m[3:7]}-{m[7:]}", f"+86 {m[:3]} {m[3:7]} {m[7:]}", m)[style]

        if rng.random() < 0.55:
            if cc == "US":
                phone = us_phone(c["_area"])
            elif cc == "DE":
                phone = de_phone(c["_area"])
            else:
                phone = cn_landline(c["_area"] if c else "010")
        else:
            phone = None

        bday = rand_date(dt.date(1965, 1, 1), dt.date(1998, 12, 31))
        kind = rng.choices(["cell", "cell2", "slash", "iso", "serial", "none"], weights=[5, 2, 3, 3, 3, 2])[0]
        birthday = {
            "cell": ("date", bday, "yyyy-mm-dd"),
            "cell2": ("date", bday, "yyyy/m/d"),
            "slash": bday.strftime("%Y/%m/%d"),
            "iso": bday.isoformat(),
            "serial": excel_serial(bday),
            "none": None,
        }[kind]
        consent = rng.choices(["是", "否", None], weights=[6, 2, 2])[0]
        contacts.append([key, cust, name, rng.choice(TITLES), mobile, phone, email, birthday, consent])

    # sheet rows: insert the blank row
    sheet_rows = contacts[:XLSX_BLANK_AFTER] + [None] + contacts[XLSX_BLANK_AFTER:]

    def row_of(contact_index: int) -> int:
        return XLSX_FIRST_DATA_ROW + contact_index + (1 if contact_index >= XLSX_BLANK_AFTER else 0)

    rej = {}  # contact index -> (reason, detail)
    for i, cust in cascade_pos.items():
        rej[i] = ("cascade_orphan", f"customer {cust} is rejected ({CUSTOMER_REJECTS[cust][0]})")
    rej[orphan_pos] = ("orphan_reference", "客户编号 C7777 does not exist in T_CUSTOMER")
    rej[bad_email_pos] = ("invalid_email", "邮箱 'not-an-email'")
    rej[dup_pos] = ("duplicate_key", f"编号 {keys[dup_pos]} already used on row {row_of(dup_of)}")
    order = sorted(rej)
    entry = {
        "sheet": "客户",
        "header_row": XLSX_FIRST_DATA_ROW - 1,
        "first_data_row": XLSX_FIRST_DATA_ROW,
        "rows": len(sheet_rows),
        "contact_rows": N_CONTACTS,
        "blank_rows": [XLSX_FIRST_DATA_ROW + XLSX_BLANK_AFTER],
        "rejects": {keys[i]: rej[i][0] for i in order},
        "rejects_by_row": {str(row_of(i)): rej[i][0] for i in order},
        "details": {str(row_of(i)): f"{keys[i]}: {rej[i][1]}" for i in order},
    }
    return sheet_rows, entry


def write_xlsx(path: Path, sheet_rows: list) -> None:
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties(
        {
            "title": "ACME 公司客户联系人名单",
            "author": "ACME 销售部",
            "company": "ACME",
            "created": FIXED_CREATED,
        }
    )
    ws = wb.add_worksheet("客户")
    title_fmt = wb.add_format({"bold": True, "font_size": 14, "align": "center", "valign": "vcenter"})
    head_fmt = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
    date_fmts = {f: wb.add_format({"num_format": f}) for f in ("yyyy-mm-dd", "yyyy/m/d")}

    ws.merge_range(0, 0, 0, len(XLSX_HEADERS) - 1, "ACME 公司客户联系人名单", title_fmt)
    ws.set_row(0, 24)
    ws.write_string(1, 0, "导出日期：2024-05-01")
    for j, h in enumerate(XLSX_HEADERS):
        ws.write_string(2, j, h, head_fmt)
    for j, width in enumerate([8, 10, 14, 12, 20, 18, 32, 12, 12]):
        ws.set_column(j, j, width)
    ws.freeze_panes(3, 0)

    for r, row in enumerate(sheet_rows, start=XLSX_FIRST_DATA_ROW - 1):
        if row is None:
            continue  # the completely blank row
        for j, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, tuple):  # real date cell
                _, d, f = v
                ws.write_datetime(r, j, dt.datetime.combine(d, dt.time()), date_fmts[f])
            elif isinstance(v, int):
                ws.write_number(r, j, v)
            else:
                ws.write_string(r, j, v)
    last = XLSX_FIRST_DATA_ROW - 1 + len(sheet_rows) - 1
    ws.autofilter(2, 0, last, len(XLSX_HEADERS) - 1)
    wb.close()


# --------------------------------------------------------------------------- #
# service_contacts.csv (GB18030)
# --------------------------------------------------------------------------- #

N_SERVICE = 30
CSV_HEADER = ["编号", "客户编号", "姓名", "电话", "邮箱", "备注"]
REMARKS = [
    "",
    "",
    "",
    "重要客户",
    "周末请勿联系",
    "只接受邮件联系",
    "上午联系为宜",
    "已签年度服务合同",
    "对接人休产假至6月",
    "需要英文沟通",
]


def build_service_contacts(customers: list[dict]):
    by_key = {c["CUST_NO"]: c for c in customers}
    good = [c["CUST_NO"] for c in customers if c["CUST_NO"] not in CUSTOMER_REJECTS and c["_cc"] == "CN"]
    keys = [f"S{i + 1:03d}" for i in range(N_SERVICE)]
    orphan_pos, comma_pos, newline_pos = rng.sample(range(N_SERVICE), 3)
    rows, rejects = [], {}
    for i, key in enumerate(keys):
        cust = "C1066" if i == orphan_pos else rng.choice(good)
        c = by_key.get(cust)
        name, sp, gp = person_name()
        if rng.random() < 0.5:
            phone = fmt_cn_mobile(cn_mobile_digits())
        else:
            phone = cn_landline(c["_area"] if c else "021")
        domain = c["_domain"] if c else rng.choice(FREE_MAIL)
        email = messy_email(f"{sp}.{gp}", domain if rng.random() < 0.6 else rng.choice(FREE_MAIL))
        remark = rng.choice(REMARKS)
        if i == comma_pos:
            remark = "VIP客户, 报修优先处理"
        elif i == newline_pos:
            remark = "地址已变更\n新地址待客户确认"
        rows.append([key, cust, name, phone, email, remark])
        if i == orphan_pos:
            rejects[key] = ("orphan_reference", f"客户编号 {cust} does not exist in T_CUSTOMER")
    return rows, rejects


def write_csv(path: Path, rows: list) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("gb18030"))


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #


def key_entry(rows: int, rejects: dict) -> dict:
    return {
        "rows": rows,
        "rejects": {k: v[0] for k, v in rejects.items()},
        "details": {k: v[1] for k, v in rejects.items()},
    }


def main() -> None:
    customers = build_customers()
    opps, opp_rejects = build_opportunities(customers)
    cases, case_rejects = build_cases(customers)
    sheet_rows, xlsx_entry = build_contacts(customers)
    service, service_rejects = build_service_contacts(customers)

    write_sqlite(
        HERE / "erp.sqlite",
        {
            "T_DEPT": DEPTS,
            "T_SALES_REP": REPS,
            "T_CUSTOMER": customers,
            "T_OPPORTUNITY": opps,
            "T_CASE": cases,
        },
    )
    write_xlsx(HERE / "customers.xlsx", sheet_rows)
    write_csv(HERE / "service_contacts.csv", service)

    answer = {
        "T_DEPT": key_entry(len(DEPTS), {}),
        "T_SALES_REP": key_entry(
            len(REPS), {BAD_REP: ("orphan_reference", "DEPT_CODE SALES_X does not exist in T_DEPT")}
        ),
        "T_CUSTOMER": key_entry(len(customers), CUSTOMER_REJECTS),
        "T_OPPORTUNITY": key_entry(len(opps), opp_rejects),
        "T_CASE": key_entry(len(cases), case_rejects),
        "customers.xlsx": xlsx_entry,
        "service_contacts.csv": key_entry(len(service), service_rejects),
    }
    (HERE / "answer_key.json").write_text(json.dumps(answer, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    for name in ("erp.sqlite", "customers.xlsx", "service_contacts.csv", "answer_key.json"):
        print(f"{name:22s} {(HERE / name).stat().st_size:>7d} bytes")


if __name__ == "__main__":
    main()
