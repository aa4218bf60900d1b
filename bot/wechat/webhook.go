package wechat

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/officialaccount/message"
	"github.com/silenceper/wechat/v2/util"
)

// maxBody bounds a request from WeChat; messages are a few KiB.
const maxBody = 64 << 10

// Handler serves WeChat's requests at the server URL set in the console:
// the GET that checks the URL (echostr) and the POSTs of messages and
// events. A POST is answered "success" as soon as the message is held in
// the Store, well within WeChat's 5 seconds; it is handled afterwards by
// Run. A request whose signature does not check, or whose timestamp is
// stale, gets 401 and nothing is handled.
func (a *Adapter) Handler() http.Handler { return http.HandlerFunc(a.serve) }

func (a *Adapter) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if !a.fresh(ts) || !equal(q.Get("signature"), util.Signature(a.opts.Token, ts, nonce)) {
		a.m.Update("unsigned", "refused")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodGet:
		// The console's check of the URL: echo echostr.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, q.Get("echostr"))
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if a.opts.AESKey != "" {
		if body, err = a.open(q, body); err != nil {
			if errors.Is(err, errBadSignature) {
				a.m.Update("unsigned", "refused")
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			a.log.Warn("undecryptable message", "err", err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	}
	var mm message.MixMessage
	if err := xml.Unmarshal(body, &mm); err != nil || mm.FromUserName == "" {
		a.m.Update("undecodable", "ignored")
		// Signed, so WeChat's: any answer but success makes it retry.
		io.WriteString(w, "success")
		return
	}
	in := fromMix(&mm, a.now())
	if in.kind() == "ignored" {
		a.m.Update("ignored", "ignored")
		io.WriteString(w, "success")
		return
	}
	if a.run.Load() == nil && !a.stopped.Load() {
		// Starting: the listener may be up a moment before Run.
		t := time.NewTimer(startWait)
		select {
		case <-a.started:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	if a.run.Load() == nil {
		// Not running (not yet, or draining for shutdown): WeChat
		// retries, maybe on another replica.
		http.Error(w, "not running", http.StatusServiceUnavailable)
		return
	}
	raw, _ := json.Marshal(in)
	fresh, err := a.opts.Store.HoldMessage(r.Context(), channel, in.key(), in.At, raw)
	switch {
	case err != nil:
		// Answers must keep flowing when the store is down; the cost is
		// a message lost if this replica dies before it is handled.
		a.log.Warn("hold message; handling it without a hold", "err", err)
		a.m.Update(in.kind(), "unheld")
		a.spawn(in, false)
	case !fresh:
		// WeChat's retry of a message in hand: the first delivery's
		// worker (or recovery) answers it.
		a.m.Update(in.kind(), "duplicate")
	default:
		a.m.Update(in.kind(), "held")
		a.spawn(in, true)
	}
	io.WriteString(w, "success")
}

// Drain makes the handler refuse new messages with 503 (WeChat retries
// them, on another replica or after the restart) while the ones in hand
// finish; Run's end does the same.
func (a *Adapter) Drain() {
	a.stopped.Store(true)
	a.run.Store(nil)
}

// startWait is how long a message that comes before Run has started waits
// for it, well within WeChat's 5 seconds.
const startWait = 2 * time.Second

// fresh reports whether a request's timestamp is within MaxSkew of now:
// an older request is a replay.
func (a *Adapter) fresh(ts string) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	d := a.now().Sub(time.Unix(sec, 0))
	return d < a.opts.MaxSkew && d > -a.opts.MaxSkew
}

// equal compares signatures in constant time.
func equal(got, want string) bool {
	return len(got) == len(want) && subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

var errBadSignature = errors.New("bad message signature")

// open checks and decrypts a safe-mode body: msg_signature signs the
// ciphertext with the token, timestamp and nonce; the plaintext names
// the AppID.
func (a *Adapter) open(q map[string][]string, body []byte) ([]byte, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if get("encrypt_type") != "aes" {
		return nil, errBadSignature // safe mode takes no plaintext
	}
	var enc message.EncryptedXMLMsg
	if err := xml.Unmarshal(body, &enc); err != nil || enc.EncryptedMsg == "" {
		return nil, errors.New("no encrypted message")
	}
	if !equal(get("msg_signature"), util.Signature(a.opts.Token, get("timestamp"), get("nonce"), enc.EncryptedMsg)) {
		return nil, errBadSignature
	}
	_, plain, err := util.DecryptMsg(a.opts.AppID, enc.EncryptedMsg, a.opts.AESKey)
	if err != nil {
		return nil, errors.New("decrypt message") // the library's error may quote the AppID check only
	}
	return plain, nil
}

// aesKey decodes an EncodingAESKey.
func aesKey(k string) ([]byte, error) {
	if len(k) != 43 {
		return nil, errors.New("want 43 characters")
	}
	key, err := base64.StdEncoding.DecodeString(k + "=")
	if err != nil || len(key) != 32 {
		return nil, errors.New("not base64 for 32 bytes")
	}
	return key, nil
}

// fromMix reduces the library's message to what the adapter keeps.
func fromMix(m *message.MixMessage, now time.Time) inbound {
	in := inbound{
		From: string(m.FromUserName), Type: string(m.MsgType), MsgID: m.MsgID,
		Created: m.CreateTime, Event: string(m.Event), Key: m.EventKey, At: now,
	}
	if in.Created <= 0 {
		in.Created = now.Unix()
	}
	if in.Type == "text" {
		in.Text = m.Content
	}
	for _, e := range m.GetSubscribeMsgPopupEvents() {
		if e.SubscribeStatusString == "accept" {
			in.Accepted = append(in.Accepted, e.TemplateID)
		} else {
			in.Rejected = append(in.Rejected, e.TemplateID)
		}
	}
	return in
}
