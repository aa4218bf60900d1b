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
		// No explicit choice: answer in the language of the question.
		t.lang = string(faq.DetectLang(q))
	}
	a, err := t.e.cfg.FAQ.Answer(ctx, q, faq.Lang(t.lang))
	if err != nil {
		return fmt.Errorf("answer question: %w", err)
	}
	if a.Abstained {
		t.outcome = "abstain"
	}
	t.replies = append(t.replies, t.renderAnswer(a))
	return nil
}

// renderAnswer shows an answer, its citations, and buttons for the full
// article texts and related questions.
func (t *turn) renderAnswer(a faq.Answer) Reply {
	if a.Article != nil {
		// A direct article request: the article with its heading and the
		// status of each part of its English.
		return Reply{Text: renderArticle(*a.Article, t.lang)}
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
		for i, c := range a.Citations {
			if i > 0 {
				b.WriteString(t.l("、", "; "))
			}
			b.WriteString(esc(c.Label(faq.Lang(t.lang))))
		}
	}
	r := Reply{Text: b.String(), Slow: true}
	var row []Button
	for i, c := range a.Citations {
		if i == maxArticleButtons {
			break
		}
		row = append(row, Button{Text: "📖 " + shortLabel(c, t.lang), Data: "art:" + c.Key()})
	}
	if len(row) > 0 {
		r.Buttons = append(r.Buttons, row)
	}
	if a.EntryID != "" && len(a.Related) > 0 {
		r.Buttons = append(r.Buttons, []Button{{Text: t.l("相关问题", "Related questions"), Data: "rel:" + a.EntryID}})
	}
	return r
}

// shortLabel is a citation label short enough for a button.
func shortLabel(c faq.Citation, lang string) string {
	if lang == "en" {
		return fmt.Sprintf("Art. %d", c.Article)
	}
	return strings.TrimPrefix(c.Label(faq.ZH), "《社会保险法》")
}

// runArticleButton shows the full text of one article: the Chinese
// original, then the English rendering with its status.
func runArticleButton(ctx context.Context, t *turn, key string) error {
	c, ok := faq.ParseCitationKey(key)
	var art faq.Article
	if ok {
		art, ok = t.e.cfg.FAQ.Article(c)
	}
	if !ok {
		t.outcome = "unknown"
		t.say(t.l("找不到这一条，请重新提问。", "I can't find that article. Please ask again."))
		return nil
	}
	t.say(renderArticle(art, t.lang))
	return nil
}

func renderArticle(a faq.Article, lang string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<b>%s</b>\n%s", esc(a.Label(faq.ZH)), esc(a.Text))
	if a.English == "" {
		return b.String()
	}
	// The official translation may cover only the first paragraphs (SIL
	// Art. 4); each part is labelled for what it is.
	paras := strings.Split(a.English, "\n")
	official := a.OfficialParas
	if a.Official {
		official = len(paras)
	}
	official = min(official, len(paras))
	if lang == "en" {
		fmt.Fprintf(&b, "\n\n<b>%s</b>", esc(a.Label(faq.EN)))
	}
	if official > 0 {
		fmt.Fprintf(&b, "\n\n<i>English (official translation)</i>\n%s", esc(strings.Join(paras[:official], "\n")))
	}
	if official < len(paras) {
		fmt.Fprintf(&b, "\n\n<i>English (unofficial translation)</i>\n%s", esc(strings.Join(paras[official:], "\n")))
	}
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
	for _, rid := range t.e.cfg.FAQ.Related(e.ID, faq.Lang(t.lang)) {
		if re, ok := t.e.cfg.FAQ.Entry(rid); ok && rid != id {
			rows = append(rows, []Button{{Text: truncateRunes(re.Question(faq.Lang(t.lang)), 60), Data: "faq:" + rid}})
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
	lang := faq.Lang(t.lang)
	t.replies = append(t.replies, t.renderAnswer(faq.Answer{
		Text: e.Answer(lang), Citations: e.Citations, EntryID: e.ID}))
	return nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
