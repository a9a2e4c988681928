package inject

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the injector's Prometheus series.
type Metrics struct {
	admissions *prometheus.CounterVec
	duration   prometheus.Histogram
}

// NewMetrics registers the injector's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warden_inject_admissions_total",
			Help: "Pod admissions reviewed by the injector, by outcome (injected, unchanged, opted_out, skipped, denied, bad_input, error).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "warden_inject_admission_duration_seconds",
			Help:    "Time to answer one AdmissionReview.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	for _, o := range Outcomes() {
		m.admissions.WithLabelValues(string(o))
	}
	for _, c := range []prometheus.Collector{m.admissions, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(o Outcome, d time.Duration) {
	m.admissions.WithLabelValues(string(o)).Inc()
	m.duration.Observe(d.Seconds())
}
