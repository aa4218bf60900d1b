// Package wechattest is a fake of WeChat's side of an Official Account
// for tests, playing both directions: it POSTs signed (and, in safe mode,
// encrypted) XML messages and events to the server under test, as WeChat
// does, and serves the API the server calls back (access_token, the
// customer-service and subscription-message sends, the menu) with WeChat's
// rules — a token refresh invalidates the previous token, the 48-hour
// window and its allowance are enforced — and failures on demand: errcode
// 45015, 45047, 40001, -1, HTTP 5xx, a timeout, each before or after the
// message was delivered.
//
// It implements the protocol from WeChat's documentation with the standard
// library only, independently of the library the adapter uses, so that the
// two check each other.
package wechattest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config of a Fake. AppID, AppSecret and Token are required; AESKey (43
// characters) turns on safe mode for what the fake POSTs.
type Config struct {
	AppID, AppSecret, Token, AESKey string
	// ServerURL is where the server under test takes WeChat's POSTs,
	// path included; set it later with SetServer.
	ServerURL string
	// Now is the fake's clock (CreateTime, windows); time.Now when nil.
	Now func() time.Time
	// TokenGrace is how long a token stays valid after a newer one was
	// issued; WeChat's is about 5 minutes, the default here is none.
	TokenGrace time.Duration
	// Allowances per kind of interaction; defaults are WeChat's since
	// June 2023: a message opens 5 sends for 48 hours, a menu click or a
	// follow 3 for a minute.
	MessageSends, EventSends   int
	MessageWindow, EventWindow time.Duration
}

// Failure is what a failing call does.
type Failure struct {
	ErrCode int  // answer 200 with this errcode (45015, 45047, 40001, -1, …)
	Status  int  // answer this HTTP status (502, 503)
	Hang    bool // answer nothing until the caller gives up
	// Delivered: the message reaches the user before the failure (a
	// timeout or 5xx after the work was done).
	Delivered bool
}

// Sent is one message the fake delivered to a user.
type Sent struct {
	To       string
	Text     string // customer-service text
	Template string // subscription message: the template id
	Data     map[string]string
}

// Fake is the fake WeChat. Its methods are safe for concurrent use.
type Fake struct {
	cfg Config
	srv *httptest.Server
	c   *http.Client

	mu        sync.Mutex
	server    string
	tokens    map[string]time.Time // token -> valid until (zero: current)
	issued    int
	sent      []Sent
	fail      map[string][]Failure // by API path
	calls     map[string]int
	windows   map[string]*window
	subs      map[string]bool // openid|template accepted
	menu      []byte
	msgID     int64
	rejected  int           // customer-service sends refused (window, allowance)
	changed   chan struct{} // closed and replaced at every change
	hangDone  chan struct{}
	closeOnce sync.Once
}

type window struct {
	until time.Time
	left  int
}

// New starts a Fake; Close stops it.
func New(cfg Config) *Fake {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MessageSends == 0 {
		cfg.MessageSends = 5
	}
	if cfg.EventSends == 0 {
		cfg.EventSends = 3
	}
	if cfg.MessageWindow == 0 {
		cfg.MessageWindow = 48 * time.Hour
	}
	if cfg.EventWindow == 0 {
		cfg.EventWindow = time.Minute
	}
	f := &Fake{
		cfg: cfg, server: cfg.ServerURL,
		tokens: map[string]time.Time{}, fail: map[string][]Failure{}, calls: map[string]int{},
		windows: map[string]*window{}, subs: map[string]bool{},
		msgID: 24_000_000_000_000_000, changed: make(chan struct{}), hangDone: make(chan struct{}),
		c: &http.Client{Timeout: 10 * time.Second},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/token", f.token)
	mux.HandleFunc("POST /cgi-bin/message/custom/send", f.withToken(f.customSend))
	mux.HandleFunc("POST /cgi-bin/message/subscribe/bizsend", f.withToken(f.subscribeSend))
	mux.HandleFunc("POST /cgi-bin/menu/create", f.withToken(f.menuCreate))
	mux.HandleFunc("GET /cgi-bin/get_api_domain_ip", f.withToken(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, map[string]any{"ip_list": []string{"127.0.0.1"}})
	}))
	f.srv = httptest.NewServer(mux)
	return f
}

