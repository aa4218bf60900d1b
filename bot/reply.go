package bot

import (
	"fmt"
	"strings"
)

// Reply is one message to send, in a neutral rich-text model: the engine
// says what a reply is (paragraphs, bold, a link, a citation, buttons) and
// each channel renders it within its platform's rules (Telegram's HTML and
// 4096 characters, safe web HTML, WeChat's plain text and byte limit, the
// terminal). Engine code builds replies with doc and never writes markup.
type Reply struct {
	// Body is the reply's blocks, in order. An empty paragraph is a blank
	// line.
	Body []Block
	// Buttons are inline buttons, row by row.
	Buttons [][]Button
	// AskContact asks the client to offer a one-time "share my phone
	// number" button with this label (Telegram); channels without it
	// never get a reply that needs it.
	AskContact string
	// RemoveKeyboard removes a reply keyboard shown earlier.
	RemoveKeyboard bool
	// Replaces says the reply replaces the message whose button was
	// pressed (a language or time choice editing its own menu) instead of
	// coming as a new message; channels that cannot edit send it anew.
	Replaces bool
	// EndSession says the user asked to be forgotten and everything the
	// engine kept is gone: a channel that keeps a session of its own (the
	// web chat's cookie) ends it too.
	EndSession bool
	// Slow hints that producing this reply took noticeable work; channels
	// may have shown a "typing" indicator before it.
	Slow bool
}

// BlockKind is what a block is.
type BlockKind uint8

const (
	Para  BlockKind = iota // a paragraph: one line of text
	Item                   // a bullet item
	Quote                  // text quoted from a statute
	Cite                   // a citation a channel may show in full (Block.Cite)
)

// Block is one paragraph, bullet item, quotation or citation.
type Block struct {
	Kind  BlockKind
	Spans []Span
	Cite  *Citation // for Kind Cite
}

// Span is a run of text with one style.
type Span struct {
	Text   string
	Bold   bool
	Italic bool
	Link   string // an http(s) URL the text links to; "" for none
}

// Citation is an article a reply rests on, with its text for channels that
// show it in place (the web chat's expandable article); others show the
// label.
type Citation struct {
	Label string // 《社会保险法》第七十四条, as the registry labels it on the day
	Key   string // sil.74: the data of the button that shows it
	Text  string // the Chinese original, paragraphs joined by "\n"
	// English is its English rendering, EnglishLabel what that is
	// ("English (unofficial translation)"); both "" when there is none.
	English, EnglishLabel string
}

// ButtonKind is what pressing a button does.
type ButtonKind uint8

const (
	Callback ButtonKind = iota // sends Data back as Message.Callback
	URL                        // opens Data, an http(s) URL
	Code                       // asks the user to type the code just sent to them
)

// Button is one button. Callback data is at most 64 bytes (Telegram's
// limit), so every channel can carry it.
type Button struct {
	Text string
	Data string
	Kind ButtonKind
}

// Span constructors, for doc.
func txt(s string) Span              { return Span{Text: s} }
func bold(s string) Span             { return Span{Text: s, Bold: true} }
func ital(s string) Span             { return Span{Text: s, Italic: true} }
func link(text, url string) Span     { return Span{Text: text, Link: url} }
func btn(text, data string) Button   { return Button{Text: text, Data: data} }
func txtf(f string, a ...any) Span   { return txt(fmt.Sprintf(f, a...)) }
func boldf(f string, a ...any) Span  { return bold(fmt.Sprintf(f, a...)) }
func itemBlock(spans ...Span) Block  { return Block{Kind: Item, Spans: spans} }
func paraBlock(spans ...Span) Block  { return Block{Kind: Para, Spans: spans} }
func quoteBlock(spans ...Span) Block { return Block{Kind: Quote, Spans: spans} }

// doc builds a reply's body.
type doc struct{ blocks []Block }

// line adds a paragraph of spans.
func (d *doc) line(spans ...Span) { d.blocks = append(d.blocks, paraBlock(spans...)) }

// item adds a bullet item.
func (d *doc) item(spans ...Span) { d.blocks = append(d.blocks, itemBlock(spans...)) }

// quote adds statute text, a paragraph per line.
func (d *doc) quote(text string) {
	for _, l := range strings.Split(text, "\n") {
		d.blocks = append(d.blocks, quoteBlock(txt(l)))
	}
}

// blank adds an empty line, unless the body is empty or ends in one.
func (d *doc) blank() {
	if n := len(d.blocks); n > 0 && !isBlank(d.blocks[n-1]) {
		d.blocks = append(d.blocks, Block{})
	}
}

// text adds plain text, a paragraph per line ("" lines are blank lines).
func (d *doc) text(s string) {
	for _, l := range strings.Split(s, "\n") {
		d.blocks = append(d.blocks, paraBlock(txt(l)))
	}
}

// cite adds a citation block.
func (d *doc) cite(c Citation) { d.blocks = append(d.blocks, Block{Kind: Cite, Cite: &c}) }

// reply is the body as a reply with buttons.
func (d *doc) reply(rows ...[]Button) Reply { return Reply{Body: d.blocks, Buttons: rows} }

func isBlank(b Block) bool {
	if b.Kind == Cite {
		return false
	}
	for _, s := range b.Spans {
		if s.Text != "" {
			return false
		}
	}
	return true
}

// TextReply is a reply of plain text, a paragraph per line.
func TextReply(s string) Reply {
	var d doc
	d.text(s)
	return d.reply()
}

// PlainText renders a reply's body as plain text, a line per paragraph:
// items get a bullet, links their URL in parentheses, citation blocks
// their label. It is what channels without markup (the terminal, WeChat)
// build on.
func PlainText(r Reply) string {
	var b strings.Builder
	first := true
	for _, blk := range r.Body {
		if blk.Kind == Cite {
			continue // the label is in the text already; see Citation
		}
		if !first {
			b.WriteByte('\n')
		}
		first = false
		if blk.Kind == Item {
			b.WriteString("• ")
		}
		for _, s := range blk.Spans {
			b.WriteString(s.Text)
			if s.Link != "" && s.Link != s.Text {
				b.WriteString(" (" + s.Link + ")")
			}
		}
	}
	return b.String()
}

// Transcript renders a reply's body in the neutral form of the engine's
// transcripts: **bold**, _italic_, [text](url), "• " items, "> " quotes
// and {cite: label} citation blocks.
func Transcript(r Reply) string {
	var b strings.Builder
	for i, blk := range r.Body {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch blk.Kind {
		case Item:
			b.WriteString("• ")
		case Quote:
			b.WriteString("> ")
		case Cite:
			b.WriteString("{cite: " + blk.Cite.Label + "}")
			continue
		}
		for _, s := range blk.Spans {
			t := s.Text
			if s.Bold && t != "" {
				t = "**" + t + "**"
			}
			if s.Italic && t != "" {
				t = "_" + t + "_"
			}
			if s.Link != "" {
				t = "[" + t + "](" + s.Link + ")"
			}
			b.WriteString(t)
		}
	}
	return b.String()
}

// body is plain text as blocks, a paragraph per line.
func body(s string) []Block {
	var d doc
	d.text(s)
	return d.blocks
}
