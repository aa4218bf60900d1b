package wechat

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/wechat/wechattest"
)

// BenchmarkAcknowledge is the time from WeChat's POST to the "success"
// answer — signature, decoding, the hold in Redis (REDIS_URL, else a
// miniredis) — while the held messages are handled behind it by an
// engine that answers nothing. WeChat allows 5 s.
func BenchmarkAcknowledge(b *testing.B) {
	e := newEnv(b, envOpts{handler: func(bot.Handler) bot.Handler {
		return handlerFunc(func(context.Context, bot.Message) ([]bot.Reply, error) { return nil, nil })
	}})
	a := e.adapters[0]
	h := a.Handler()
	ts := strconv.FormatInt(e.now().Unix(), 10)
	q := url.Values{"timestamp": {ts}, "nonce": {"42"}, "signature": {wechattest.Sign(a.opts.Token, ts, "42")}}
	target := "/wechat?" + q.Encode()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		body := fmt.Sprintf("<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[oBench%d]]></FromUserName>"+
			"<CreateTime>%s</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[查社保缴费记录要钱吗]]></Content><MsgId>%d</MsgId></xml>", i%500, ts, 1_000_000+i)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, target, strings.NewReader(body)))
		if w.Code != http.StatusOK || w.Body.String() != "success" {
			b.Fatalf("answer %d %q", w.Code, w.Body.String())
		}
	}
}
