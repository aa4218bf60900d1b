package faq

import (
	"sort"
	"strings"
	"unicode"

	"github.com/kljensen/snowball/english"
)

// zhVariants maps the many ways people write one idea onto one canonical
// form, so that a colloquial question and a curated wording share bigrams.
// It runs on the raw text before tokenising, after zhPayFold (so variants
// are written with 缴); longer variants win (see newReplacer).
var zhVariants = map[string][]string{
	"断缴":   {"中断缴费", "中断", "停保", "断了", "停缴", "停交", "断保", "断档", "断开", "没续", "停了", "不交了", "没交了", "没缴了"},
	"补缴":   {"续缴", "续上", "接上", "补上", "补费", "补齐", "补足", "续费", "补办缴费", "补回来", "补回"},
	"职工医保": {"职工基本医疗保险", "职工医疗保险", "职工医保", "城镇职工医保"},
	"居民医保": {"城乡居民基本医疗保险", "城乡居民医疗保险", "城乡居民医保", "居民基本医疗保险", "居民医疗保险", "新农合", "城镇居民医保"},
	"医保":   {"基本医疗保险", "医疗保险", "医保卡", "医保", "医宝", "医疗保线"},
	"社保":   {"社会保险", "社保", "社宝", "社会保线"},
	"报销":   {"报消", "报账", "能报吗", "报不报", "给报"},
	"滞纳金":  {"滞纳费", "滞留金", "滞纳金"},
	"罚款":   {"罚钱", "处罚", "罚款", "罚金"},
	"单位":   {"用人单位", "公司", "老板", "雇主", "企业", "厂里", "工作单位"},
	"个体户":  {"个体工商户", "个体经营", "个体户"},
	"灵活就业": {"灵活就业人员", "自由职业者", "自由职业", "打零工", "零工", "兼职"},
	"余额":   {"还剩多少钱", "剩多少钱", "剩下多少", "剩余金额", "剩多少", "还有多少钱"},
	"查询":   {"查一下", "查一查", "查看", "查到", "去查", "怎么查", "查找", "能查"},
	"缴费记录": {"缴费明细", "缴费历史", "缴纳记录", "缴费清单", "参保记录", "缴费情况"},
	"欠缴":   {"拖欠", "欠费", "拖着不缴", "晚缴", "迟缴", "逾期缴", "欠着"},
	"未缴":   {"不缴", "不给缴", "没给缴", "没有给我缴", "没给我缴", "没缴", "漏缴", "少缴", "忘了缴", "忘记缴", "忘了给我缴", "忘记给我缴", "没帮我缴"},
	"他人致伤": {"被别人打伤", "被人打伤", "被别人打", "被人打", "打架", "打伤", "车祸", "被撞", "撞伤", "交通事故", "被狗咬"},
	"境外":   {"出国", "国外", "海外", "境外", "国外看病"},
	"等待期":  {"待遇等待期", "观察期", "等待期"},
	"投诉":   {"举报", "投诉", "告单位", "维权"},
	"年限":   {"缴费年限", "缴费年数", "缴的年数", "缴满", "缴够", "年头"},
	"异地就医": {"外地看病", "异地看病", "在外地就医", "外地就医", "异地就医", "回老家看病", "在老家看病", "老家看病", "去外地看病",
		"外省看病", "跨省看病", "跨省就医", "异地住院", "外地住院"},
	"退休": {"退了休", "退休"},
}

// offTopic names things people confuse with social insurance that this
// bot does not cover: the housing provident fund, commercial insurance
// products, taxes and investments. A question naming one is declined
// (unless it is a curated wording), because sharing a word such as 缴 or
// "insurance" with an entry does not make it about that entry. 医疗险 is
// deliberately not folded into 医保 above: "百万医疗险" is a commercial
// product.
var offTopic = []string{
	"公积金", "车险", "交强险", "重疾险", "百万医疗", "旅游险", "旅行险", "宠物险", "股票", "个税", "个人所得税", "退税",
	"housing fund", "provident fund", "car insurance", "auto insurance", "vehicle insurance", "travel insurance",
	"critical illness insurance", "pet insurance", "stock", "tax return", "tax refund", "income tax",
}

