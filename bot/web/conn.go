package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/shebao/shebao/bot"
)

// session is the browser session a connection belongs to.
type session struct {
	id   string   // the engine identity, "web:<tag>"
	tags []string // the token's tags, current key first
	// fresh: made for this connection; the page gets the greeting.
	fresh bool
	// guessed: the store could not be read at connect, so id is what a
	// session made under the current key would be; the first message
	// that reaches the store corrects it.
	guessed bool
	cookie  *http.Cookie // to set on the upgrade response
}

// newToken is 128 random bits, base64url: the cookie's value.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 16
}

// session finds the request's session, or starts one.
func (a *Adapter) session(ctx context.Context, r *http.Request) session {
	if ck, err := r.Cookie(cookieName); err == nil && validToken(ck.Value) {
		tags := a.opts.Keys.Names(tokenDomain, ck.Value)
		id, err := a.opts.Sessions.TouchWebSession(ctx, tags, a.opts.SessionTTL)
		switch {
		case err != nil:
			// Keep the cookie: a new session now would log the user out
			// for a Redis blip. The engine answers without state anyway.
			a.log.Warn("web session store unavailable; connecting without it", "err", err)
			return session{id: bot.ID(bot.ChannelWeb, tags[0]), tags: tags, guessed: true}
		case id != "":
			return session{id: id, tags: tags}
		}
		// Expired, ended (/forget) or never ours: a new one.
	}
	token := newToken()
	tag := a.opts.Keys.Name(tokenDomain, token)
	s := session{id: bot.ID(bot.ChannelWeb, tag), tags: []string{tag}, fresh: true}
	if err := a.opts.Sessions.CreateWebSession(ctx, tag, s.id, a.opts.NewSessionTTL); err != nil {
		a.log.Warn("store new web session; it lasts as long as this connection", "err", err)
	}
	s.cookie = &http.Cookie{
		Name: cookieName, Value: token, Path: "/",
		MaxAge:   int(a.opts.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: a.opts.SecureCookie || a.overTLS(r),
	}
	return s
}

// serveSocket upgrades to the chat socket and runs it.
func (a *Adapter) serveSocket(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		a.countConn("refused_draining")
		return
	}
	if !a.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		a.countConn("refused_origin")
		return
	}
	if a.conns.Add(1) > int64(a.opts.MaxConns) {
		a.conns.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		a.countConn("refused_full")
		return
	}
	defer a.conns.Add(-1)
	ip := a.clientIP(r)
	ipKey := ip.String()
	if !a.perIP.add(ipKey, a.opts.MaxConnsPerIP) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		a.countConn("refused_ip")
		return
	}
	defer a.perIP.remove(ipKey)

	// The request's context must not be used after the upgrade.
	base := context.WithoutCancel(r.Context())
	sctx, cancel := context.WithTimeout(base, 2*time.Second)
	sess := a.session(sctx, r)
	cancel()
	if sess.cookie != nil {
		http.SetCookie(w, sess.cookie)
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, scheme and port included
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		a.log.Debug("websocket handshake", "err", err)
		return
	}
	ws.SetReadLimit(MaxFrameIn)
	ctx, stop := context.WithCancel(base)
	c := &conn{a: a, ws: ws, ctx: ctx, cancel: stop, sess: sess, ip: ipKey, prefix: rand.Text()[:8]}
	if ip.IsValid() {
		c.remote = ipKey
	}
	c.lang.Store(new(string))
	a.countConn("opened")
	c.run()
	a.countConn("closed")
}

// conn is one open chat socket. Its read loop runs in the handler's
// goroutine; a worker goroutine exists only while messages wait, and the
// ping timer only fires: an idle connection costs one goroutine.
type conn struct {
	a      *Adapter
	ws     *websocket.Conn
	ctx    context.Context // ends when the socket closes
	cancel context.CancelFunc
	sess   session // written by the worker only, after the read loop started it
	ip     string  // the per-address limits' key
	remote string  // Message.Remote
	lang   atomic.Pointer[string]
	prefix string // of the ids of this connection's replies
	seq    atomic.Int64
	last   atomic.Int64 // when the client last sent a message (unix ns)
	timer  *time.Timer

	greeted bool // read loop only

	mu         sync.Mutex
	queue      []inbound
	workerDone chan struct{} // non-nil while a worker runs; closed when it stops
	leaving    bool          // going away or ended: take nothing more
}

