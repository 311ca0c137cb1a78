// Command kubectl-mtu is a kubectl plugin (`kubectl mtu ...`, once on the PATH) for the MTU
// operator:
//
//	kubectl mtu plan -f POLICY.yaml       what applying it would change, without writing
//	kubectl mtu status [POLICY]           a policy's rollout at a glance, node by node
//	kubectl mtu retry NODE...             retry nodes whose change or path check failed
//	kubectl mtu retry --failed [POLICY]   retry every such node (of the policy)
//
// It reads and writes only what a person with kubectl could; --kubeconfig and --context
// choose the cluster as kubectl does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
	"github.com/mtu-operator/mtu-operator/internal/mtuctl"
)

const usage = `kubectl mtu: the MTU operator from kubectl.

  kubectl mtu plan -f POLICY.yaml       what applying it would change, without writing ("-": stdin)
  kubectl mtu status [POLICY]           a policy's rollout at a glance (every policy without one)
  kubectl mtu retry NODE...             retry nodes whose change or path check failed
  kubectl mtu retry --failed [POLICY]   retry every such node (of the policy)

Flags: --kubeconfig FILE, --context NAME (as kubectl).
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kubectl mtu: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kubectl mtu", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kubeconfig := fs.String("kubeconfig", "", "path of the kubeconfig (default: $KUBECONFIG, ~/.kube/config)")
	kubeContext := fs.String("context", "", "the kubeconfig context to use")
	failed := fs.Bool("failed", false, "retry: every node whose change or path check failed")
	file := fs.String("f", "", "plan: the policy's file")
	if err := fs.Parse(reorder(args)); err != nil {
		return fmt.Errorf("%w\n\n%s", err, usage)
	}
	if fs.NArg() == 0 || fs.Arg(0) == "help" {
		_, err := io.WriteString(out, usage)
		return err
	}
	// Check the command first, so that a usage error is said before a cluster is contacted.
	var do func(client.Client) error
	switch cmd, rest := fs.Arg(0), fs.Args()[1:]; cmd {
	case "status":
		if len(rest) > 1 {
			return fmt.Errorf("status takes at most one policy\n\n%s", usage)
		}
		do = func(c client.Client) error { return status(ctx, c, rest, out) }
	case "plan":
		if *file == "" || len(rest) > 0 {
			return fmt.Errorf("plan takes -f and the policy's file\n\n%s", usage)
		}
		do = func(c client.Client) error { return planPolicy(ctx, c, *file, out) }
	case "retry":
		if *failed && len(rest) > 1 || !*failed && len(rest) == 0 {
			return fmt.Errorf("retry takes nodes, or --failed and at most one policy\n\n%s", usage)
		}
		do = func(c client.Client) error { return retry(ctx, c, rest, *failed, out) }
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	c, err := connect(*kubeconfig, *kubeContext)
	if err != nil {
		return err
	}
	return do(c)
}

// reorder puts flags before the arguments, so that `kubectl mtu retry --failed jumbo` and
// `kubectl mtu --kubeconfig k status` both parse (flag stops at the first argument).
func reorder(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if slices.Contains([]string{"--kubeconfig", "--context", "-kubeconfig", "-context", "-f", "--f"}, a) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

func connect(kubeconfig, kubeContext string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	scheme, err := kubescheme.New()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func status(ctx context.Context, c client.Client, names []string, out io.Writer) error {
	var policies mtuv1alpha1.NetworkMTUPolicyList
	if err := c.List(ctx, &policies); err != nil {
		return fmt.Errorf("listing NetworkMTUPolicies: %w", err)
	}
	if len(names) == 1 {
		policies.Items = slices.DeleteFunc(policies.Items, func(p mtuv1alpha1.NetworkMTUPolicy) bool { return p.Name != names[0] })
		if len(policies.Items) == 0 {
			return fmt.Errorf("no NetworkMTUPolicy %q", names[0])
		}
	}
	if len(policies.Items) == 0 {
		_, err := io.WriteString(out, "No NetworkMTUPolicy in the cluster.\n")
		return err
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := c.List(ctx, &states); err != nil {
		return fmt.Errorf("listing NodeMTUStates: %w", err)
	}
	for i := range policies.Items {
		if i > 0 {
			if _, err := io.WriteString(out, "\n"); err != nil {
				return err
			}
		}
		if err := mtuctl.WriteStatus(out, &policies.Items[i], states.Items); err != nil {
			return err
		}
	}
	return nil
}

// retry annotates the nodes' NodeMTUStates as a Stalled condition asks; the controller hands
// each a new attempt and removes the annotation.
func retry(ctx context.Context, c client.Client, names []string, failed bool, out io.Writer) error {
	if failed {
		var states mtuv1alpha1.NodeMTUStateList
		if err := c.List(ctx, &states); err != nil {
			return fmt.Errorf("listing NodeMTUStates: %w", err)
		}
		policy := ""
		if len(names) == 1 {
			policy = names[0]
		}
		names = nil
		for _, s := range states.Items {
			if (policy == "" || s.Spec.Policy == policy) && mtuctl.NeedsRetry(s) {
				names = append(names, s.Name)
			}
		}
		if len(names) == 0 {
			_, err := io.WriteString(out, "No node's change or path check failed: nothing to retry.\n")
			return err
		}
	}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+mtuv1alpha1.RetryAnnotation+`":"true"}}}`))
	var errs []error
	for _, name := range names {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name = name
		if err := c.Patch(ctx, s, patch); err != nil {
			errs = append(errs, fmt.Errorf("retrying %s: %w", name, err))
			continue
		}
		fmt.Fprintf(out, "%s: retry requested (%s=true)\n", name, mtuv1alpha1.RetryAnnotation)
	}
	return errors.Join(errs...)
}

// planPolicy reads a policy, has the API server admit and default it (a server-side dry run),
// then previews it with the manager's own decisions (controllers.Preview), writing nothing.
func planPolicy(ctx context.Context, c client.Client, file string, out io.Writer) error {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if u.GroupVersionKind() != mtuv1alpha1.GroupVersion.WithKind("NetworkMTUPolicy") {
		return fmt.Errorf("%s: a %s, not a NetworkMTUPolicy of %s", file, u.GroupVersionKind(), mtuv1alpha1.GroupVersion)
	}
	//nolint:staticcheck // the typed Apply needs generated apply configurations
	if err := c.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldOwner("kubectl-mtu"), client.ForceOwnership); err != nil {
		return fmt.Errorf("the API server would not accept it: %w", err)
	}
	policy := &mtuv1alpha1.NetworkMTUPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, policy); err != nil {
		return err
	}
	preview, selected, err := controllers.Preview(ctx, c, policy)
	if err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := c.List(ctx, &states); err != nil {
		return fmt.Errorf("listing NodeMTUStates: %w", err)
	}
	return mtuctl.WritePlan(out, preview, selected, states.Items)
}
