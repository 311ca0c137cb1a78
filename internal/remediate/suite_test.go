package remediate

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var (
	env *testenv.Env
	// apiRecorder writes Events to the API server, as the manager's recorder does.
	apiRecorder events.EventRecorder
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() {
		env = e
		broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: kubernetes.NewForConfigOrDie(e.Config).EventsV1()})
		stop := make(chan struct{})
		broadcaster.StartRecordingToSink(stop)
		apiRecorder = broadcaster.NewRecorder(e.Scheme, fieldManager)
		return func() {
			close(stop)
			broadcaster.Shutdown()
		}
	}))
}

// recorder passes Events on to the API server and remembers each call, so that a test can
// tell that no Event was emitted without waiting for one that might come.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf("%s/%s %s", regarding.(client.Object).GetNamespace(), regarding.(client.Object).GetName(), reason))
	r.mu.Unlock()
	apiRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "remediate-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// podOpts shape a test pod.
type podOpts struct {
	bare        bool   // no controller owner reference
	ownerKind   string // ReplicaSet unless set
	labels      map[string]string
	annotations map[string]string
}

// createPod creates a pod as if scheduled to a node and running and ready there (envtest has
// no scheduler and no kubelet). Its controller, when it has one, does not exist: the API
// server accepts owner references to any object.
func createPod(t *testing.T, ns, name string, o podOpts) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: o.labels, Annotations: o.annotations},
		Spec: corev1.PodSpec{
			NodeName:   "node-a",
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	if !o.bare {
		kind := o.ownerKind
		if kind == "" {
			kind = "ReplicaSet"
		}
		controller := true
		pod.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: appsv1.SchemeGroupVersion.String(), Kind: kind, Name: "web",
			UID: "0e9a1c7e-5d2b-4f7a-9a65-3c1f2e8d4b60", Controller: &controller,
		}}
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatalf("marking pod %s running: %v", name, err)
	}
}

func getPodT(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pod); err != nil {
		t.Fatalf("getting pod %s: %v", name, err)
	}
	return pod
}

// terminating lists which of the named pods have a deletionTimestamp.
func terminating(t *testing.T, ns string, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		if getPodT(t, ns, n).DeletionTimestamp != nil {
			out = append(out, n)
		}
	}
	return out
}

// startTerminating deletes a pod gracefully: without a kubelet to confirm, it stays
// Terminating.
func startTerminating(t *testing.T, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if getPodT(t, ns, name).DeletionTimestamp == nil {
		t.Fatalf("pod %s was not left terminating", name)
	}
}

// finishTerminating removes a pod at once, as the kubelet does when its containers stopped.
func finishTerminating(t *testing.T, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
}

// eventsFor lists the Events about pod.
func eventsFor(t *testing.T, pod *corev1.Pod) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(pod.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Pod" && e.Regarding.Name == pod.Name && e.Regarding.UID == pod.UID {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	return out
}

// waitForEvents waits until pod has exactly want Events, the last one with the given type and
// reason, and returns them.
func waitForEvents(t *testing.T, pod *corev1.Pod, want int, eventType, reason string) []eventsv1.Event {
	t.Helper()
	var got []eventsv1.Event
	testenv.Eventually(t, fmt.Sprintf("%d Events on pod %s", want, pod.Name), 20*time.Second, func() error {
		got = eventsFor(t, pod)
		if len(got) != want {
			return fmt.Errorf("%d Events: %v", len(got), got)
		}
		last := got[len(got)-1]
		if last.Type != eventType || last.Reason != reason {
			return fmt.Errorf("last Event is %s %s: %s", last.Type, last.Reason, last.Note)
		}
		return nil
	})
	return got
}

func stale(ns, name string) StalePod {
	return StalePod{Namespace: ns, Name: name, ObservedMTU: 1450, ExpectedMTU: 1500,
		Reason: "1450 predates the switch from VXLAN to None"}
}
