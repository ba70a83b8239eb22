// The etcd load generator on etcd's own Go client (clientv3): the same contract as
// etcd_load.py, so the comparison measures etcd, not a Python client's cost.
//
//	etcdload '<json LoadConfig>'
//
// Each of `outstanding` goroutines keeps one request in flight: a Put of a random key
// from the key space, or a linearizable Get of one key (clientv3's default), over
// `channels_per_endpoint` clients per endpoint. A request counts if it completes
// inside the measured window (after the warm-up); its latency goes into a log-bucket
// histogram of the same buckets as nodehost.bench.Histogram. The last stdout line is
// one JSON report: count, seconds, errors by gRPC code, the histogram, CPU seconds
// in the window and peak RSS.
//
// Built by etcd_go.py with GOPATH mode against Debian's golang-etcd-server-dev.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc/status"
)

const keySpace = 100000
const readKey = "compare-read"
const subBuckets = 64

type loadConfig struct {
	Endpoints           []string `json:"endpoints"`
	Mode                string   `json:"mode"`
	Outstanding         int      `json:"outstanding"`
	Warmup              float64  `json:"warmup"`
	Duration            float64  `json:"duration"`
	Payload             int      `json:"payload"`
	ChannelsPerEndpoint int      `json:"channels_per_endpoint"`
	Seed                int64    `json:"seed"`
	RequestTimeout      float64  `json:"request_timeout"`
}

type histogram struct {
	counts map[int]int
	total  int
	maxUs  float64
}

func newHistogram() *histogram { return &histogram{counts: map[int]int{}} }

func (h *histogram) record(seconds float64) {
	us := seconds * 1e6
	bucket := int(math.Log2(math.Max(us, 1.0)) * subBuckets)
	h.counts[bucket]++
	h.total++
	if us > h.maxUs {
		h.maxUs = us
	}
}

func (h *histogram) merge(o *histogram) {
	for b, c := range o.counts {
		h.counts[b] += c
	}
	h.total += o.total
	h.maxUs = math.Max(h.maxUs, o.maxUs)
}

type report struct {
	Count      int                    `json:"count"`
	Seconds    float64                `json:"seconds"`
	Errors     map[string]int         `json:"errors"`
	Histogram  map[string]interface{} `json:"histogram"`
	CPUSeconds float64                `json:"cpu_seconds"`
	PeakRSSMiB float64                `json:"peak_rss_mib"`
}

func cpuSeconds() float64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return float64(u.Utime.Sec+u.Stime.Sec) + float64(u.Utime.Usec+u.Stime.Usec)/1e6
}

func peakRSSMiB() float64 {
	var u syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return float64(u.Maxrss) / 1024.0 // KiB on Linux
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcdload: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: etcdload '<json config>'")
	}
	var cfg loadConfig
	if err := json.Unmarshal([]byte(os.Args[1]), &cfg); err != nil {
		fail("bad config: %v", err)
	}
	if (cfg.Mode != "put" && cfg.Mode != "range") || cfg.Outstanding < 1 ||
		len(cfg.Endpoints) == 0 || cfg.Duration <= 0 {
		fail("bad config: mode put or range, outstanding >= 1, endpoints, duration > 0")
	}
	if cfg.ChannelsPerEndpoint < 1 {
		cfg.ChannelsPerEndpoint = 2
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5
	}
	timeout := time.Duration(cfg.RequestTimeout * float64(time.Second))
	var clients []*clientv3.Client
	for _, endpoint := range cfg.Endpoints {
		for i := 0; i < cfg.ChannelsPerEndpoint; i++ {
			c, err := clientv3.New(clientv3.Config{
				Endpoints:   []string{endpoint},
				DialTimeout: 10 * time.Second,
			})
			if err != nil {
				fail("connect %s: %v", endpoint, err)
			}
			defer c.Close()
			clients = append(clients, c)
		}
	}
	value := string(make([]byte, cfg.Payload))
	rng := rand.New(rand.NewSource(cfg.Seed))
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(100000000 + rng.Intn(keySpace))[1:]
	}
	if cfg.Mode == "range" { // the key the reads find
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := clients[0].Put(ctx, readKey, value)
		cancel()
		if err != nil {
			fail("put %s: %v", readKey, err)
		}
	}
	started := time.Now()
	opens := started.Add(time.Duration(cfg.Warmup * float64(time.Second)))
	closes := opens.Add(time.Duration(cfg.Duration * float64(time.Second)))
	var cpuAtOpen float64
	var mu sync.Mutex
	total := newHistogram()
	errors := map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(opens))
		cpuAtOpen = cpuSeconds()
	}()
	for n := 0; n < cfg.Outstanding; n++ {
		wg.Add(1)
		go func(number int) {
			defer wg.Done()
			client := clients[number%len(clients)]
			mine := newHistogram()
			myErrors := map[string]int{}
			i := number
			for {
				sent := time.Now()
				if !sent.Before(closes) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				var err error
				if cfg.Mode == "put" {
					_, err = client.Put(ctx, keys[i%len(keys)], value)
				} else {
					_, err = client.Get(ctx, readKey)
				}
				cancel()
				i += len(clients)
				if err != nil {
					myErrors[status.Code(err).String()]++
					continue
				}
				done := time.Now()
				if !done.Before(opens) && done.Before(closes) {
					mine.record(done.Sub(sent).Seconds())
				}
			}
			mu.Lock()
			total.merge(mine)
			for k, v := range myErrors {
				errors[k] += v
			}
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	cpu := cpuSeconds() - cpuAtOpen
	counts := map[string]int{}
	for b, c := range total.counts {
		counts[strconv.Itoa(b)] = c
	}
	out, _ := json.Marshal(report{
		Count:   total.total,
		Seconds: cfg.Duration,
		Errors:  errors,
		Histogram: map[string]interface{}{
			"counts": counts, "total": total.total, "max_us": total.maxUs,
		},
		CPUSeconds: cpu,
		PeakRSSMiB: peakRSSMiB(),
	})
	fmt.Println(string(out))
}