// URL is the base URL of the fake API (WECHAT_API_URL).
func (f *Fake) URL() string { return f.srv.URL }

// Close stops the fake; calls left hanging are let go.
func (f *Fake) Close() {
	f.closeOnce.Do(func() { close(f.hangDone) })
	f.srv.Close()
}

// SetServer sets where messages are POSTed.
func (f *Fake) SetServer(u string) {
	f.mu.Lock()
	f.server = u
	f.mu.Unlock()
}

// Fail makes the next calls of an API path ("/cgi-bin/message/custom/send")
// fail, one failure per call, in order.
func (f *Fake) Fail(path string, fs ...Failure) {
	f.mu.Lock()
	f.fail[path] = append(f.fail[path], fs...)
	f.mu.Unlock()
}

// InvalidateTokens makes every token issued so far invalid at once, as a
// refresh elsewhere (another program using the same AppSecret) does.
func (f *Fake) InvalidateTokens() {
	f.mu.Lock()
	for t := range f.tokens {
		delete(f.tokens, t)
	}
	f.mu.Unlock()
}

// TokensIssued counts access tokens handed out.
func (f *Fake) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

// Calls counts calls of an API path, failed ones included.
func (f *Fake) Calls(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

// Rejected counts customer-service sends WeChat's rules refused (45015,
// 45047), not counting failures made with Fail.
func (f *Fake) Rejected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejected
}

// Sent returns what was delivered to openid ("" for everyone), in order.
func (f *Fake) Sent(openid string) []Sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Sent
	for _, s := range f.sent {
		if openid == "" || s.To == openid {
			out = append(out, s)
		}
	}
	return out
}

// Texts returns the customer-service texts delivered to openid.
func (f *Fake) Texts(openid string) []string {
	var out []string
	for _, s := range f.Sent(openid) {
		if s.Template == "" {
			out = append(out, s.Text)
		}
	}
	return out
}

// Menu returns the last menu set, as JSON.
func (f *Fake) Menu() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.menu
}

// Wait returns when cond holds, or fails after a generous bound (the
// work is asynchronous; the bound only keeps a broken test from hanging).
func (f *Fake) Wait(ctx context.Context, cond func() bool) error {
	// Long enough for a chat parked after failed sends (30 s) to be
	// tried again on a loaded machine: the tests assert that nothing is
	// lost, not how fast.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wechattest: condition not met: %w", ctx.Err())
		}
	}
}

// WaitTexts waits until openid has at least n texts and returns them.
func (f *Fake) WaitTexts(ctx context.Context, openid string, n int) ([]string, error) {
	err := f.Wait(ctx, func() bool { return len(f.Texts(openid)) >= n })
	return f.Texts(openid), err
}

func (f *Fake) changedLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Message is what the fake POSTs.
type Message struct {
	From     string
	Type     string // text, event, image
	Text     string
	Event    string // subscribe, unsubscribe, CLICK, subscribe_msg_popup_event
	EventKey string
	// Template and Status, for subscribe_msg_popup_event: "accept" or
	// "reject".
	Template, Status string
	MsgID            int64 // 0: a new one (text); events have none
	CreateTime       int64 // 0: now
}

// Delivery is how one POST went.
type Delivery struct {
	Status int
	Body   string
	MsgID  int64
}

// PostOpts tamper with a POST, for the server's checks.
type PostOpts struct {
	BadSignature bool
	Timestamp    int64 // instead of now
}

// Text POSTs a text message from openid.
func (f *Fake) Text(ctx context.Context, openid, text string) (Delivery, error) {
	return f.Post(ctx, Message{From: openid, Type: "text", Text: text}, PostOpts{})
}

