package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mtu-operator/mtu-operator/internal/poll"
)

// Eventually retries check every 20ms until it succeeds, failing the test with what and the
// last error once timeout has passed.
func Eventually(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	poll.Eventually(t, what, timeout, check)
}

// StartManager runs a manager in the background; stop ends it and returns what Start
// returned. Stop managers before the API server stops.
func StartManager(mgr ctrl.Manager) (stop func() error) { return Go(mgr.Start) }

// Go runs run in the background until stop cancels its context; stop returns what run
// returned.
func Go(run func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// SetLogger gives controller-runtime a logger that is quiet unless TEST_VERBOSE_LOGS is set.
func SetLogger() {
	out := io.Discard
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		out = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(out)))
}

// TableRow is what `kubectl get` shows for one object: the API server renders the Table from
// the resource's printer columns, as it does for kubectl. It returns the cells by column name.
func TableRow(ctx context.Context, cfg *rest.Config, gv schema.GroupVersion, resource, name string) (map[string]string, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := rc.Get().Resource(resource).Name(name).SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		return nil, err
	}
	if len(table.Rows) != 1 {
		return nil, fmt.Errorf("%d rows in %s", len(table.Rows), raw)
	}
	row := map[string]string{}
	for i, col := range table.ColumnDefinitions {
		row[col.Name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	return row, nil
}
