package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// budgetMetrics exports what the send budget does (telegram.BudgetMetrics).
type budgetMetrics struct {
	waits     *prometheus.HistogramVec
	fallbacks prometheus.Counter
}

func newBudgetMetrics(reg *prometheus.Registry) *budgetMetrics {
	b := &budgetMetrics{
		waits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shebao_send_budget_wait_seconds", Help: "Time a Bot API message waited for the send budget (TELEGRAM_SEND_RATE, 1 a second per chat, 20 a minute per group), by class: interactive (answers) or bulk (reminders).",
			Buckets: []float64{0, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"class"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shebao_send_budget_fallbacks_total", Help: "Messages paced by this replica alone because the shared send budget in Redis did not answer.",
		}),
	}
	reg.MustRegister(b.waits, b.fallbacks)
	return b
}

func (b *budgetMetrics) BudgetWait(class string, d time.Duration) {
	b.waits.WithLabelValues(class).Observe(d.Seconds())
}

func (b *budgetMetrics) BudgetFallback() { b.fallbacks.Inc() }
