package web

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/shebao/shebao/bot"
)

// The renderer: bot.Reply in the engine's neutral model to the JSON frames
// of PROTOCOL.md. Nothing here is HTML: the page puts every text into the
// DOM as text, so the renderer's safety duties are the ones JSON cannot
// carry: only http(s) links survive, text is valid UTF-8, and no frame is
// larger than maxFrame (a long reply becomes several messages).

// maxFrame bounds one server frame. The longest article the corpus cites
// is a few KiB; a reply that would not fit (several long articles) is
// split between blocks into several messages, and a single block that
// would not fit is cut into pieces.
const maxFrame = 32 << 10

// maxButtonText bounds a button's label (the engine's are a few words),
// maxLabel a citation's label and the name of its English.
const (
	maxButtonText = 200
	maxLabel      = 300
)

// renderReply turns one reply into reply frames (none for a reply with
// nothing to show, such as one that only removes a keyboard). replaces is the id of the
// message whose button was pressed, used when the reply says it replaces
// it; newID mints the id of each frame.
func renderReply(r bot.Reply, replaces string, newID func() string) []Frame {
	if !r.Replaces {
		replaces = ""
	}
	// What one block or one row of buttons may take: a frame's worth less
	// the frame's own fields (ids are at most maxIDLen bytes).
	limit := maxFrame - encodedLen(Frame{Type: "reply", ID: strings.Repeat("x", maxIDLen), Replaces: replaces}) -
		len(`,"blocks":[]`) - len(`,"buttons":[]`)
	var out []Frame
	cur := Frame{Type: "reply", ID: newID(), Replaces: replaces}
	size := encodedLen(cur)
	add := func(n int, empty bool) {
		if !empty && size+n > maxFrame {
			out = append(out, cur)
			cur = Frame{Type: "reply", ID: newID()}
			size = encodedLen(cur)
		}
	}
	for _, b := range renderBlocks(r.Body) {
		for _, piece := range fitBlock(b, limit) {
			n := encodedLen(piece) + 1 // and a comma
			if len(cur.Blocks) == 0 {
				n += len(`,"blocks":[]`)
			}
			add(n, len(cur.Blocks) == 0)
			if len(cur.Blocks) == 0 {
				n = encodedLen(piece) + len(`,"blocks":[]`)
			}
			cur.Blocks = append(cur.Blocks, piece)
			size += n
		}
	}
	// Buttons go with the last message, row by row, so that the message
	// the user acts on is the one the answer ends with.
	for _, row := range fitRows(renderButtons(r.Buttons, r.Body), limit) {
		n := encodedLen(row) + 1
		if len(cur.Buttons) == 0 {
			n += len(`,"buttons":[]`)
		}
		add(n, len(cur.Blocks) == 0 && len(cur.Buttons) == 0)
		if len(cur.Buttons) == 0 {
			n = encodedLen(row) + len(`,"buttons":[]`)
		}
		cur.Buttons = append(cur.Buttons, row)
		size += n
	}
	if len(cur.Blocks) > 0 || len(cur.Buttons) > 0 {
		out = append(out, cur)
	}
	return out
}

// maxIDLen bounds the ids newID mints.
const maxIDLen = 40

