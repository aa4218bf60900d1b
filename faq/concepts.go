package faq

import (
	"slices"
	"strings"
	"sync"
)

// The Chinese side of the FAQ is the rich one: most entries have many
// more Chinese wordings than English ones. The concept inventory below
// gives an English question the Chinese terms of its concepts, so that
// the classifier reads "my company stopped paying my medical insurance"
// with the features of 单位 停缴 医保, and what it learned from Chinese
// wordings helps English ones. Keys are English words in any form (they
// are reduced by the same stemming as questions); values are the
// canonical Chinese terms that normalize leaves in a Chinese question.
var concepts = map[string]string{
	"medical": "医保", "health": "医保", "yibao": "医保", "medicare": "医保",
	"social": "社保", "shebao": "社保",
	"insurance": "保险", "insured": "参保",
	"pension": "养老", "retire": "退休", "retirement": "退休", "retired": "退休", "elderly": "老人", "old": "老人",
	"unemployment": "失业", "unemployed": "失业", "jobless": "失业",
	"maternity": "生育", "pregnant": "怀孕", "pregnancy": "怀孕", "birth": "生孩子", "baby": "孩子", "newborn": "新生儿",
	"injury": "工伤", "injured": "受伤", "accident": "事故", "hurt": "受伤",
	"lapse": "断缴", "gap": "断缴", "missed": "断缴", "stopped": "停了", "break": "断缴", "interrupted": "断缴",
	"backpay": "补缴", "makeup": "补缴", "arrears": "欠缴",
	"employer": "单位", "company": "单位", "boss": "老板", "firm": "单位", "factory": "工厂",
	"employee": "职工", "staff": "职工", "worker": "职工",
	"resident": "居民", "residents": "居民", "rural": "农村", "farmer": "农民", "migrant": "农民工",
	"flexible": "灵活就业", "freelancer": "灵活就业", "freelance": "灵活就业", "selfemployed": "个体户",
	"balance": "余额", "account": "账户", "money": "钱",
	"query": "查询", "check": "查询", "record": "缴费记录", "statement": "权益记录单",
	"latefee": "滞纳金", "fine": "罚款", "penalty": "处罚",
	"abroad": "境外", "overseas": "境外", "foreign": "外国",
	"city": "异地", "province": "外省", "hometown": "老家", "travel": "外地",
	"reimburse": "报销", "claim": "报销", "cover": "报销",
	"hospital": "医院", "doctor": "看病", "treatment": "就医", "medicine": "药", "pharmacy": "药店", "prescription": "药",
	"surgery": "住院", "inpatient": "住院", "outpatient": "门诊",
	"card": "卡", "lost": "丢了", "lend": "借给", "borrow": "借",
	"transfer": "转移", "move": "转移", "relocate": "转移",
	"document": "材料", "bring": "材料", "proof": "证明",
	"complain": "投诉", "report": "举报", "arbitration": "仲裁", "sue": "起诉",
	"fraud": "骗保", "fake": "伪造", "cash": "套现",
	"register": "登记", "join": "参加", "enrol": "参保", "sign": "参保",
	"free": "免费", "fee": "收费", "charge": "收费", "cost": "费用", "pay": "缴", "contribution": "缴费", "premium": "保费",
	"wage": "工资", "salary": "工资", "base": "基数",
	"year": "年限", "month": "个月",
	"wait": "等待期", "waitperiod": "等待期", "waiting": "等待期",
	"family": "家人", "parent": "父母", "mother": "妈妈", "father": "爸爸", "child": "孩子", "son": "儿子", "daughter": "女儿",
	"wife": "老婆", "husband": "老公", "spouse": "配偶", "student": "学生", "university": "大学",
	"subsidy": "补贴", "poor": "困难", "disabled": "残疾",
	"law": "法", "article": "条", "new": "新",
	"tax": "税务", "bureau": "经办机构", "office": "窗口", "hotline": "热线",
	"privacy": "隐私", "secret": "保密",
	"covid": "疫情", "emergency": "急诊", "critical": "大病", "serious": "大病", "illness": "病",
	"dead": "去世", "died": "去世", "death": "去世", "inherit": "继承",
	"foreigner": "外国人", "expat": "外国人",
	"not": "不",
	// Pinyin people type for the words they know in Chinese.
	"shiye": "失业", "shiyejin": "失业金", "yanglao": "养老", "gongshang": "工伤", "shengyu": "生育", "zhigong": "职工", "jumin": "居民",
	"xinnonghe": "新农合", "getihu": "个体户", "hukou": "户口", "danwei": "单位", "laoban": "老板", "yidi": "异地", "beian": "备案",
	"zhinajin": "滞纳金", "baoxiao": "报销", "jiaofei": "缴费", "bujiao": "补缴", "duanjiao": "断缴", "yibaoka": "医保卡",
	"shebaoka": "社保卡", "gongjijin": "公积金", "tuixiu": "退休", "zhuanyi": "转移", "dengdaiqi": "等待期", "laowai": "外国人",
	"didi": "灵活就业", "meituan": "灵活就业", "delivery": "灵活就业", "rider": "灵活就业",
}

