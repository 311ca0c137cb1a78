package scale

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// usage is what a process has used so far, from /proc.
type usage struct {
	peakRSS, rss int64 // bytes
	cpu          time.Duration
}

// clockTicks is the kernel's USER_HZ, which /proc/<pid>/stat counts CPU time in: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

func usageOf(pid int) (usage, error) {
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			u.peakRSS = kib << 10
		case "VmRSS:":
			u.rss = kib << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces: fields count from the last ')'.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	u.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	return u, nil
}

// requests counts the API server's requests by "VERB resource[/subresource]", with " [code]"
// for those it refused, from its own apiserver_request_total.
type requests map[string]float64

func apiRequests(ctx context.Context, cfg *rest.Config) (requests, error) {
	families, err := apiServerMetrics(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := requests{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		l := labelsOf(m)
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		if !strings.HasPrefix(l["code"], "2") {
			// Refused (a conflict, a race lost): a cost, but not a write the protocol made.
			key += " [" + l["code"] + "]"
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out, nil
}

// watchers is how many NodeMTUState watches the API server holds open.
func watchers(ctx context.Context, cfg *rest.Config) (int, error) {
	families, err := apiServerMetrics(ctx, cfg)
	if err != nil {
		return 0, err
	}
	var n float64
	for _, m := range families["apiserver_longrunning_requests"].GetMetric() {
		if l := labelsOf(m); l["verb"] == "WATCH" && l["resource"] == "nodemtustates" {
			n += m.GetGauge().GetValue()
		}
	}
	return int(n), nil
}

func apiServerMetrics(ctx context.Context, cfg *rest.Config) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	return parseMetrics(bytes.NewReader(raw))
}

// since is what was counted after before was.
func (r requests) since(before requests) requests {
	out := requests{}
	for k, v := range r {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// sum adds the counts of keys that match.
// only is r's requests that match.
func (r requests) only(match func(verb, resource string) bool) requests {
	out := requests{}
	for k, v := range r {
		if verb, resource, _ := strings.Cut(k, " "); match(verb, resource) && v != 0 {
			out[k] = v
		}
	}
	return out
}

func (r requests) sum(match func(verb, resource string) bool) float64 {
	var n float64
	for k, v := range r {
		verb, resource, _ := strings.Cut(k, " ")
		if match(verb, resource) {
			n += v
		}
	}
	return n
}

// top lists the most frequent requests, as "VERB resource: per node".
func (r requests) top(n, nodes int) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r[keys[i]] > r[keys[j]] || r[keys[i]] == r[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, r[k]/float64(nodes)))
	}
	return strings.Join(parts, ", ")
}

func isWrite(verb string) bool {
	switch verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE":
		return true
	}
	return false
}

// managerMetrics reads the manager's own metrics over plain HTTP.
func managerMetrics(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	return parseMetrics(resp.Body)
}

// reconciles is the manager's count of policy reconciles and the time they took.
func reconciles(families map[string]*dto.MetricFamily) (count float64, took time.Duration) {
	for _, m := range families["controller_runtime_reconcile_total"].GetMetric() {
		if labelsOf(m)["controller"] == "networkmtupolicy" {
			count += m.GetCounter().GetValue()
		}
	}
	for _, m := range families["controller_runtime_reconcile_time_seconds"].GetMetric() {
		if labelsOf(m)["controller"] == "networkmtupolicy" {
			took += time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
		}
	}
	return count, took
}

func parseMetrics(in io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(in)
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// profileAPIServer writes a CPU profile of the API server over the next seconds to path.
func profileAPIServer(ctx context.Context, path string, seconds time.Duration) {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return
	}
	raw, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(int(seconds.Seconds()))).Timeout(seconds + time.Minute).DoRaw(ctx)
	if err != nil {
		_ = os.WriteFile(path+".err", []byte(err.Error()), 0o644)
		return
	}
	_ = os.WriteFile(path, raw, 0o644)
}