// fitRows splits a row of buttons too long for one frame into several.
func fitRows(rows [][]Button, limit int) [][]Button {
	var out [][]Button
	for _, row := range rows {
		var cur []Button
		for _, b := range row {
			if len(cur) > 0 && encodedLen(append(cur[:len(cur):len(cur)], b)) > limit {
				out = append(out, cur)
				cur = nil
			}
			cur = append(cur, b)
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
	}
	return out
}

// renderBlocks maps the body's blocks, keeping their order.
func renderBlocks(body []bot.Block) []Block {
	out := make([]Block, 0, len(body))
	for _, b := range body {
		switch b.Kind {
		case bot.Cite:
			if b.Cite == nil {
				continue
			}
			c := b.Cite
			out = append(out, Block{Kind: "cite", Cite: &Cite{
				Label: truncate(clean(c.Label), maxLabel), Key: truncateBytes(clean(c.Key), maxButtonData), Text: clean(c.Text),
				English: clean(c.English), EnglishLabel: truncate(clean(c.EnglishLabel), maxLabel),
			}})
		default:
			kind := "p"
			switch b.Kind {
			case bot.Item:
				kind = "li"
			case bot.Quote:
				kind = "quote"
			}
			spans := make([]Span, 0, len(b.Spans))
			for _, s := range b.Spans {
				spans = append(spans, Span{Text: clean(s.Text), B: s.Bold, I: s.Italic, Href: safeLink(s.Link)})
			}
			out = append(out, Block{Kind: kind, Spans: spans})
		}
	}
	return out
}

// renderButtons maps the button rows. A button that shows an article the
// reply already carries in full (a citation block with its key) is left
// out: the page shows the article in place. A URL button that is not
// http(s) is dropped, as is a row left empty.
func renderButtons(rows [][]bot.Button, body []bot.Block) [][]Button {
	inPlace := map[string]bool{}
	for _, b := range body {
		if b.Kind == bot.Cite && b.Cite != nil && b.Cite.Key != "" && b.Cite.Text != "" {
			inPlace[b.Cite.Key] = true
		}
	}
	var out [][]Button
	for _, row := range rows {
		var r []Button
		for _, b := range row {
			text := truncate(clean(b.Text), maxButtonText)
			switch b.Kind {
			case bot.URL:
				if u := safeLink(b.Data); u != "" {
					r = append(r, Button{Text: text, Kind: "url", Data: u})
				}
			case bot.Code:
				r = append(r, Button{Text: text, Kind: "code"})
			default:
				if key, ok := strings.CutPrefix(b.Data, "art:"); ok && inPlace[key] {
					continue
				}
				r = append(r, Button{Text: text, Kind: "callback", Data: truncateBytes(clean(b.Data), maxButtonData)})
			}
		}
		if len(r) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// maxLink bounds a link; a longer one is no link the engine makes.
const maxLink = 2000

// maxButtonData is the longest callback data the engine makes (Telegram's
// limit) and the longest a client may send back.
const maxButtonData = 64

// fitBlock returns b, or b cut into pieces that each encode within limit
// bytes. Only a block far beyond any the engine makes needs this; the
// pieces keep every character, in order.
func fitBlock(b Block, limit int) []Block {
	if encodedLen(b) <= limit {
		return []Block{b}
	}
	if b.Kind == "cite" {
		return fitCite(*b.Cite, limit)
	}
	var out []Block
	cur := Block{Kind: b.Kind}
	for _, s := range b.Spans {
		room := limit - encodedLen(Block{Kind: b.Kind, Spans: []Span{{B: s.B, I: s.I, Href: s.Href}}})
		text := s.Text
		for first := true; first || text != ""; first = false {
			piece := s
			piece.Text, text = cutEncoded(text, room)
			trial := cur
			trial.Spans = append(trial.Spans[:len(trial.Spans):len(trial.Spans)], piece)
			if len(cur.Spans) > 0 && encodedLen(trial) > limit {
				out = append(out, cur)
				trial = Block{Kind: b.Kind, Spans: []Span{piece}}
			}
			cur = trial
		}
	}
	return append(out, cur)
}

// fitCite cuts an oversized citation: the article text into pieces under
// the label, then its English under the English label.
func fitCite(c Cite, limit int) []Block {
	var out []Block
	base := Cite{Label: c.Label, Key: c.Key}
	room := limit - encodedLen(Block{Kind: "cite", Cite: &base}) - len(`,"text":""`) - len(`,"english_label":""`) - len(`,"english":""`) - encodedLen(c.EnglishLabel)
	room = max(room, 64)
	text := c.Text
	for first := true; first || text != ""; first = false {
		head, tail := cutEncoded(text, room)
		piece := base
		piece.Text = head
		if tail == "" && c.English == "" {
			piece.EnglishLabel = c.EnglishLabel
		}
		out = append(out, Block{Kind: "cite", Cite: &piece})
		text = tail
	}
	english := c.English
	for english != "" {
		head, tail := cutEncoded(english, room)
		piece := base
		piece.English, piece.EnglishLabel = head, c.EnglishLabel
		out = append(out, Block{Kind: "cite", Cite: &piece})
		english = tail
	}
	return out
}

// cutEncoded splits s where the head's JSON string body is at most room
// bytes, at a character boundary. At least one character goes to the head
// when s is not empty, whatever room is.
func cutEncoded(s string, room int) (head, tail string) {
	n := 0
	for i, r := range s {
		w := runeEncodedLen(r)
		if n+w > room && i > 0 {
			return s[:i], s[i:]
		}
		n += w
	}
	return s, ""
}

// runeEncodedLen is how many bytes encoding/json writes for r inside a
// string (with HTML escaping off).
func runeEncodedLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == '\u2028' || r == '\u2029':
		return 6
	}
	return utf8.RuneLen(r)
}

// encode is the JSON of v as sent: HTML characters are not escaped (the
// frame is read by JSON.parse, never put into a page).
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only strings, bools and slices of them: cannot fail.
		panic("web: encode frame: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func encodedLen(v any) int { return len(encode(v)) }

// clean makes s valid UTF-8, so that its encoding is what the page gets
// (encoding/json would otherwise swap each bad byte for U+FFFD).
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

// truncateBytes cuts s to at most n bytes at a character boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// safeLink is link when it is an absolute http(s) URL with a host, else
// "": a javascript: or data: link from a bug must stay inert text.
func safeLink(link string) string {
	if link == "" || len(link) > maxLink || !utf8.ValidString(link) || strings.ContainsAny(link, " \t\r\n\x00") {
		return ""
	}
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.String()
	}
	return ""
}
