package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Summary condenses the samples of one variant. Durations are in
// milliseconds so that the JSON is readable.
type Summary struct {
	Name string    `json:"name"`
	N    int       `json:"n"`
	P50  float64   `json:"p50_ms"`
	P95  float64   `json:"p95_ms"`
	Min  float64   `json:"min_ms"`
	Max  float64   `json:"max_ms"`
	Mean float64   `json:"mean_ms"`
	Raw  []float64 `json:"samples_ms,omitempty"`
	// Phases holds the p50 of each phase of the operation, in order.
	Phases []Phase `json:"phases,omitempty"`
}

// Phase is the median duration of one step of a measured operation.
type Phase struct {
	Name string  `json:"name"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if p == 50 {
		// The median proper: the mean of the two middle values for even n.
		n := len(s)
		if n%2 == 1 {
			return s[n/2]
		}
		return (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

func summarize(name string, xs []float64) Summary {
	s := Summary{Name: name, N: len(xs), Raw: round2s(xs)}
	if len(xs) == 0 {
		return s
	}
	s.P50 = round2(percentile(xs, 50))
	s.P95 = round2(percentile(xs, 95))
	s.Min, s.Max = xs[0], xs[0]
	sum := 0.0
	for _, x := range xs {
		s.Min = math.Min(s.Min, x)
		s.Max = math.Max(s.Max, x)
		sum += x
	}
	s.Min, s.Max, s.Mean = round2(s.Min), round2(s.Max), round2(sum/float64(len(xs)))
	return s
}

// phaseSamples accumulates per-phase samples in first-seen order.
type phaseSamples struct {
	order []string
	xs    map[string][]float64
}

func (p *phaseSamples) add(name string, d time.Duration) {
	if p.xs == nil {
		p.xs = map[string][]float64{}
	}
	if _, ok := p.xs[name]; !ok {
		p.order = append(p.order, name)
	}
	p.xs[name] = append(p.xs[name], ms(d))
}

func (p *phaseSamples) summary() []Phase {
	var out []Phase
	for _, n := range p.order {
		out = append(out, Phase{Name: n, P50: round2(percentile(p.xs[n], 50)), P95: round2(percentile(p.xs[n], 95))})
	}
	return out
}

// pairedDiffMedian is the median of a[i]-b[i] over the common prefix: with
// interleaved runs it cancels slow drifts of the machine's load.
func pairedDiffMedian(a, b []float64) float64 {
	n := min(len(a), len(b))
	if n == 0 {
		return 0
	}
	d := make([]float64, n)
	for i := range n {
		d[i] = a[i] - b[i]
	}
	return round2(percentile(d, 50))
}

func round2(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return math.Round(x*100) / 100
}

func round2s(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round2(x)
	}
	return out
}

func fmtMs(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", x)
}

func fmtMiB(kib int64) string {
	return fmt.Sprintf("%.1f", float64(kib)/1024)
}