// conceptTerms maps stems (as enTerm leaves them) to the Chinese terms
// of every word with that stem, in a fixed order.
var conceptTerms = sync.OnceValue(func() map[string][]string {
	m := make(map[string][]string, len(concepts))
	for en, zh := range concepts {
		if t := enTerm(strings.ToLower(en)); t != "" && !slices.Contains(m[t], zh) {
			m[t] = append(m[t], zh)
		}
	}
	for _, zhs := range m {
		slices.Sort(zhs)
	}
	return m
})

// groups are the concepts an entry's scope can require or exclude, as
// the words that name them in a cleaned, lower-cased question (Chinese
// after normalize, English as typed).
var groups = map[string][]string{
	"abroad": {"境外", "国外", "出国", "海外", "外国", "国际", "美国", "日本", "韩国", "泰国", "新加坡", "马来西亚", "英国", "法国", "德国", "加拿大",
		"澳大利亚", "新西兰", "俄罗斯", "越南", "菲律宾", "印度", "欧洲", "香港", "澳门", "台湾", "港澳",
		"abroad", "overseas", "foreign country", "another country", "outside china", "out of china", "usa", "america", "japan", "korea",
		"thailand", "singapore", "malaysia", "britain", "england", "france", "germany", "canada", "australia", "europe",
		"hong kong", "macau", "macao", "taiwan", "vietnam", "philippines", "india", "russia"},
	"resident": {"居民", "新农合", "农合", "城乡", "学生", "学校", "孩子", "新生儿", "小孩", "resident", "rural", "xinnonghe", "student",
		"child", "kid", "baby", "newborn"},
	"employee": {"职工", "单位", "公司", "老板", "上班", "工作", "在职", "员工", "工资", "employee", "employer", "company", "boss", "job", "work",
		"salary", "wage", "staff"},
}

// inGroup reports whether text (normalized) names a concept of the group;
// English words must stand whole ("work" is not in "network").
func inGroup(text, group string) bool {
	for _, w := range groups[group] {
		for i := 0; ; {
			j := strings.Index(text[i:], w)
			if j < 0 {
				break
			}
			j += i
			end := j + len(w)
			if w[0] >= 0x80 || (!letterAt(text, j-1) && !letterAt(text, end)) {
				return true
			}
			i = end
		}
	}
	return false
}

func letterAt(s string, i int) bool {
	return i >= 0 && i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z')
}

// fits reports whether text is within the entry's scope: it names one of
// the concepts the entry requires, and it is not about the other scheme
// only.
func (e Entry) fits(text string) bool {
	if len(e.Requires) > 0 && !slices.ContainsFunc(e.Requires, func(g string) bool { return inGroup(text, g) }) {
		return false
	}
	switch e.Scope {
	case "employee":
		return !inGroup(text, "resident") || inGroup(text, "employee")
	case "resident":
		return !inGroup(text, "employee") || inGroup(text, "resident")
	}
	return true
}
