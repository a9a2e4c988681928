package inject

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// APINamespaces reads namespaces from the API server, one GET per review:
// a namespace enrolled a moment ago is seen at once (no informer lag), and
// an API error denies the pod (the webhook fails closed).
type APINamespaces struct{ Client kubernetes.Interface }

// Namespace implements NamespaceGetter.
func (a APINamespaces) Namespace(ctx context.Context, name string) (Namespace, error) {
	if name == "" {
		return Namespace{}, fmt.Errorf("the request names no namespace")
	}
	ns, err := a.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Namespace{}, err
	}
	return Namespace{Name: ns.Name, Labels: ns.Labels}, nil
}
