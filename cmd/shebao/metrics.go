package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/reminder"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/faq"
)

// metrics is the Prometheus side of the counters the packages report. It
// implements bot.Metrics and telegram.Metrics, and wraps the engine to time
// each message.
type metrics struct {
	reg       *prometheus.Registry
	updates   *prometheus.CounterVec
	outcomes  *prometheus.CounterVec
	apiErrors *prometheus.CounterVec
	latency   prometheus.Histogram
	reminders *prometheus.CounterVec
	passes    *prometheus.CounterVec
	rateLimit *prometheus.CounterVec
	sms       *prometheus.CounterVec
	// The web chat's (web.Metrics, web.go).
	webMessages *prometheus.CounterVec
	webConns    *prometheus.CounterVec
	ops         opsMetrics // metrics_ops.go
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_updates_total", Help: "Telegram updates by kind and outcome.",
		}, []string{"kind", "outcome"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_messages_total", Help: "Messages handled by the engine, by route and outcome (verifications, FAQ abstentions, …).",
		}, []string{"route", "outcome"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_telegram_api_errors_total", Help: "Failed Bot API calls by method and HTTP status (0: network or timeout).",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shebao_handle_seconds", Help: "Time the engine took per message.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15},
		}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_reminders_total", Help: "Reminders by outcome: sent, failed, or skipped_<reason>.",
		}, []string{"outcome"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shebao_reminder_passes_total", Help: "Reminder passes by result: complete, incomplete, idle (nothing to run, quiet hours, lease elsewhere).",
		}, []string{"result"}),
	}
	m.rateLimit = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shebao_rate_limit_total", Help: "Per-user rate limit verdicts (admitted, notified, skipped), by where they were decided (redis, or local while Redis was down).",
	}, []string{"verdict", "decided"})
	m.sms = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shebao_sms_codes_total", Help: "Verification codes by delivery outcome: sent, failed (the gateway refused or timed out), dropped (queue full).",
	}, []string{"outcome"})
	m.webMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shebao_web_messages_total", Help: "Web chat messages by kind (text, button, start) and outcome (handled, duplicate, limited, ip_limited, too_long, busy, ended, aborted, error).",
	}, []string{"kind", "outcome"})
	m.webConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shebao_web_connections_total", Help: "Web chat connections by outcome: opened, closed, or refused_<why> (origin, full, ip, draining).",
	}, []string{"outcome"})
	m.reg.MustRegister(m.updates, m.outcomes, m.apiErrors, m.latency, m.reminders, m.passes, m.rateLimit, m.sms, m.webMessages, m.webConns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.addOps()
	return m
}

func (m *metrics) Update(kind, outcome string)   { m.updates.WithLabelValues(kind, outcome).Inc() }
func (m *metrics) SMS(outcome string)            { m.sms.WithLabelValues(outcome).Inc() }
func (m *metrics) Outcome(route, outcome string) { m.outcomes.WithLabelValues(route, outcome).Inc() }
func (m *metrics) APIError(method string, code int) {
	m.apiErrors.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

// RateLimit counts one verdict of the per-user rate limit (bot.Limit).
func (m *metrics) RateLimit(v bot.Verdict, local bool) {
	where := "redis"
	if local {
		where = "local"
	}
	m.rateLimit.WithLabelValues(v.String(), where).Inc()
}

// ReminderPass counts one reminder pass (reminder.Metrics).
func (m *metrics) ReminderPass(s reminder.Summary) {
	result := "complete"
	switch {
	case s.Incomplete:
		result = "incomplete"
	case len(s.Slots) == 0:
		result = "idle"
	}
	m.passes.WithLabelValues(result).Inc()
	m.reminders.WithLabelValues("sent").Add(float64(s.Sent))
	m.reminders.WithLabelValues("failed").Add(float64(s.Failed))
	for reason, n := range s.Skipped {
		m.reminders.WithLabelValues("skipped_" + reason).Add(float64(n))
	}
}

// watchStore exports the store's Redis round trips and errors.
func (m *metrics) watchStore(trips, errs func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "shebao_redis_round_trips_total", Help: "Round trips to Redis (a pipeline counts once).",
	}, func() float64 { return float64(trips()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "shebao_redis_errors_total", Help: "Redis calls that failed or timed out.",
	}, func() float64 { return float64(errs()) }))
}

// watchConns exports the public listener's connection cap: the
// connections open, and those closed to make room for newcomers. Many
// sheds mean the cap is full (an attack, or LISTEN_MAX_CONNS too low).
func (m *metrics) watchConns(l *connLimit) {
	if l == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_http_connections", Help: "Connections open on LISTEN_ADDR.",
	}, func() float64 { return float64(l.Open()) }))
	for _, reason := range []string{"idle", "slow_header"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shebao_http_connections_shed_total", Help: "Connections on LISTEN_ADDR closed to make room under LISTEN_MAX_CONNS, by reason: idle on keep-alive, or slow to send a request header.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 {
			idle, slow := l.Shed()
			if reason == "idle" {
				return float64(idle)
			}
			return float64(slow)
		}))
	}
}

// watchFAQ exports the FAQ's counters.
func (m *metrics) watchFAQ(f *faq.FAQ) {
	m.reg.MustRegister(newFAQCollector(f))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// timed wraps a handler to observe its latency.
type timed struct {
	next telegram.Handler
	hist prometheus.Histogram
}

func (t timed) Handle(ctx context.Context, msg bot.Message) ([]bot.Reply, error) {
	start := time.Now()
	r, err := t.next.Handle(ctx, msg)
	t.hist.Observe(time.Since(start).Seconds())
	return r, err
}

// faqCollector reads the FAQ's cumulative counters at scrape time.
type faqCollector struct {
	f                                  *faq.FAQ
	questions, abstentions, llm, fallb *prometheus.Desc
}

func newFAQCollector(f *faq.FAQ) *faqCollector {
	return &faqCollector{
		f:           f,
		questions:   prometheus.NewDesc("shebao_faq_questions_total", "Questions answered by the FAQ, by kind of answer.", []string{"answer"}, nil),
		abstentions: prometheus.NewDesc("shebao_faq_abstentions_total", "Questions the FAQ declined as out of scope or below confidence.", nil, nil),
		llm:         prometheus.NewDesc("shebao_llm_calls_total", "LLM phrasing calls, by result.", []string{"result"}, nil),
		fallb:       prometheus.NewDesc("shebao_llm_fallbacks_total", "LLM phrasings rejected or failed, by reason; the retrieval answer was shown.", []string{"reason"}, nil),
	}
}

func (c *faqCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.questions
	ch <- c.abstentions
	ch <- c.llm
	ch <- c.fallb
}

func (c *faqCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	ch <- prometheus.MustNewConstMetric(c.questions, prometheus.CounterValue, float64(s.EntryAnswers), "entry")
	ch <- prometheus.MustNewConstMetric(c.questions, prometheus.CounterValue, float64(s.ArticleAnswers), "article")
	ch <- prometheus.MustNewConstMetric(c.abstentions, prometheus.CounterValue, float64(s.Abstentions))
	ch <- prometheus.MustNewConstMetric(c.llm, prometheus.CounterValue, float64(s.LLMCalls), "called")
	ch <- prometheus.MustNewConstMetric(c.llm, prometheus.CounterValue, float64(s.LLMAccepted), "accepted")
	for reason, n := range s.LLMFallbacks {
		ch <- prometheus.MustNewConstMetric(c.fallb, prometheus.CounterValue, float64(n), reason)
	}
}
