package inject

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The transparent-mode init container exempts Warden's uid from the
// redirect and no group: an app container that sets no runAsGroup runs
// with the group its image's /etc/passwd gives its uid, which neither the
// injector nor a CEL policy can see, so an image mapping its user to gid
// 65532 would otherwise leave the pod around Warden. Warden's uid is
// pinned by the policies (every other container has runAsUser != 65532).
func TestIptablesExemptsWardenUIDOnly(t *testing.T) {
	in := testInjector(t)
	pod := readPod(t, "testdata/golden/bare-pod.yaml")
	pod.Annotations = map[string]string{AnnotationMode: ModeTransparent}
	out, _, err := in.Mutate(pod, shop)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.InitContainers) == 0 || out.Spec.InitContainers[0].Name != IptablesContainerName {
		t.Fatalf("first init container is not %s: %v", IptablesContainerName, out.Spec.InitContainers)
	}
	args := out.Spec.InitContainers[0].Args
	if i := slices.Index(args, "--uid"); i < 0 || i+1 >= len(args) || args[i+1] != strconv.FormatInt(UID, 10) {
		t.Errorf("%s args %q: want --uid %d", IptablesContainerName, args, UID)
	}
	if !slices.Contains(args, "--apply") || !slices.Contains(args, "--print") {
		t.Errorf("%s args %q: want --apply --print (the log shows the table read back from the kernel)", IptablesContainerName, args)
	}
	for _, a := range args {
		if a == "--gid" || strings.HasPrefix(a, "--gid=") {
			t.Errorf("%s args %q exempt a group from the redirect: an app image may map its uid to gid %d", IptablesContainerName, args, GID)
		}
	}
	p, err := in.AdmissionParams()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.IptablesArgs, args) {
		t.Errorf("admission iptablesArgs %q, injected %q", p.IptablesArgs, args)
	}
}
