package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shebao/shebao/records"
)

// opsMetrics are what an operator watches beyond the traffic: which build
// runs, which records file each replica serves.
type opsMetrics struct {
	reloads *prometheus.CounterVec
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
	m.reg.MustRegister(info, m.ops.reloads)
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
