package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/telegram"
	"github.com/shebao/shebao/records"
)

// opsMetrics are what an operator watches beyond the traffic: which build
// runs, which records file each replica serves.
type opsMetrics struct {
	reloads *prometheus.CounterVec
	apiCall *prometheus.HistogramVec // Bot API calls by method
	llmCall *prometheus.HistogramVec // LLM calls by kind and result
}

func (m *metrics) addOps() {
	b := readBuild()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shebao_build_info", Help: "Always 1; the labels say which build runs (version stamped at build time, VCS revision, Go release).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.Go},
	})
	info.Set(1)
	m.ops.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shebao_records_reloads_total", Help: "New records files found while serving, by result: reloaded, or refused (the previous file kept serving).",
	}, []string{"result"})
	// Bot API calls take tens of milliseconds when well, up to the 20 s
	// call timeout when not; LLM calls up to LLM_TIMEOUT (15 s).
	m.ops.apiCall = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "shebao_telegram_api_seconds", Help: "Time of one attempt of a Bot API call, answered or failed, by method (the getUpdates long poll is left out).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
	}, []string{"method"})
	m.ops.llmCall = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "shebao_llm_call_seconds", Help: "Time of one call to the LLM endpoint, by call (phrase, rerank) and result (ok, error).",
		Buckets: []float64{.1, .25, .5, 1, 2, 4, 8, 15, 30},
	}, []string{"call", "result"})
	m.reg.MustRegister(info, m.ops.reloads, m.ops.apiCall, m.ops.llmCall)
}

// APICall observes one Bot API call attempt (telegram.Metrics).
func (m *metrics) APICall(method string, d time.Duration) {
	m.ops.apiCall.WithLabelValues(method).Observe(d.Seconds())
}

// llmObserver is what times the LLM calls for m: nil unless m is the
// Prometheus metrics of serve.
func llmObserver(m bot.Metrics) func(call string, d time.Duration, err error) {
	if pm, ok := m.(*metrics); ok && pm != nil {
		return pm.llmCall
	}
	return nil
}

// watchTelegram exports the adapter's breaker state and the backlog of
// held updates.
func (m *metrics) watchTelegram(tg *telegram.Adapter) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_telegram_breaker_open", Help: "1 while the Bot API is failing and calls wait for the breaker's probe, else 0.",
	}, func() float64 {
		if tg.BreakerOpen() {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_telegram_update_backlog", Help: "Updates fetched by polling and waiting to be handled, in memory or held in Redis (0 with a webhook).",
	}, func() float64 { return float64(tg.Backlog()) }))
}

// llmCall observes one LLM call (faq.LLMConfig.Observe).
func (m *metrics) llmCall(call string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.ops.llmCall.WithLabelValues(call, result).Observe(d.Seconds())
}

// recordsReload counts one reload of RECORDS_DB (recordsWatch).
func (m *metrics) recordsReload(result string) { m.ops.reloads.WithLabelValues(result).Inc() }

// watchRecords exports what the records file being served holds, so that
// replicas serving different files stand out.
func (m *metrics) watchRecords(db *records.DB) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_records_persons", Help: "Persons in the records file being served (0 for the demo records).",
	}, func() float64 { return float64(db.Info().Persons) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shebao_records_last_import_timestamp_seconds", Help: "When the last import into the records file being served finished (Unix time; 0 when unknown).",
	}, func() float64 {
		t := db.Info().LastImport
		if t.IsZero() {
			return 0
		}
		return float64(t.Unix())
	}))
}
