package traffic

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
)

// TestMain also fails the run when the tests leave a receiver, a socket or a goroutine of
// this package behind: Stop, SetEndpoints and Probe must close everything they open.
func TestMain(m *testing.M) {
	before, err := openSockets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := nettest.Main(m)
	var problems []string
	receivers.Lock()
	if n := len(receivers.byKey); n > 0 {
		problems = append(problems, fmt.Sprintf("%d receivers still open", n))
	}
	receivers.Unlock()
	if after, err := openSockets(); err != nil {
		problems = append(problems, err.Error())
	} else if after > before {
		problems = append(problems, fmt.Sprintf("%d sockets left open", after-before))
	}
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")[1:] {
		if strings.Contains(g, "/test/e2e/lab/traffic.") {
			problems = append(problems, "goroutine still running:\n"+g)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "traffic: the tests left things behind:\n%s\n", strings.Join(problems, "\n"))
		code = 1
	}
	os.Exit(code)
}

func openSockets() (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, "socket:[") {
			n++
		}
	}
	return n, nil
}