// isOffTopic reports whether s names something outside the bot's scope.
func isOffTopic(s string) bool {
	s = strings.ToLower(s)
	for _, w := range offTopic {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// zhPayFold runs before zhVariants: people write 交 for 缴 (pay) all the
// time. Identity pairs protect words in which 交 means something else;
// being longer, they win over the single character.
var zhPayFold = map[string][]string{
	"缴":  {"交"},
	"交通": {"交通"}, "提交": {"提交"}, "交流": {"交流"}, "交易": {"交易"}, "外交": {"外交"}, "交接": {"交接"},
	"交警": {"交警"}, "交换": {"交换"}, "社交": {"社交"}, "交友": {"交友"}, "交代": {"交代"}, "成交": {"成交"}, "交叉": {"交叉"},
}

// enPhrases joins multi-word expressions into one token before the
// per-word synonyms.
var enPhrases = map[string][]string{
	"employer":   {"work unit", "employing entity", "employing unit"},
	"backpay":    {"back pay", "back-pay", "make up", "catch up", "pay later", "pay retroactively", "pay it later"},
	"flexible":   {"self employed", "self-employed", "flexibly employed", "flexible employment", "sole trader", "odd jobs", "individual business"},
	"balance":    {"how much money", "money left", "amount left"},
	"query":      {"look up", "find out", "check on"},
	"latefee":    {"late fee", "late payment fee", "late charge", "overdue fine"},
	"abroad":     {"outside china", "foreign country", "another country"},
	"waitperiod": {"waiting period", "waiting time"},
	"unemploy":   {"lost my job", "no job", "out of work", "without a job", "quit my job"},
	"medic":      {"health insurance"},
	"join":       {"sign up", "take part"},
}

// enWords maps single words after phrase joining. Targets are already
// stems so the stemmer leaves them alone.
var enWords = map[string]string{
	"lapse": "lapse", "lapsed": "lapse", "missed": "lapse", "miss": "lapse", "gap": "lapse", "gaps": "lapse",
	"interrupt": "lapse", "interrupted": "lapse", "interruption": "lapse", "stopped": "lapse", "broken": "lapse",
	"discontinued": "lapse", "suspended": "lapse",
	"company": "employer", "employer": "employer", "boss": "employer", "firm": "employer", "employers": "employer", "companies": "employer",
	"backpay": "backpay", "makeup": "backpay", "retroactive": "backpay", "retroactively": "backpay", "arrear": "backpay", "resume": "backpay",
	"freelancer": "flexible", "freelancers": "flexible", "freelance": "flexible", "freelancing": "flexible", "flexible": "flexible",
	"gig": "flexible", "flexibly": "flexible", "selfemployed": "flexible",
	"balance": "balance", "remaining": "balance", "left": "balance",
	"check": "query", "query": "query", "lookup": "query", "enquire": "query", "inquire": "query", "enquiry": "query", "inquiry": "query",
	"history": "record", "records": "record", "record": "record", "statement": "record",
	"late": "latefee", "overdue": "latefee", "penalty": "latefee", "penalties": "latefee", "surcharge": "latefee", "latefee": "latefee",
	"abroad": "abroad", "overseas": "abroad", "foreign": "abroad",
	"complain": "complain", "complaint": "complain", "report": "complain", "whistleblow": "complain", "sue": "complain",
	"jobless": "unemploy", "unemployed": "unemploy", "unemployment": "unemploy",
	"medcial": "medic", "medicial": "medic", "meidcal": "medic",
	"insurence": "insur", "insurace": "insur", "insurrance": "insur", "insuranse": "insur", "insurnace": "insur",
	"employeer": "employer", "reimbursment": "reimburs", "reimbursemnt": "reimburs",
	"medicare": "medic", "medical": "medic", "health": "medic", "healthcare": "medic",
	"premium": "contribut", "premiums": "contribut", "contributions": "contribut", "contribution": "contribut", "fees": "contribut",
	"paid": "pay", "paying": "pay", "pays": "pay", "payment": "pay", "payments": "pay",
	"reimburse": "reimburs", "reimbursed": "reimburs", "reimbursement": "reimburs", "covered": "reimburs", "cover": "reimburs", "coverage": "reimburs",
	"city": "city", "cities": "city", "province": "city", "provinces": "city", "relocate": "city", "move": "city", "moved": "city", "moving": "city",
	"years": "year", "year": "year",
	// Negation decides "employer not paying" against "employer paying late";
	// "doesn't" arrives as "doesn" + "t".
	"not": "not", "no": "not", "never": "not", "unpaid": "not", "without": "not", "cannot": "not", "doesn": "not", "don": "not",
	"didn": "not", "won": "not", "isn": "not", "aren": "not", "wasn": "not", "weren": "not", "hasn": "not", "haven": "not",
	"split": "share", "shared": "share", "shares": "share", "divided": "share", "jointly": "share", "share": "share",
	"skipped": "lapse", "skip": "lapse", "break": "lapse", "breaks": "lapse",
	"enrol": "join", "enroll": "join", "enrolled": "join", "enrolment": "join", "enrollment": "join", "participate": "join",
	"joined": "join", "joining": "join",
	"documents": "document", "paperwork": "document", "materials": "document", "bring": "document", "papers": "document",
	"id": "idcard",
}

// enStop are words that carry no topic. "how" and "what" appear in almost
// every wording; "who", "where" and "when" stay because they tell "who
// pays" from "how to pay".
var enStop = toSet(strings.Fields(`a an the and or but if of to in on at for from by with about as into over after before
i me my mine myself we our you your he she him her his it its they them their this that these those there here
is am are was were be been being do does did done have has had having can could will would shall should may might must
what which whom whose how yes so than too very just also still any some all each
get got gets getting please tell know want need let s t ll ve re d m
up out off then now again much many more most other such only own same few`))

// Chinese bigrams that are pure question syntax: they would otherwise
// match every entry and make unrelated questions look relevant.
var zhStopBigrams = toSet([]string{"怎么", "什么", "可以", "如何", "是否", "能不", "不能", "需要", "我的", "请问", "一下",
	"这个", "那个", "是不", "不是", "还能", "能否", "么办", "怎样", "哪些", "哪里", "多少", "有没", "没有", "要不", "了吗", "的吗",
	"我们", "你们", "他们", "么样", "为什", "有什", "是什", "应该", "现在", "办理", "的话", "的时", "时候", "以后", "之后"})

// zhStopChars do not count towards query coverage: a question is not
// less understood because it ends in 吗.
// Numerals are here too: "六十多岁", "三个月" qualify a question but
// are not its topic.
var zhStopChars = toSet(strings.Split("的了吗呢吧啊呀么我你他她它是在有和与或请要能会可以还都就也把被给对从到让这那个些什怎样如何哪儿"+
	"现过得着想说问下去来上咋啥嘛一二三四五六七八九十百千万几两半多", ""))

func toSet(words []string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// newReplacer builds one strings.Replacer from canonical→variants. Pairs go
// longest variant first because Replacer tries patterns in argument order
// at each position.
func newReplacer(m map[string][]string, pad bool) *strings.Replacer {
	type pair struct{ from, to string }
	var ps []pair
	for to, froms := range m {
		for _, f := range froms {
			if pad {
				ps = append(ps, pair{" " + f + " ", " " + to + " "})
			} else {
				ps = append(ps, pair{f, to})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if len(ps[i].from) != len(ps[j].from) {
			return len(ps[i].from) > len(ps[j].from)
		}
		return ps[i].from < ps[j].from
	})
	args := make([]string, 0, 2*len(ps))
	for _, p := range ps {
		args = append(args, p.from, p.to)
	}
	return strings.NewReplacer(args...)
}

// foldVariants writes the variants the way zhFold leaves the text, so a
// list may say 没交了 and still match.
func foldVariants(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for to, froms := range m {
		for _, f := range froms {
			out[to] = append(out[to], zhFold.Replace(f))
		}
	}
	return out
}

var (
	zhFold     = newReplacer(zhPayFold, false)
	zhReplacer = newReplacer(foldVariants(zhVariants), false)
	enReplacer = newReplacer(enPhrases, true)
)

// token is one index term. Han bigrams and English stems are the matching
// units; Han unigrams are kept at a low weight so that a one-character
// typo still leaves some overlap.
type token struct {
	term    string
	weight  float64
	unigram bool
	// pos is the position of the (first) Han character in the query's
	// Han stream, for coverage accounting; -1 for English terms.
	pos int
}

const unigramWeight = 0.15

// zhAnchors and enAnchors are words that place a question inside the
// domain. A question without any must match the FAQ more completely to be
// answered: "怎么办理护照" shares 办理 with many entries but is not ours.
var zhAnchors = []string{"医保", "社保", "保险", "养老", "工伤", "失业", "生育", "报销", "缴", "参保", "滞纳金", "就医", "看病",
	"住院", "医院", "药", "账户", "余额", "退休", "津贴", "待遇", "社会保障", "五险", "低保", "经办", "医疗", "单位", "灵活就业",
	"个体户", "仲裁", "他人致伤", "等待期", "境外", "异地就医", "年限", "12393", "12333"}

var enAnchors = toSet([]string{"insur", "medic", "pension", "retir", "reimburs", "contribut", "latefee", "lapse", "backpay",
	"hospit", "employ", "employer", "social", "matern", "unemploy", "injuri", "injur", "benefit", "balanc", "balance", "flexible",
	"yibao", "shebao", "treatment", "doctor", "medicin", "subsid", "arbitr", "waitperiod", "abroad", "12393", "12333"})

// analyzed is a tokenised text plus what is needed to judge coverage.
type analyzed struct {
	// anchored is true when the text uses a domain word.
	anchored bool
	tokens   []token
	// hanChars are the content Han characters (not zhStopChars), indexed
	// by position in the normalised Han stream; enTerms are the content
	// English stems.
	hanChars map[int]string
	enTerms  []string
	// bigramAt is the bigram token starting at each Han position ("" for
	// none), so that search can ask about a position's bigrams in
	// constant time.
	bigramAt []string
}

// normalize folds width and case and applies the variant maps.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= '！' && r <= '～': // full-width ASCII
			r = r - '！' + '!'
		case r == '\u3000':
			r = ' '
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return zhReplacer.Replace(zhFold.Replace(b.String()))
}

// analyze tokenises a text for indexing or querying.
func analyze(s string) analyzed { return analyzeNormalized(normalize(s)) }

// analyzeNormalized is analyze of a text already normalized: a question
// is normalized once for both its wording key and its tokens.
func analyzeNormalized(s string) analyzed {
	a := analyzed{hanChars: map[int]string{}}
	for _, w := range zhAnchors {
		if strings.Contains(s, w) {
			a.anchored = true
			break
		}
	}
	var han []rune     // current Han run
	var words []string // current non-Han run, as words
	hanPos := 0
	flushHan := func() {
		for i, r := range han {
			pos := hanPos + i
			c := string(r)
			if !zhStopChars[c] {
				a.hanChars[pos] = c
			}
			a.tokens = append(a.tokens, token{term: c, weight: unigramWeight, unigram: true, pos: pos})
			if i+1 < len(han) {
				bg := string(han[i : i+2])
				if !zhStopBigrams[bg] {
					a.tokens = append(a.tokens, token{term: bg, weight: 1, pos: pos})
					for len(a.bigramAt) <= pos {
						a.bigramAt = append(a.bigramAt, "")
					}
					a.bigramAt[pos] = bg
				}
			}
		}
		hanPos += len(han) + 1 // a gap so bigrams never span runs
		han = han[:0]
	}
	var word strings.Builder
	flushWord := func() {
		// A sentence's full stop is not part of its last word.
		w := strings.TrimRight(word.String(), ".-")
		if w != "" && strings.Contains(w, ".") && (w[0] < '0' || w[0] > '9') {
			for _, part := range strings.Split(w, ".") {
				if part != "" {
					words = append(words, part)
				}
			}
		} else if w != "" {
			words = append(words, w)
		}
		word.Reset()
	}
	flushWords := func() {
		flushWord()
		if len(words) == 0 {
			return
		}
		// Two passes: a match consumes its trailing space, which hides
		// the leading space of a phrase right after it.
		joined := enReplacer.Replace(enReplacer.Replace(" " + strings.Join(words, " ") + " "))
		var fields []string
		for _, w := range strings.Fields(joined) {
			// "work-injury" is two words unless the joined form is a
			// known synonym ("self-employed", "back-pay").
			if strings.Contains(w, "-") {
				if _, ok := enWords[strings.ReplaceAll(w, "-", "")]; !ok {
					fields = append(fields, strings.Split(w, "-")...)
					continue
				}
			}
			fields = append(fields, w)
		}
		for _, w := range fields {
			if t := enTerm(w); t != "" {
				a.tokens = append(a.tokens, token{term: t, weight: 1, pos: -1})
				a.enTerms = append(a.enTerms, t)
				if enAnchors[t] {
					a.anchored = true
				}
			}
		}
		words = words[:0]
	}
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Han, r):
			flushWords()
			han = append(han, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '%':
			if len(han) > 0 {
				flushHan()
			}
			word.WriteRune(r)
		case (r == '-' || r == '.') && word.Len() > 0:
			// Keep "0.05%" and "self-employed" whole for now; flushWord
			// splits "insurance.how".
			word.WriteRune(r)
		default:
			if len(han) > 0 {
				flushHan()
			}
			flushWord()
		}
	}
	flushWords()
	if len(han) > 0 {
		flushHan()
	}
	return a
}

// enTerm maps one lowercased English word to its index term, or "" for a
// stopword.
func enTerm(w string) string {
	w = strings.Trim(w, ".-")
	if w == "" {
		return ""
	}
	if t, ok := enWords[w]; ok {
		return t
	}
	if strings.Contains(w, "-") {
		if t, ok := enWords[strings.ReplaceAll(w, "-", "")]; ok {
			return t
		}
	}
	if enStop[w] {
		return ""
	}
	if w[0] >= '0' && w[0] <= '9' {
		return w
	}
	st := english.Stem(w, false)
	if st == "" {
		return ""
	}
	return st
}

// bigramKnown reports whether a bigram starting or ending at Han position
// pos is in the index vocabulary.
func (a analyzed) bigramKnown(pos int, ix *index) bool {
	for _, p := range [2]int{pos, pos - 1} {
		if p < 0 || p >= len(a.bigramAt) || a.bigramAt[p] == "" {
			continue
		}
		if _, ok := ix.idf[a.bigramAt[p]]; ok {
			return true
		}
	}
	return false
}
