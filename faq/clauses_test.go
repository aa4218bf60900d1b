package faq

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClauses(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"医保断缴了还能补吗", []string{"医保断缴了还能补吗"}},
		{"不是问补缴啊 我就想知道余额在哪看", []string{"我就想知道余额在哪看"}},
		{"不是问补缴啊，我就想知道余额在哪看", []string{"我就想知道余额在哪看"}},
		{"Not asking about back payments – how do I check my balance?", []string{"how do I check my balance"}},
		{"I'm not asking about back pay, but where can I see my balance", []string{"but where can I see my balance"}},
		{"医保断了怎么补？另外异地看病怎么报销", []string{"医保断了怎么补", "另外异地看病怎么报销"}},
		{"不是问补缴", []string{"不是问补缴"}},
		{"How do I back pay? Also, what do I bring?", []string{"How do I back pay", "Also, what do I bring"}},
		{"self-employed people", []string{"self-employed people"}},
	} {
		if diff := cmp.Diff(tt.want, clauses(tt.in)); diff != "" {
			t.Errorf("clauses(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"醫保斷繳了半年還能補嗎":                  "医保断缴了半年还能补吗",
		"斷咗兩個月 仲可唔可以補交㗎":               "断了两个月 还可不可以补交",
		"**医保**余额怎么查？":                 " 医保 余额怎么查？",
		"<b>医保</b>余额<br/>怎么查":          " 医保 余额 怎么查",
		"我的号码 110105********0014 对吗":   "我的号码 110105********0014 对吗",
		"[医保余额](https://x.cn/a) 怎么查 🙏": "医保余额 怎么查  ",
		"公司冇幫我買社保點算":                   "公司没有帮我缴社保怎么办",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
