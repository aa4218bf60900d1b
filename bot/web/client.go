package web

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Client speaks the chat protocol as the page does, for tests and the load
// harness (which may not import the WebSocket library themselves). It
// keeps the session cookie in Jar, so a second Dial with the same Jar is
// the same browser.
type Client struct {
	ws     *websocket.Conn
	prefix string // random, so that two clients never make one id
	seq    atomic.Int64
}

// DialOptions configure Dial; all fields may be zero.
type DialOptions struct {
	// Jar holds the session cookie between dials; nil: a new jar (a new
	// browser).
	Jar http.CookieJar
	// Origin is sent as the Origin header, as a browser does; "" sends
	// none.
	Origin string
	// Header is added to the handshake (X-Forwarded-For in tests).
	Header http.Header
	// HTTPClient makes the handshake; nil: http.DefaultClient's transport
	// with Jar.
	HTTPClient *http.Client
}

// NewJar is a cookie jar for DialOptions.Jar.
func NewJar() http.CookieJar {
	j, _ := cookiejar.New(nil) // never fails without options
	return j
}

// Dial connects to the chat socket of the server at base ("http://host").
// A handshake the server refuses returns its status in the error.
func Dial(ctx context.Context, base string, o DialOptions) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/ws")
	if err != nil {
		return nil, fmt.Errorf("web chat url: %w", err)
	}
	if o.Jar == nil {
		o.Jar = NewJar()
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	hc2 := *hc
	hc2.Jar = o.Jar
	h := http.Header{}
	for k, v := range o.Header {
		h[k] = v
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: &hc2, HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial web chat: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial web chat: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	return &Client{ws: ws, prefix: rand.Text()[:8]}, nil
}

// NewID makes a client message id as the page does: "<ms>.<random>".
func (c *Client) NewID() string {
	return strconv.FormatInt(time.Now().UnixMilli(), 10) + "." + c.prefix + strconv.FormatInt(c.seq.Add(1), 36)
}

// Send writes one client frame.
func (c *Client) Send(ctx context.Context, f ClientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode client frame: %w", err)
	}
	return c.SendRaw(ctx, b)
}

// SendRaw writes bytes as one text frame.
func (c *Client) SendRaw(ctx context.Context, b []byte) error {
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send web frame: %w", err)
	}
	return nil
}

// Hello sends a hello frame.
func (c *Client) Hello(ctx context.Context, lang string) error {
	return c.Send(ctx, ClientFrame{Type: "hello", Lang: lang})
}

// Text sends what a user typed and returns its message id.
func (c *Client) Text(ctx context.Context, text string) (string, error) {
	id := c.NewID()
	return id, c.Send(ctx, ClientFrame{Type: "text", ID: id, Text: text})
}

// Press sends a button press of message msg and returns its message id.
func (c *Client) Press(ctx context.Context, data, msg string) (string, error) {
	id := c.NewID()
	return id, c.Send(ctx, ClientFrame{Type: "button", ID: id, Data: data, Msg: msg})
}

// Next reads the next server frame.
func (c *Client) Next(ctx context.Context) (Frame, error) {
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return Frame{}, fmt.Errorf("read web frame: %w", err)
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, fmt.Errorf("decode web frame: %w", err)
	}
	return f, nil
}

// Until reads frames up to and including the ack of message id, and
// returns them.
func (c *Client) Until(ctx context.Context, id string) ([]Frame, error) {
	var out []Frame
	for {
		f, err := c.Next(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, f)
		if f.Type == "ack" && f.For == id {
			return out, nil
		}
	}
}

// CloseStatus is the close code of err from Next, or -1.
func CloseStatus(err error) int { return int(websocket.CloseStatus(err)) }

// Close closes the connection normally.
func (c *Client) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake, as a phone
// losing its network does.
func (c *Client) CloseNow() error { return c.ws.CloseNow() }