// inbound is a message waiting to be handled.
type inbound struct {
	kind     string // text, button, start
	clientID string // "" for start
	updateID int64
	text     string
	data     string
	msg      string // the id of the message whose button was pressed
}

func (c *conn) run() {
	a := c.a
	a.wg.Add(1)
	defer a.wg.Done()
	a.live.Store(c, struct{}{})
	defer a.live.Delete(c)
	defer c.cancel()
	c.last.Store(a.now().UnixNano())
	c.timer = time.AfterFunc(a.opts.PingInterval, c.tick)
	defer c.timer.Stop()
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return // closed by either side, too big (1009), or a failed ping
		}
		if typ != websocket.MessageText {
			c.ws.Close(websocket.StatusUnsupportedData, "text frames only")
			return
		}
		c.receive(data)
	}
}

// tick pings the client and closes a connection idle for too long.
func (c *conn) tick() {
	if c.ctx.Err() != nil {
		return
	}
	idle := c.a.now().Sub(time.Unix(0, c.last.Load()))
	if idle >= c.a.opts.IdleTimeout && !c.busy() {
		c.ws.Close(CloseIdle, "idle")
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.a.opts.PingInterval)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.ws.CloseNow() // no pong: the client or its network is gone
		return
	}
	c.timer.Reset(c.a.opts.PingInterval)
}

func (c *conn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workerDone != nil
}

// receive takes one client frame, in the read loop.
func (c *conn) receive(data []byte) {
	var f ClientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		c.notice("bad_frame", "无法识别这条消息。", "That message could not be read.")
		return
	}
	switch f.Type {
	case "hello":
		lang := "zh"
		if f.Lang == "en" {
			lang = "en"
		}
		c.lang.Store(&lang)
		c.write(Frame{Type: "welcome", Lang: lang})
		if c.sess.fresh && !c.greeted {
			c.greeted = true
			c.enqueue(inbound{kind: "start", text: "/start"})
		}
		return
	case "text", "button":
	default:
		return // a newer page's frame: ignored, so the two can be rolled out in any order
	}
	c.last.Store(c.a.now().UnixNano())
	if !validClientID(f.ID) {
		c.notice("bad_frame", "无法识别这条消息。", "That message could not be read.")
		return
	}
	in := inbound{kind: f.Type, clientID: f.ID, updateID: updateID(f.ID)}
	if f.Type == "text" {
		if utf8.RuneCountInString(f.Text) > MaxText {
			c.refuse(in, "too_long",
				"消息太长了，最多2000字。请分几次发送，或只发问题的关键部分。",
				"That message is too long: at most 2,000 characters. Please split it, or send just the key part of your question.")
			return
		}
		in.text = f.Text
		if strings.TrimSpace(in.text) == "" {
			c.ack(in.clientID)
			return
		}
	} else {
		if f.Data == "" || len(f.Data) > maxButtonData || !utf8.ValidString(f.Data) {
			c.refuse(in, "bad_frame", "这个按钮已失效。", "That button no longer works.")
			return
		}
		in.data = f.Data
		if len(f.Msg) <= maxIDLen {
			in.msg = f.Msg
		}
	}
	if v := c.a.ipLimit.Check(c.ctx, []string{c.ip}, c.a.now())[0]; v != bot.Admit {
		c.refuse(in, "ip_limited",
			"您所在网络发来的消息太多了，请稍等一会儿再发。",
			"Too many messages are coming from your network. Please wait a moment and try again.")
		return
	}
	c.enqueue(in)
}

