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
		var d doc
		d.line(bold(faq.SafetyText(a.Safety, t.flang())))
		t.replies = append(t.replies, d.reply())
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
		return t.renderArticle(*a.Article, a.Notes).reply()
	}
	var d doc
	d.text(a.Text)
	if len(a.Citations) == 0 && a.EntryID != "" {
		// An answer about practice rests on no article: say so rather
		// than let it pass for law.
		d.blank()
		d.line(ital(t.l("以上是常见做法的说明，不是法律条文。", "This describes common practice; it is not statute.")))
	}
	if len(a.Citations) > 0 {
		d.blank()
		d.line(bold(t.l("依据：", "Legal basis:")), txt(t.l("", " ")+t.e.cfg.FAQ.Labels(a.Citations, t.flang(), t.day)))
	}
	t.writeNotes(&d, a.Notes)
	for _, c := range a.Citations {
		d.cite(t.citation(c))
	}
	r := d.reply()
	r.Slow = true
	var row []Button
	for i, c := range a.Citations {
		if i == maxArticleButtons {
			break
		}
		label := "📖 " + t.e.cfg.FAQ.ShortLabel(c, t.flang())
		if !t.inForce(c) {
			label += t.l("（尚未施行）", " (not yet in force)")
		}
		row = append(row, btn(label, "art:"+t.e.cfg.FAQ.Key(c)))
	}
	if len(row) > 0 {
		r.Buttons = append(r.Buttons, row)
	}
	if a.EntryID != "" && len(a.Related) > 0 {
		r.Buttons = append(r.Buttons, []Button{btn(t.l("相关问题", "Related questions"), "rel:"+a.EntryID)})
	}
	return r
}

// citation is an article with its text, for channels that show it in
// place.
func (t *turn) citation(c faq.Citation) Citation {
	out := Citation{Label: t.e.cfg.FAQ.Label(c, t.flang(), t.day), Key: t.e.cfg.FAQ.Key(c)}
	if a, ok := t.e.cfg.FAQ.Article(c); ok {
		out.Text = a.Text
		if a.English != "" {
			out.English = a.English
			out.EnglishLabel = "English (unofficial translation)"
			if a.Official {
				out.EnglishLabel = "English (official translation)"
			} else if a.OfficialParas > 0 {
				out.EnglishLabel = "English (official translation of the first paragraph; the rest unofficial)"
			}
		}
	}
	return out
}

// writeNotes adds an answer's notes: a coming change (📅) or a caveat on
// an article (⚠️), each with the articles it rests on.
func (t *turn) writeNotes(d *doc, notes []faq.Note) {
	for _, n := range notes {
		mark := "⚠️ "
		if t.day.Before(n.From) {
			mark = "📅 "
		}
		text := mark + n.Text
		if len(n.Citations) > 0 {
			text += t.cite(n.Citations)
		}
		d.blank()
		d.line(txt(text))
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
func (t *turn) renderArticle(a faq.Article, notes []faq.Note) *doc {
	var d doc
	d.line(bold(t.e.cfg.FAQ.Label(a.Citation, faq.ZH, t.day)))
	d.quote(a.Text)
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
			d.blank()
			d.line(bold(t.e.cfg.FAQ.Label(a.Citation, faq.EN, t.day)))
		}
		if official > 0 {
			d.blank()
			d.line(ital("English (official translation)"))
			d.text(strings.Join(paras[:official], "\n"))
		}
		if official < len(paras) {
			d.blank()
			d.line(ital("English (unofficial translation)"))
			d.text(strings.Join(paras[official:], "\n"))
		}
	}
	t.writeNotes(&d, notes)
	return &d
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
			rows = append(rows, []Button{btn(truncateRunes(re.Question(t.flang()), 60), "faq:"+rid)})
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
	var d doc
	d.line(bold(t.l("本助手依据的法律法规", "The laws and regulations my answers rest on")))
	d.blank()
	for _, l := range t.e.cfg.FAQ.Laws() {
		t.lawLines(&d, l)
	}
	d.blank()
	d.line(txt(t.l(
		"查看条文：输入“医保法第三十二条”“社会保险法第74条”等。法规原文以国家法律法规数据库为准。",
		"To read an article, type e.g. \"Medical Security Law Art. 32\" or \"Social Insurance Law Art. 74\". The official texts are in the national database of laws (flk.npc.gov.cn).")))
	t.replies = append(t.replies, d.reply())
	return nil
}

// lawLines is one law of /law: its name, kind and status, then its dates.
func (t *turn) lawLines(d *doc, l faq.Law) {
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
		d.item(bold(name), txtf(" (%s, %s; %s)", l.FullName, kind, status))
		s := "promulgated " + l.Promulgated.Label(faq.EN)
		if !l.Amended.IsZero() {
			s += ", amended " + l.Amended.Label(faq.EN)
		}
		verb := "in force since "
		if l.StatusOn(t.day) == faq.NotYet {
			verb = "takes effect on "
		}
		d.line(txt("  " + s + "; " + verb + l.Effective.Label(faq.EN)))
		return
	}
	d.item(bold("《"+l.FullName+"》"), txtf("（%s，%s）", kind, status))
	s := l.Promulgated.Label(faq.ZH) + "公布"
	if !l.Amended.IsZero() {
		s += "，" + l.Amended.Label(faq.ZH) + "修正"
	}
	d.line(txt("  " + s + "，" + l.Effective.Label(faq.ZH) + "起施行"))
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
