package kubetest

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// AggregateClusterRoles fills the built-in aggregated ClusterRoles (view,
// edit, admin) with the rules of the roles their aggregationRule selects, as
// kube-controller-manager's clusterrole-aggregation controller does in a real
// cluster. No controller manager runs here, so until this is called `edit`
// grants nothing. Call it after creating any ClusterRole meant to aggregate.
func (c *Cluster) AggregateClusterRoles(ctx context.Context) error {
	roles := c.Client.RbacV1().ClusterRoles()
	// view aggregates into edit, and edit into admin: fill them in that order.
	for _, name := range []string{"view", "edit", "admin"} {
		role, err := roles.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("kubetest: cluster role %s: %w", name, err)
		}
		if role.AggregationRule == nil {
			continue
		}
		var rules []rbacv1.PolicyRule
		for _, sel := range role.AggregationRule.ClusterRoleSelectors {
			s, err := metav1.LabelSelectorAsSelector(&sel)
			if err != nil {
				return fmt.Errorf("kubetest: cluster role %s selector: %w", name, err)
			}
			list, err := roles.List(ctx, metav1.ListOptions{LabelSelector: s.String()})
			if err != nil {
				return fmt.Errorf("kubetest: cluster roles for %s: %w", name, err)
			}
			for _, r := range list.Items {
				if r.Name != name && s.Matches(labels.Set(r.Labels)) {
					rules = append(rules, r.Rules...)
				}
			}
		}
		role.Rules = rules
		if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("kubetest: update cluster role %s: %w", name, err)
		}
	}
	return nil
}
