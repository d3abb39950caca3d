package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// OpResult is one measured operation at one concurrency.
type OpResult struct {
	Op          string  `json:"op"`
	Concurrency int     `json:"concurrency"`
	Count       int     `json:"count"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	WallSeconds float64 `json:"wallSeconds"`
	PerSecond   float64 `json:"perSecond"`
	P50ms       float64 `json:"p50Ms"`
	P95ms       float64 `json:"p95Ms"`
	P99ms       float64 `json:"p99Ms"`
}

// runConcurrent calls fn for i in [0,n) from c workers and measures each
// call. Failed calls count as errors and stay in the latency sample (a
// timeout is a latency too).
func runConcurrent(ctx context.Context, op string, n, c int, fn func(ctx context.Context, i int) error) (OpResult, []time.Duration) {
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Value
	wall := pool(ctx, n, c, func(i int) {
		t := time.Now()
		err := fn(ctx, i)
		lat[i] = time.Since(t)
		if err != nil {
			errs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	})
	r := summarize(op, c, lat, wall)
	r.Errors = int(errs.Load())
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = truncate(s, 300)
	}
	return r, lat
}

// combine merges rounds of one operation: latencies pooled, throughput
// over the rounds' summed wall time.
func combine(rounds []OpResult, lats [][]time.Duration) OpResult {
	var all []time.Duration
	var wall float64
	for i, r := range rounds {
		all = append(all, lats[i]...)
		wall += r.WallSeconds
	}
	out := summarize(rounds[0].Op, rounds[0].Concurrency, all, time.Duration(wall*float64(time.Second)))
	for _, r := range rounds {
		out.Errors += r.Errors
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
	}
	return out
}

func summarize(op string, c int, lat []time.Duration, wall time.Duration) OpResult {
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	r := OpResult{Op: op, Concurrency: c, Count: len(s), WallSeconds: wall.Seconds()}
	if wall > 0 {
		r.PerSecond = float64(len(s)) / wall.Seconds()
	}
	r.P50ms, r.P95ms, r.P99ms = pct(s, .50), pct(s, .95), pct(s, .99)
	return r
}

// pct is the nearest-rank percentile of sorted durations, in ms.
func pct(s []time.Duration, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// --- Prometheus text format: just enough to read counters, gauges and
// histograms without a dependency on the exposition libraries.

type sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

type metrics []sample

func scrape(ctx context.Context, hc *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, res.Status, b)
	}
	return parseMetrics(res.Body)
}

func parseMetrics(r io.Reader) (metrics, error) {
	var out metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{Labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			continue
		}
		s.Name, line = line[:i], line[i:]
		if line[0] == '{' {
			rest, err := parseLabels(line[1:], s.Labels)
			if err != nil {
				return nil, err
			}
			line = rest
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `a="x",b="y"}` and returns what follows the brace.
func parseLabels(s string, into map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			return "", fmt.Errorf("unterminated label set")
		}
		if s[0] == '}' {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return "", fmt.Errorf("bad label near %q", truncate(s, 40))
		}
		name := s[:eq]
		s = s[eq+2:]
		var b strings.Builder
		for {
			if s == "" {
				return "", fmt.Errorf("unterminated label value")
			}
			c := s[0]
			s = s[1:]
			if c == '\\' && s != "" {
				switch s[0] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[0])
				}
				s = s[1:]
				continue
			}
			if c == '"' {
				break
			}
			b.WriteByte(c)
		}
		into[name] = b.String()
	}
}

// sum adds the samples called name whose labels match every pair in want.
func (m metrics) sum(name string, want map[string]string) float64 {
	var t float64
	for _, s := range m {
		if s.Name == name && labelsMatch(s.Labels, want) {
			t += s.Value
		}
	}
	return t
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// histogram is cumulative bucket counts by upper bound.
type histogram map[float64]float64

// hist collects the buckets of histogram name (summed over other labels).
func (m metrics) hist(name string, want map[string]string) histogram {
	h := histogram{}
	for _, s := range m {
		if s.Name != name+"_bucket" || !labelsMatch(s.Labels, want) {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		h[le] += s.Value
	}
	return h
}

// minus is the histogram of the observations made between two scrapes.
func (h histogram) minus(before histogram) histogram {
	out := histogram{}
	for le, v := range h {
		out[le] = v - before[le]
	}
	return out
}

func (h histogram) count() float64 { return h[math.Inf(1)] }

// quantile interpolates linearly inside the bucket holding the rank, as
// Prometheus' histogram_quantile does; the answer is only as fine as the
// bucket bounds.
func (h histogram) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, le := range bounds {
		c := h[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevBound // above the highest finite bucket
			}
			if c == prevCount {
				return le
			}
			return prevBound + (le-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = le, c
	}
	return prevBound
}
