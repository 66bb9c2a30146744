"""The national platform's code tables that more than one domain shows to people: 险种 (insutype) and 医疗类别
(med_type), in Chinese, short Chinese and English. One table each, so a page, a statement, an export and a
report never name one code two ways. (Codes a domain only validates stay with the domain's rules.)
"""

from __future__ import annotations

# 险种类型 (医保信息业务编码标准): 410 is 长期照护保险, 510 生育保险
INSUTYPE_NAMES = {
    "310": "职工基本医疗保险", "320": "公务员医疗补助", "330": "职工大额医疗费用补助", "340": "离休人员医疗保障",
    "390": "城乡居民基本医疗保险", "392": "城乡居民大病医疗保险", "410": "长期照护保险", "510": "生育保险",
}
INSUTYPE_SHORT = {"310": "职工", "320": "公务员", "330": "大额", "340": "离休", "390": "居民", "392": "大病",
                  "410": "长护", "510": "生育"}
INSUTYPE_ENGLISH = {"310": "employee", "320": "civil servant", "330": "major medical", "340": "retired cadre",
                    "390": "resident", "392": "critical illness", "410": "long-term care", "510": "maternity"}

# 医疗类别
MED_TYPE_NAMES = {"11": "普通门诊", "13": "急诊", "14": "门诊慢特病", "21": "普通住院", "41": "定点药店购药",
                  "51": "生育门诊", "52": "生育住院"}
MED_TYPE_ENGLISH = {"11": "outpatient", "13": "emergency", "14": "chronic outpt.", "21": "inpatient",
                    "41": "pharmacy", "51": "maternity outpt.", "52": "maternity"}