// validClientID: what the page makes ("<ms>.<random>"), or any short
// printable id a client picks.
func validClientID(id string) bool {
	if id == "" || len(id) > maxClientID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// updateID turns a client message id into the Coordinator's update id:
// the same id always gives the same number (a resent message is a
// duplicate), and the page's ids ("<ms since 1970>.<random>") number a
// session's messages in the order its tabs sent them. The result stays
// below 2^53, where Redis's scores are exact.
func updateID(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	sum := h.Sum64()
	if ms, rest, ok := strings.Cut(id, "."); ok && rest != "" {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil && n > 0 && n < 1<<41 {
			return n<<12 | int64(sum&0xfff)
		}
	}
	return int64(sum >> 11) // 53 bits
}

// refuse answers a message that will not be handled: a notice, and an ack
// so that the page does not send it again.
func (c *conn) refuse(in inbound, reason, zh, en string) {
	c.a.countMessage(in.kind, reason)
	c.notice(reason, zh, en)
	c.ack(in.clientID)
}

func (c *conn) enqueue(in inbound) {
	c.mu.Lock()
	switch {
	case c.leaving:
		// Going away: not acked, so the page sends it again on its next
		// connection.
		c.mu.Unlock()
		return
	case len(c.queue) >= queueLen:
		c.mu.Unlock()
		c.refuse(in, "busy", "请等上一个问题回答完再发。", "Please wait for the answer before sending more.")
		return
	}
	c.queue = append(c.queue, in)
	if c.workerDone == nil {
		c.workerDone = make(chan struct{})
		go c.work(c.workerDone)
	}
	c.mu.Unlock()
}

// work handles the queued messages one at a time, in order, then stops.
func (c *conn) work(done chan struct{}) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.ctx.Err() != nil {
			c.queue = nil
			c.workerDone = nil
			close(done)
			c.mu.Unlock()
			return
		}
		in := c.queue[0]
		c.queue = c.queue[1:]
		c.mu.Unlock()
		c.process(in)
	}
}

// process handles one message end to end: the claim (order and dedupe
// across tabs and replicas), the session and rate checks, the handler and
// the replies.
func (c *conn) process(in inbound) {
	a := c.a
	ctx, cancel := context.WithTimeout(c.ctx, a.opts.HandleTimeout)
	defer cancel()
	now := a.now()
	user := c.sess.id
	// The session check and the rate limit run while the claim is
	// waited for: three Redis calls, one round trip of latency.
	var touched chan touch
	var verdict chan bot.Verdict
	if in.kind != "start" {
		touched = make(chan touch, 1)
		go func() {
			id, err := a.opts.Sessions.TouchWebSession(ctx, c.sess.tags, a.opts.SessionTTL)
			touched <- touch{id, err}
		}()
		if a.opts.Limit != nil {
			verdict = make(chan bot.Verdict, 1)
			go func() { verdict <- a.opts.Limit.Check(ctx, []string{user}, now)[0] }()
		}
	}
	wait := func() {
		if touched != nil {
			<-touched
		}
		if verdict != nil {
			<-verdict
		}
	}
	var done func(bool)
	if co := a.opts.Coordinator; co != nil {
		d, dup, err := co.Begin(ctx, user, in.updateID)
		switch {
		case ctx.Err() != nil:
			wait()
			a.countMessage(in.kind, "aborted")
			return
		case err != nil:
			// Answers keep flowing while Redis is down; the cost is a
			// possible double answer to a resent message.
			a.log.Warn("coordinator unavailable; handling without dedupe", "chat", user, "err", err)
		case dup:
			wait()
			a.countMessage(in.kind, "duplicate")
			c.ack(in.clientID)
			return
		default:
			done = d
		}
	}
	finish := func(handled bool) {
		if done != nil {
			done(handled)
			done = nil
		}
	}
	defer finish(false)
	msg := bot.Message{
		Chat: user, User: user, Time: now, ChatType: bot.ChatPrivate,
		LanguageCode: *c.lang.Load(), Remote: c.remote,
	}
	if touched != nil {
		t := <-touched
		touched = nil
		switch {
		case t.err != nil:
			// The engine will find the store down too and say so.
		case t.id == "" && !c.sess.guessed:
			wait()
			a.countMessage(in.kind, "ended")
			c.endSession(false)
			return
		case t.id != "" && t.id != user:
			// Connected while the store was down, under a guessed id.
			c.sess.id, c.sess.guessed = t.id, false
			msg.Chat, msg.User = t.id, t.id
		}
	}
	if verdict != nil {
		v := <-verdict
		verdict = nil
		switch v {
		case bot.Skip:
			finish(false) // unanswered: a resend is asked about again
			c.refuse(in, "limited", "您发消息太快了，请稍等一会儿。", "You are sending messages too fast. Please wait a moment.")
			return
		case bot.Notify:
			msg.Limited = true
		}
	}
	switch in.kind {
	case "button":
		msg.Callback = in.data
	default:
		msg.Text = in.text
	}
	unlock, err := a.locks.Lock(ctx, msg.Chat)
	if err != nil {
		a.countMessage(in.kind, "aborted")
		return
	}
	stopTyping := c.typingAfter(a.opts.TypingDelay)
	replies, herr := a.opts.Handler.Handle(ctx, msg)
	stopTyping()
	unlock()
	if ctx.Err() != nil {
		// The socket closed or the handling took too long: unanswered,
		// so the page's resend is handled again.
		a.countMessage(in.kind, "aborted")
		return
	}
	// Handled: the engine's work is done and saved, so a resend of this
	// message is a duplicate even if writing the replies fails now.
	finish(true)
	outcome := "handled"
	if herr != nil {
		// The replies still hold a polite message for the user; the
		// detail is for the operator.
		a.log.Warn("handler failed", "kind", in.kind, "chat", msg.Chat, "err", herr)
		outcome = "error"
	}
	a.countMessage(in.kind, outcome)
	end := false
	for _, r := range replies {
		for _, f := range renderReply(r, in.msg, c.newID) {
			if c.write(f) != nil {
				return
			}
		}
		end = end || r.EndSession
	}
	if lang, ok := langButton(in); ok {
		// The conversation's language changed: the page follows.
		c.lang.Store(&lang)
		c.write(Frame{Type: "lang", Lang: lang})
	}
	c.ack(in.clientID)
	if end {
		c.endSession(true)
	}
}

