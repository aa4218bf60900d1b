package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/shebao/shebao/faq"
)

// maxArticleButtons caps the "full text" buttons under one answer: more
// than three buttons on a phone screen is noise.
const maxArticleButtons = 3

// runQuestion answers free text from the FAQ.
func runQuestion(ctx context.Context, t *turn, q string) error {
	if t.st.Lang == "" {
		// No /lang choice: answer in the dominant script of the question
		// ("where can i see my 医保 balance" is English), and only when it
		// has none, in the client's language. The client language comes
		// second because Telegram has no official Chinese interface: many
		// Chinese users run it in English.
		if l, ok := faq.ScriptOf(q); ok {
			t.lang = string(l)
		}
	}
	a, err := t.e.cfg.FAQ.Answer(ctx, faq.Query{Text: q, Lang: t.flang(), Day: t.day, User: t.msg.User})
	if err != nil {
		return fmt.Errorf("answer question: %w", err)
	}
	if a.Abstained {
		t.outcome = "abstain"
	}
	if a.Safety != "" {
		// Help first, in a message of its own; a crisis gets nothing else.
		t.say("<b>" + esc(faq.SafetyText(a.Safety, t.flang())) + "</b>")
		if a.EntryID == "" {
			return nil
		}
	}
	t.replies = append(t.replies, t.renderAnswer(a))
	if a.Also != "" {
		// A second question in the same message gets its own answer.
		if e, ok := t.e.cfg.FAQ.Entry(a.Also); ok {
			t.replies = append(t.replies, t.renderAnswer(t.e.cfg.FAQ.EntryAnswer(e, t.flang(), t.day)))
		}
	}
	return nil
}

// flang is the turn's language for the faq package.
func (t *turn) flang() faq.Lang { return faq.Lang(t.lang) }

// cite renders citations in parentheses for engine prose, through the
// law registry: （《社会保险法》第六十三条、第八十六条）.
func (t *turn) cite(cs []faq.Citation) string {
	s := t.e.cfg.FAQ.Labels(cs, t.flang(), t.day)
	return t.l("（"+s+"）", " ("+s+")")
}

// renderAnswer shows an answer, its citations, the change a published law
// will make to it, and buttons for the full article texts and related
// questions.
func (t *turn) renderAnswer(a faq.Answer) Reply {
	if a.Article != nil {
		// A direct article request: the article with its heading and the
		// status of each part of its English.
		return Reply{Text: t.renderArticle(*a.Article, a.Notes)}
	}
	var b strings.Builder
	b.WriteString(esc(a.Text))
	if len(a.Citations) == 0 && a.EntryID != "" {
		// An answer about practice rests on no article: say so rather
		// than let it pass for law.
		b.WriteString(t.l("\n\n<i>以上是常见做法的说明，不是法律条文。</i>", "\n\n<i>This describes common practice; it is not statute.</i>"))
	}
	if len(a.Citations) > 0 {
		b.WriteString("\n\n")
		b.WriteString(t.l("<b>依据：</b>", "<b>Legal basis:</b> "))
		b.WriteString(esc(t.e.cfg.FAQ.Labels(a.Citations, t.flang(), t.day)))
	}
	t.writeNotes(&b, a.Notes)
	r := Reply{Text: b.String(), Slow: true}
	var row []Button
	for i, c := range a.Citations {
		if i == maxArticleButtons {
			break
		}
		label := "📖 " + t.e.cfg.FAQ.ShortLabel(c, t.flang())
		if !t.inForce(c) {
			label += t.l("（尚未施行）", " (not yet in force)")
		}
		row = append(row, Button{Text: label, Data: "art:" + t.e.cfg.FAQ.Key(c)})
	}
	if len(row) > 0 {
		r.Buttons = append(r.Buttons, row)
	}
	if a.EntryID != "" && len(a.Related) > 0 {
		r.Buttons = append(r.Buttons, []Button{{Text: t.l("相关问题", "Related questions"), Data: "rel:" + a.EntryID}})
	}
	return r
}

// writeNotes adds an answer's notes: a coming change (📅) or a caveat on
// an article (⚠️), each with the articles it rests on.
func (t *turn) writeNotes(b *strings.Builder, notes []faq.Note) {
	for _, n := range notes {
		mark := "⚠️ "
		if t.day.Before(n.From) {
			mark = "📅 "
		}
		b.WriteString("\n\n" + mark + esc(n.Text))
		if len(n.Citations) > 0 {
			b.WriteString(esc(t.cite(n.Citations)))
		}
	}
}

// runArticleButton shows the full text of one article: the Chinese
// original, then the English rendering with its status.
func runArticleButton(ctx context.Context, t *turn, key string) error {
	if c, ok := t.e.cfg.FAQ.ParseKey(key); ok {
		if a := t.e.cfg.FAQ.ArticleAnswer(c, t.flang(), t.day); a.Article != nil {
			t.replies = append(t.replies, t.renderAnswer(a))
			return nil
		}
	}
	t.outcome = "unknown"
	t.say(t.l("找不到这一条，请重新提问。", "I can't find that article. Please ask again."))
	return nil
}

