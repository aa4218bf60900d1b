package web

// The frames of PROTOCOL.md, as Go values: the adapter writes Frames and
// reads ClientFrames; Client (client.go) does the reverse for tests and
// the load harness.

// Frame is one server → client message. Which fields are set depends on
// Type:
//
//	reply    ID, Replaces (optional), Blocks, Buttons: one bot message
//	typing   nothing: the bot is working on a slow answer
//	notice   Text, Reason: a status line (too long, too fast, busy)
//	welcome  Lang: the answer to hello; the connection is ready
//	lang     Lang: the conversation switched language (a language button)
//	ack      For: the client message is settled (answered, a duplicate, or
//	         refused with a notice); the page stops offering to resend it
type Frame struct {
	Type     string     `json:"type"`
	ID       string     `json:"id,omitempty"`
	Replaces string     `json:"replaces,omitempty"`
	Blocks   []Block    `json:"blocks,omitempty"`
	Buttons  [][]Button `json:"buttons,omitempty"`
	Text     string     `json:"text,omitempty"`
	Lang     string     `json:"lang,omitempty"`
	For      string     `json:"for,omitempty"`
	// Reason says why a notice was sent: too_long, rate, busy, bad_frame.
	Reason string `json:"reason,omitempty"`
}

// Block is a paragraph ("p"), a bullet item ("li"), statute text
// ("quote"), each of Spans, or a citation ("cite", Cite).
type Block struct {
	Kind  string `json:"kind"`
	Spans []Span `json:"spans,omitempty"`
	Cite  *Cite  `json:"cite,omitempty"`
}

// Span is a run of text: bold, italic, a link (http(s) only).
type Span struct {
	Text string `json:"text"`
	B    bool   `json:"b,omitempty"`
	I    bool   `json:"i,omitempty"`
	Href string `json:"href,omitempty"`
}

// Cite is an article a reply rests on, shown as an expandable text.
type Cite struct {
	Label        string `json:"label"`
	Key          string `json:"key,omitempty"`
	Text         string `json:"text,omitempty"`
	English      string `json:"english,omitempty"`
	EnglishLabel string `json:"english_label,omitempty"`
}

// Button is a reply button: "callback" sends Data back, "url" opens Data,
// "code" asks for the code just sent by SMS.
type Button struct {
	Text string `json:"text"`
	Kind string `json:"kind"`
	Data string `json:"data,omitempty"`
}

// ClientFrame is one client → server message:
//
//	hello   Lang: sent after each (re)connect, and when the page's language changes
//	text    ID, Text: what the user typed
//	button  ID, Data, Msg: a callback button of message Msg was pressed
//
// ID is the client's id of the message, unique in the session ("<ms since
// 1970>.<random>"): a message resent after a reconnect keeps it and is
// answered once.
type ClientFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	Text string `json:"text,omitempty"`
	Data string `json:"data,omitempty"`
	Msg  string `json:"msg,omitempty"`
	Lang string `json:"lang,omitempty"`
}