// Event POSTs an event from openid.
func (f *Fake) Event(ctx context.Context, openid, event, key string) (Delivery, error) {
	return f.Post(ctx, Message{From: openid, Type: "event", Event: event, EventKey: key}, PostOpts{})
}

// Post POSTs m as WeChat does. The window and allowance it opens for the
// user start when the user sends it, as on WeChat: before the server is
// told, so a reply the server sends the moment it acknowledges finds the
// window open (opening it after the 200 raced the server's first reply).
// A request the server refuses (a bad signature, a stale timestamp)
// opens nothing.
func (f *Fake) Post(ctx context.Context, m Message, o PostOpts) (Delivery, error) {
	now := f.cfg.Now()
	f.mu.Lock()
	if m.Type == "text" && m.MsgID == 0 {
		f.msgID++
		m.MsgID = f.msgID
	}
	server := f.server
	f.mu.Unlock()
	if m.CreateTime == 0 {
		m.CreateTime = now.Unix()
	}
	inner := messageXML(f.cfg.AppID, m)
	ts := now.Unix()
	if o.Timestamp != 0 {
		ts = o.Timestamp
	}
	timestamp := strconv.FormatInt(ts, 10)
	nonce := strconv.FormatInt(int64(binary.BigEndian.Uint32(randBytes(4))), 10)
	q := url.Values{"timestamp": {timestamp}, "nonce": {nonce}, "openid": {m.From}}
	q.Set("signature", Sign(f.cfg.Token, timestamp, nonce))
	body := inner
	if f.cfg.AESKey != "" {
		enc, err := Encrypt(f.cfg.AESKey, f.cfg.AppID, []byte(inner))
		if err != nil {
			return Delivery{}, err
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", Sign(f.cfg.Token, timestamp, nonce, enc))
		body = "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
	}
	if o.BadSignature {
		q.Set("signature", strings.Repeat("0", 40))
		if q.Has("msg_signature") {
			q.Set("msg_signature", strings.Repeat("0", 40))
		}
	}
	genuine := !o.BadSignature && o.Timestamp == 0
	if genuine {
		f.mu.Lock()
		f.open(m, now)
		f.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		return Delivery{}, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := f.c.Do(req)
	if err != nil {
		return Delivery{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	d := Delivery{Status: resp.StatusCode, Body: string(b), MsgID: m.MsgID}
	if resp.StatusCode == http.StatusOK && !genuine {
		f.mu.Lock()
		f.open(m, now)
		f.mu.Unlock()
	}
	return d, nil
}

// open starts the window an interaction gives, as WeChat counts it: the
// latest interaction's allowance replaces the previous one.
func (f *Fake) open(m Message, now time.Time) {
	switch {
	case m.Type != "event":
		f.windows[m.From] = &window{until: now.Add(f.cfg.MessageWindow), left: f.cfg.MessageSends}
	case m.Event == "subscribe" || m.Event == "CLICK" || m.Event == "SCAN":
		f.windows[m.From] = &window{until: now.Add(f.cfg.EventWindow), left: f.cfg.EventSends}
	case m.Event == "unsubscribe":
		delete(f.windows, m.From)
	case m.Event == "subscribe_msg_popup_event":
		f.subs[m.From+"|"+m.Template] = m.Status == "accept"
	}
}

// Resend POSTs the same message again, as WeChat retries one it got no
// answer to in 5 seconds.
func (f *Fake) Resend(ctx context.Context, m Message, msgID int64) (Delivery, error) {
	m.MsgID = msgID
	return f.Post(ctx, m, PostOpts{})
}

// Verify makes the GET WeChat sends when the server URL is configured and
// returns the body (the echostr on success).
func (f *Fake) Verify(ctx context.Context, bad bool) (int, string, error) {
	ts := strconv.FormatInt(f.cfg.Now().Unix(), 10)
	sig := Sign(f.cfg.Token, ts, "42")
	if bad {
		sig = strings.Repeat("f", 40)
	}
	q := url.Values{"timestamp": {ts}, "nonce": {"42"}, "signature": {sig}, "echostr": {"echo-7731"}}
	f.mu.Lock()
	server := f.server
	f.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"?"+q.Encode(), nil)
	resp, err := f.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func messageXML(appID string, m Message) string {
	var b strings.Builder
	b.WriteString("<xml><ToUserName><![CDATA[gh_fake]]></ToUserName>")
	fmt.Fprintf(&b, "<FromUserName><![CDATA[%s]]></FromUserName>", m.From)
	fmt.Fprintf(&b, "<CreateTime>%d</CreateTime>", m.CreateTime)
	fmt.Fprintf(&b, "<MsgType><![CDATA[%s]]></MsgType>", m.Type)
	switch m.Type {
	case "text":
		var esc bytes.Buffer
		xml.EscapeText(&esc, []byte(m.Text))
		fmt.Fprintf(&b, "<Content>%s</Content>", esc.String())
	case "event":
		fmt.Fprintf(&b, "<Event><![CDATA[%s]]></Event>", m.Event)
		if m.EventKey != "" {
			fmt.Fprintf(&b, "<EventKey><![CDATA[%s]]></EventKey>", m.EventKey)
		}
		if m.Event == "subscribe_msg_popup_event" {
			fmt.Fprintf(&b, "<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[%s]]></TemplateId>"+
				"<SubscribeStatusString><![CDATA[%s]]></SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent>",
				m.Template, m.Status)
		}
	}
	if m.MsgID != 0 {
		fmt.Fprintf(&b, "<MsgId>%d</MsgId>", m.MsgID)
	}
	b.WriteString("</xml>")
	return b.String()
}

// Sign is WeChat's signature: SHA-1 over the sorted, concatenated parts.
func Sign(parts ...string) string {
	s := append([]string(nil), parts...)
	sort.Strings(s)
	h := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(h[:])
}

// Encrypt is safe mode's encryption of msg: AES-256-CBC under the
// EncodingAESKey, IV the key's first 16 bytes, over 16 random bytes, the
// message length (4 bytes, big endian), the message and the AppID, PKCS#7
// padded to 32 bytes; base64.
func Encrypt(aesKey, appID string, msg []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(aesKey + "=")
	if err != nil || len(key) != 32 {
		return "", fmt.Errorf("wechattest: bad AES key")
	}
	plain := append(randBytes(16), binary.BigEndian.AppendUint32(nil, uint32(len(msg)))...)
	plain = append(append(plain, msg...), appID...)
	pad := 32 - len(plain)%32
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, _ := aes.NewCipher(key)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out), nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// NewAESKey returns a random EncodingAESKey (43 characters).
func NewAESKey() string {
	return strings.TrimRight(base64.StdEncoding.EncodeToString(randBytes(32)), "=")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, map[string]any{"errcode": code, "errmsg": msg})
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.URL.Path]++
	if fs := f.fail[r.URL.Path]; len(fs) > 0 {
		f.fail[r.URL.Path] = fs[1:]
		f.failWith(w, r, fs[0])
		return
	}
	if q.Get("grant_type") != "client_credential" || q.Get("appid") != f.cfg.AppID || q.Get("secret") != f.cfg.AppSecret {
		writeErr(w, 40125, "invalid appsecret")
		return
	}
	now := f.cfg.Now()
	for t, until := range f.tokens {
		if until.IsZero() {
			f.tokens[t] = now.Add(f.cfg.TokenGrace)
		}
	}
	f.issued++
	tok := "TOKEN-" + strconv.Itoa(f.issued) + "-" + hex.EncodeToString(randBytes(6))
	f.tokens[tok] = time.Time{}
	f.changedLocked()
	writeJSON(w, map[string]any{"access_token": tok, "expires_in": 7200})
}

func (f *Fake) validLocked(tok string) bool {
	until, ok := f.tokens[tok]
	return ok && (until.IsZero() || f.cfg.Now().Before(until))
}

// withToken checks the access_token and applies a queued failure; a
// failure marked Delivered runs the call first.
func (f *Fake) withToken(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		f.mu.Lock()
		f.calls[r.URL.Path]++
		var fl *Failure
		if fs := f.fail[r.URL.Path]; len(fs) > 0 {
			fl = &fs[0]
			f.fail[r.URL.Path] = fs[1:]
		}
		if fl != nil && !fl.Delivered {
			f.failWith(w, r, *fl)
			f.mu.Unlock()
			return
		}
		if !f.validLocked(r.URL.Query().Get("access_token")) {
			f.mu.Unlock()
			writeErr(w, 40001, "invalid credential, access_token is invalid or not latest")
			return
		}
		f.mu.Unlock()
		if fl == nil {
			h(w, r, body)
			return
		}
		h(discard{}, r, body) // delivered, then the failure
		f.mu.Lock()
		f.failWith(w, r, *fl)
		f.mu.Unlock()
	}
}

// failWith answers with a failure; called with f.mu held, it lets go of
// it while hanging.
func (f *Fake) failWith(w http.ResponseWriter, r *http.Request, fl Failure) {
	switch {
	case fl.Hang:
		f.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-f.hangDone:
		}
		f.mu.Lock()
	case fl.Status != 0:
		http.Error(w, "upstream unavailable", fl.Status)
	default:
		writeErr(w, fl.ErrCode, "injected failure")
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func (f *Fake) customSend(w http.ResponseWriter, r *http.Request, body []byte) {
	var m struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.MsgType != "text" || m.ToUser == "" {
		writeErr(w, 40008, "invalid message type")
		return
	}
	if len(m.Text.Content) > 2048 {
		writeErr(w, 45002, "content size out of limit")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	win := f.windows[m.ToUser]
	switch {
	case win == nil || !f.cfg.Now().Before(win.until):
		f.rejected++
		f.changedLocked()
		writeErr(w, 45015, "response out of time limit or subscription is canceled")
		return
	case win.left <= 0:
		f.rejected++
		f.changedLocked()
		writeErr(w, 45047, "out of response count limit")
		return
	}
	win.left--
	f.sent = append(f.sent, Sent{To: m.ToUser, Text: m.Text.Content})
	f.changedLocked()
	writeErr(w, 0, "ok")
}

func (f *Fake) subscribeSend(w http.ResponseWriter, r *http.Request, body []byte) {
	var m struct {
		ToUser     string `json:"touser"`
		TemplateID string `json:"template_id"`
		Data       map[string]struct {
			Value string `json:"value"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.ToUser == "" || m.TemplateID == "" {
		writeErr(w, 47003, "argument invalid")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.subs[m.ToUser+"|"+m.TemplateID] {
		writeErr(w, 43101, "user refuse to accept the msg")
		return
	}
	data := map[string]string{}
	for k, v := range m.Data {
		if len([]rune(v.Value)) > 20 {
			writeErr(w, 47003, "argument invalid! data."+k+".value invalid")
			return
		}
		data[k] = v.Value
	}
	f.sent = append(f.sent, Sent{To: m.ToUser, Template: m.TemplateID, Data: data})
	f.changedLocked()
	writeErr(w, 0, "ok")
}

func (f *Fake) menuCreate(w http.ResponseWriter, r *http.Request, body []byte) {
	var m struct {
		Button []json.RawMessage `json:"button"`
	}
	if err := json.Unmarshal(body, &m); err != nil || len(m.Button) == 0 || len(m.Button) > 3 {
		writeErr(w, 40016, "invalid button size")
		return
	}
	f.mu.Lock()
	f.menu = body
	f.changedLocked()
	f.mu.Unlock()
	writeErr(w, 0, "ok")
}