// renderArticle shows an article: its label and the law's status on the
// turn's day, the Chinese original, the English rendering labelled part by
// part, and the notes on it.
func (t *turn) renderArticle(a faq.Article, notes []faq.Note) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<b>%s</b>\n%s", esc(t.e.cfg.FAQ.Label(a.Citation, faq.ZH, t.day)), esc(a.Text))
	if a.English != "" {
		// The official translation may cover only the first paragraphs (SIL
		// Art. 4); each part is labelled for what it is.
		paras := strings.Split(a.English, "\n")
		official := a.OfficialParas
		if a.Official {
			official = len(paras)
		}
		official = min(official, len(paras))
		if t.lang == "en" {
			fmt.Fprintf(&b, "\n\n<b>%s</b>", esc(t.e.cfg.FAQ.Label(a.Citation, faq.EN, t.day)))
		}
		if official > 0 {
			fmt.Fprintf(&b, "\n\n<i>English (official translation)</i>\n%s", esc(strings.Join(paras[:official], "\n")))
		}
		if official < len(paras) {
			fmt.Fprintf(&b, "\n\n<i>English (unofficial translation)</i>\n%s", esc(strings.Join(paras[official:], "\n")))
		}
	}
	t.writeNotes(&b, notes)
	return b.String()
}

// runRelatedButton lists questions related to an entry as buttons.
func runRelatedButton(ctx context.Context, t *turn, id string) error {
	e, ok := t.e.cfg.FAQ.Entry(id)
	if !ok {
		t.outcome = "unknown"
		t.say(t.l("这个按钮已失效，请重新提问。", "That button has expired. Please ask again."))
		return nil
	}
	var rows [][]Button
	for _, rid := range t.e.cfg.FAQ.Related(e.ID, t.flang()) {
		if re, ok := t.e.cfg.FAQ.Entry(rid); ok && rid != id {
			rows = append(rows, []Button{{Text: truncateRunes(re.Question(t.flang()), 60), Data: "faq:" + rid}})
		}
	}
	if len(rows) == 0 {
		t.say(t.l("暂时没有相关问题。可以直接输入您的问题。", "No related questions yet. Just type your question."))
		return nil
	}
	t.say(t.l("您可能还想问：", "You may also want to ask:"), rows...)
	return nil
}

// runEntryButton answers a curated entry chosen from a list.
func runEntryButton(ctx context.Context, t *turn, id string) error {
	e, ok := t.e.cfg.FAQ.Entry(id)
	if !ok {
		t.outcome = "unknown"
		t.say(t.l("这个按钮已失效，请重新提问。", "That button has expired. Please ask again."))
		return nil
	}
	t.replies = append(t.replies, t.renderAnswer(t.e.cfg.FAQ.EntryAnswer(e, t.flang(), t.day)))
	return nil
}

// runLaw lists the laws the answers rest on, with their dates and status
// on the turn's day; with an argument it looks up an article
// ("/law 医保法第32条").
func runLaw(ctx context.Context, t *turn, arg string) error {
	if strings.TrimSpace(arg) != "" {
		return runQuestion(ctx, t, arg)
	}
	var b strings.Builder
	b.WriteString(t.l("<b>本助手依据的法律法规</b>\n", "<b>The laws and regulations my answers rest on</b>\n"))
	for _, l := range t.e.cfg.FAQ.Laws() {
		b.WriteString("\n• " + t.lawLine(l))
	}
	b.WriteString(t.l(
		"\n\n查看条文：输入“医保法第三十二条”“社会保险法第74条”等。法规原文以国家法律法规数据库为准。",
		"\n\nTo read an article, type e.g. \"Medical Security Law Art. 32\" or \"Social Insurance Law Art. 74\". The official texts are in the national database of laws (flk.npc.gov.cn)."))
	t.say(b.String())
	return nil
}

// lawLine is one law of /law: its name, kind, dates and status.
func (t *turn) lawLine(l faq.Law) string {
	kind := t.l("法律", "law")
	if l.Kind == faq.KindRegulation {
		kind = t.l("行政法规", "State Council regulation")
	}
	var status string
	switch l.StatusOn(t.day) {
	case faq.NotYet:
		status = t.l("尚未施行", "not yet in force")
	case faq.NoLonger:
		status = t.l("已废止", "repealed")
	default:
		status = t.l("现行有效", "in force")
	}
	if t.lang == "en" {
		name := l.English
		if !l.EnglishOfficial {
			name += " (unofficial translation of the name)"
		}
		s := fmt.Sprintf("<b>%s</b> (%s, %s; %s)\n  promulgated %s", esc(name), esc(l.FullName), kind, status, l.Promulgated.Label(faq.EN))
		if !l.Amended.IsZero() {
			s += ", amended " + l.Amended.Label(faq.EN)
		}
		verb := "in force since "
		if l.StatusOn(t.day) == faq.NotYet {
			verb = "takes effect on "
		}
		return s + "; " + verb + l.Effective.Label(faq.EN)
	}
	s := fmt.Sprintf("<b>《%s》</b>（%s，%s）\n  %s公布", esc(l.FullName), kind, status, l.Promulgated.Label(faq.ZH))
	if !l.Amended.IsZero() {
		s += "，" + l.Amended.Label(faq.ZH) + "修正"
	}
	return s + "，" + l.Effective.Label(faq.ZH) + "起施行"
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// AnswerReply renders an FAQ answer as the engine would reply to it in
// lang ("zh" or "en"), for a.Day: what `shebao ask` prints.
func AnswerReply(f *faq.FAQ, a faq.Answer, lang string) Reply {
	t := &turn{e: &Engine{cfg: Config{FAQ: f}}, lang: lang, day: a.Day}
	return t.renderAnswer(a)
}