// langButton reports a press of one of the engine's language buttons
// ("lang:en", "lang:en:start") and the language it picks.
func langButton(in inbound) (string, bool) {
	rest, ok := strings.CutPrefix(in.data, "lang:")
	lang, _, _ := strings.Cut(rest, ":")
	return lang, ok && in.kind == "button" && (lang == "zh" || lang == "en")
}

type touch struct {
	id  string
	err error
}

// endSession closes the connection of a session that has ended; the page
// reconnects at once and gets a new one. del also deletes it (after
// /forget).
func (c *conn) endSession(del bool) {
	c.mu.Lock()
	c.leaving = true
	c.mu.Unlock()
	if del {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
		err := c.a.opts.Sessions.EndWebSession(ctx, c.sess.tags)
		cancel()
		if err != nil {
			// Its identity's state is gone already; the record expires.
			c.a.log.Warn("delete ended web session", "err", err)
		}
	}
	go c.ws.Close(CloseSessionEnded, "session ended")
}

// goAway closes the connection for a shutdown once the message in hand is
// answered (or ctx ends); what is still queued is not acked, so the page
// sends it again on its next connection.
func (c *conn) goAway(ctx context.Context) {
	c.mu.Lock()
	c.leaving = true
	c.queue = nil
	done := c.workerDone
	c.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	c.ws.Close(websocket.StatusGoingAway, "server restarting")
}

// typingAfter sends a typing frame if the handler is still working after
// d. stop waits for a frame being written, so the indicator never follows
// the reply.
func (c *conn) typingAfter(d time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	t := time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			c.write(Frame{Type: "typing"})
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}

func (c *conn) newID() string {
	return "r" + c.prefix + "." + strconv.FormatInt(c.seq.Add(1), 10)
}

func (c *conn) write(f Frame) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.a.opts.WriteTimeout)
	defer cancel()
	err := c.ws.Write(ctx, websocket.MessageText, encode(f))
	if err != nil && !errors.Is(err, context.Canceled) {
		c.a.log.Debug("write web frame", "err", err)
	}
	return err
}

func (c *conn) ack(clientID string) {
	if clientID != "" {
		c.write(Frame{Type: "ack", For: clientID})
	}
}

func (c *conn) notice(reason, zh, en string) {
	text := zh
	if l := c.lang.Load(); l != nil && *l == "en" {
		text = en
	}
	c.write(Frame{Type: "notice", Reason: reason, Text: text})
}
